"""The JSON encoder of the HTTP layer: money as JSON numbers, the way the seed shows it."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import SerializationException
from litestar.response.base import ASGIResponse

from facta._edge.json import MEDIA_TYPE, encode, timestamp

_MEDIA_TYPE_BYTES = MEDIA_TYPE.encode()


class JsonResponse(Response[Any]):
    """The response class of a facta app: data a handler returns is encoded with Decimal as
    a JSON number (``1300.0``), as the OpenAPI document says, where Litestar's own encoding
    writes a string (``"1300.0"``)."""

    def render(self, content: Any, media_type: str, enc_hook: Any = None) -> bytes:
        """``content`` as bytes; JSON with Decimal as numbers, anything else as Litestar does."""
        if isinstance(content, bytes) or not media_type.startswith(MEDIA_TYPE):
            return super().render(content, media_type, enc_hook)
        try:
            encoder = msgspec.json.Encoder(enc_hook=enc_hook, decimal_format="number")
            return encoder.encode(content)
        except (TypeError, msgspec.EncodeError) as error:
            raise SerializationException(str(error)) from error


def json_response(body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    """A response with ``body`` as encoded JSON.

    Typed Any so that a handler can keep the model it documents in its return annotation
    (``Response[AccountView]``, for OpenAPI) while sending bytes it encoded itself.
    """
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


class JsonAnswer(ASGIResponse):
    """A 200 with a JSON body and extra headers, sent as given: the command route's answer.

    Litestar's ASGIResponse files every header into a header container and looks up the
    content type and length on each answer, about a twentieth of a command's time in the
    service; these headers are known up front. The container is still there for whoever
    asks for ``headers`` (an ``after_request`` hook, say), made on first use.
    """

    __slots__ = ("_raw_headers",)

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self._raw_headers = [
            (b"content-type", _MEDIA_TYPE_BYTES),
            (b"content-length", b"%d" % len(body)),
            *headers,
        ]
        self.background = None
        self.is_head_response = False
        self.status_code = 200
        self._encoded_cookies = ()
        self.content_length = len(body)
        self.encoding = "utf-8"

    @property
    def headers(self) -> MutableScopeHeaders:  # type: ignore[override]
        """The headers as a Litestar container (changes to it are sent)."""
        container = MutableScopeHeaders()
        container.headers = self._raw_headers
        return container

    def encode_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as sent."""
        return self._raw_headers


__all__ = ["MEDIA_TYPE", "JsonAnswer", "JsonResponse", "encode", "json_response", "timestamp"]

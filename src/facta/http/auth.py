"""Optional API-key authentication for a facta service (off unless keys are given).

A request must carry one of the keys as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``;
otherwise it gets 401 and nothing behind it runs. ``/health`` and ``/ready`` stay open for
probes. Only SHA-256 digests of the keys are kept, compared in constant time, and no key is
ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

OPEN_PATHS = frozenset({"/health", "/ready"})
_BODY = (
    b'{"error":"unauthorized","message":"a valid API key is required (Authorization: Bearer KEY)"}'
)


class ApiKeys:
    """The keys a service accepts. Raises ValueError for an empty set or a key under 16
    characters (too guessable to protect anything)."""

    def __init__(self, keys: Iterable[str]) -> None:
        cleaned = [key.strip() for key in keys if key.strip()]
        if not cleaned:
            raise ValueError("no API keys given")
        if any(len(key) < 16 for key in cleaned):
            raise ValueError("API keys must be at least 16 characters long")
        self._digests = [hashlib.sha256(key.encode()).digest() for key in cleaned]

    @classmethod
    def parse(cls, text: str) -> ApiKeys:
        """Keys separated by commas or newlines (an environment variable, or a key file)."""
        return cls(text.replace(",", "\n").splitlines())

    def accepts(self, presented: str) -> bool:
        """True when ``presented`` is one of the keys."""
        digest = hashlib.sha256(presented.encode()).digest()
        found = False
        for known in self._digests:  # no early exit: the time taken tells nothing
            found |= hmac.compare_digest(digest, known)
        return found

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap ``app`` so that every HTTP request but the probes must present a key."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or scope["path"] in OPEN_PATHS:
                await app(scope, receive, send)
                return
            if self.accepts(_presented_key(scope)):
                await app(scope, receive, send)
                return
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_BODY)).encode()),
                    (b"www-authenticate", b'Bearer realm="facta"'),
                ],
            }
            body: HTTPResponseBodyEvent = {
                "type": "http.response.body",
                "body": _BODY,
                "more_body": False,
            }
            await send(start)
            await send(body)

        return guarded


def _presented_key(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
        elif name == b"x-api-key":
            return value.decode("latin-1").strip()
    return ""

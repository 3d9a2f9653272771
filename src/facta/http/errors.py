"""Every failure as a JSON error with a clear message, and never a 500 for a client's input.

The body is always ``{"status": 400, "error": "command_rejected", "message": "Insufficient
funds"}``, with ``details`` for validation failures. Which status means what:

- 400 ``command_rejected``: the domain refused the command (a DomainError); nothing written.
- 404 ``not_found``: no such resource (an unknown id, a version past the end, a bad route).
- 409 ``version_conflict``: concurrent writers outlasted the retries (of an aggregate's
  command, or a decision's conditional append); try again.
- 410 ``gone``: the resource was deleted (its stream ends in a tombstone), or the versions
  asked for were erased (truncated); nothing was written, and its id is not reused.
- 412 ``precondition_failed``: ``If-Match`` named a version the resource is no longer at.
- 413 ``body_too_large``: the request body is over the service's limit.
- 415 ``unsupported_media_type``: a body sent without ``Content-Type: application/json``.
- 422 ``invalid_input``: malformed JSON, an unknown command type or field, a repeated key,
  nesting deeper than 32 levels, a NUL character, money sent as a string, a value out of
  range, a bad id, query parameter or header, an ``Idempotency-Key`` reused for another
  request.
- 503 ``store_unavailable``: the event store cannot be reached; retry after ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIResponse, Operation, Schema
from litestar.types import ExceptionHandlersMap

from facta._edge.errors import (
    CODES,
    DESCRIPTIONS,
    UNAVAILABLE,
    ApiError,
    ErrorBody,
    error_for,
    log,
)
from facta._edge.json import MEDIA_TYPE, encode


def documented_errors(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI descriptions of the error responses a route may give."""
    return {
        status: ResponseSpec(ErrorBody, description=DESCRIPTIONS[status], generate_examples=False)
        for status in statuses
    }


def _is_litestar_error(response: Any) -> bool:
    # Litestar's own description of a ValidationException: an inline object schema with
    # its exception fields (status_code, detail, extra), where ours is a reference to ErrorBody.
    if not isinstance(response, OpenAPIResponse):
        return False
    for media in (response.content or {}).values():
        schema = media.schema
        if isinstance(schema, Schema) and "detail" in (schema.properties or {}):
            return True
    return False


@dataclass
class ErrorsAsSent(Operation):
    """An operation without the 400 Litestar documents on every route that takes parameters.

    That 400 describes Litestar's own error body (``status_code``, ``detail``, ``extra``),
    which facta never sends: a bad parameter is answered 422 with the ``ErrorBody`` that
    :func:`documented_errors` documents (pass it 422 on such routes). ``create_app`` makes
    it the ``operation_class`` of every route handler given to it that keeps the default.
    """

    def __post_init__(self) -> None:
        if self.responses and _is_litestar_error(self.responses.get("400")):
            del self.responses["400"]


def error_response(
    status: int,
    message: str,
    *,
    error: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    current_version: int | None = None,
) -> Response[bytes]:
    """The JSON error response for ``status``."""
    body = ErrorBody(status, error or CODES.get(status, "error"), message, details, current_version)
    return Response(
        encode(body), status_code=status, media_type=MEDIA_TYPE, headers=dict(headers or {})
    )


def _api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[bytes]:
    return error_response(
        exc.status,
        exc.message,
        error=exc.error,
        details=exc.details,
        headers=exc.headers,
        current_version=exc.current_version,
    )


def _mapped(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # The domain's refusal, conflicts, unknown streams, an unreachable store, the rest (500).
    return _api_error(request, error_for(exc, request.method, request.url.path))


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    details = exc.extra if isinstance(exc.extra, list) else None
    for detail in details or ():
        if isinstance(detail, dict) and detail.get("source") == "header" and detail.get("key"):
            # Litestar names a header by its handler's parameter (last_event_id): say the
            # header the client sent (last-event-id; header names ignore case).
            detail["key"] = str(detail["key"]).replace("_", "-")
    message = str(exc.detail)
    if details and isinstance(details[0], dict) and details[0].get("message"):
        # Litestar's detail is generic ("Validation failed for POST /..."): lead with the cause.
        first = details[0]
        cause, key = str(first["message"]), first.get("key")
        if key == "data" and first.get("source") == "body":
            if cause == "'data'":  # Litestar found no body at all
                cause = "the request body is empty; send a JSON object"
            message = f"{cause} (in the request body)"
        else:
            # Litestar names the source with an enum (ParamType.QUERY): say "query" instead.
            source = first.get("source", "request")
            message = f"{cause} (in {getattr(source, 'value', source)} {key})"
    return error_response(422, message, details=details)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status >= 500:
        log.error("HTTP %d for %s %s: %s", status, request.method, request.url.path, exc.detail)
    message = str(exc.detail)
    if status == 413:
        message = "the request body is too large"
    elif status == 400:
        # Litestar's own 400s are all unreadable input (malformed JSON, a bad form); the
        # service keeps 400 for commands the domain rejects.
        status = 422
    return error_response(status, message, headers=exc.headers)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: _api_error,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _mapped,
}
"""Litestar exception handlers for every error above; pass to ``Litestar(exception_handlers=)``."""

__all__ = [
    "EXCEPTION_HANDLERS",
    "UNAVAILABLE",
    "ApiError",
    "ErrorBody",
    "ErrorsAsSent",
    "documented_errors",
    "error_response",
]

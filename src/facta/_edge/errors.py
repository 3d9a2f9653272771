"""The error answers of every HTTP edge, whatever its web framework: one JSON body, one status
per kind of failure (the table is in :mod:`facta.http.errors`).

:func:`error_for` maps an exception a handler let through to the :class:`ApiError` it is
answered with, so that each framework's exception handlers are a line or two around it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

import msgspec

from facta.domain import DomainError
from facta.errors import (
    AppendConditionFailed,
    InvalidStreamId,
    StoreUnavailable,
    StreamGone,
    StreamNotFound,
    WrongExpectedVersion,
)

log = logging.getLogger("facta.http")

CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "version_conflict",
    410: "gone",
    412: "precondition_failed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    500: "internal_error",
    503: "store_unavailable",
}
"""The ``error`` of a status when nothing more precise is said."""

DESCRIPTIONS = {
    400: "The command was rejected by a business rule; nothing was written.",
    404: "No such resource.",
    409: "Concurrent writers outlasted the retries; nothing was written, try again.",
    410: "The resource was deleted, or the versions asked for were erased; nothing was written.",
    412: "If-Match names a version the resource is no longer at; nothing was written.",
    413: "The request body is over the service's limit.",
    415: "The request body is not sent as JSON (Content-Type: application/json).",
    422: "Malformed or out-of-range input; nothing was written.",
    503: "The event store is unavailable; retry after Retry-After seconds.",
}
"""What each error status means, as the OpenAPI documents say it."""


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """The JSON body of every error response."""

    status: int
    error: str
    message: str
    details: list[dict[str, Any]] | None = None
    current_version: int | None = None


class ApiError(Exception):
    """Raise from a handler to answer with this status and message (and extra headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error: str | None = None,
        headers: Mapping[str, str] | None = None,
        current_version: int | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error or CODES.get(status, "error")
        self.headers = dict(headers or {})
        self.current_version = current_version
        self.details = details

    def body(self) -> ErrorBody:
        """The JSON body this error is answered with."""
        return ErrorBody(self.status, self.error, self.message, self.details, self.current_version)


# Errors of a store that cannot be reached: backends raise StoreUnavailable; OSError and
# TimeoutError cover a driver error that slips through, sqlite3's a locked or vanished file.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    StoreUnavailable,
    OSError,
    TimeoutError,
    sqlite3.OperationalError,
)


def error_for(exc: BaseException, method: str = "", path: str = "") -> ApiError:
    """The answer to ``exc``, raised by a handler of ``method path`` (named in logs): the
    domain's refusal is 400, a conflict 409, an unknown stream 404, a deleted one 410, a bad
    stream id 422, an unreachable store 503; anything else is logged with its traceback and
    answered 500."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DomainError):
        return ApiError(400, str(exc) or type(exc).__name__, error="command_rejected")
    if isinstance(exc, WrongExpectedVersion):
        return ApiError(
            409,
            f"the resource changed concurrently and is at version {exc.actual}; try again",
            current_version=exc.actual,
        )
    if isinstance(exc, AppendConditionFailed):
        return ApiError(409, "what the decision read changed concurrently; try again")
    if isinstance(exc, StreamGone):  # before StreamNotFound, which it is a kind of
        return ApiError(410, str(exc))
    if isinstance(exc, StreamNotFound):
        return ApiError(404, str(exc))
    if isinstance(exc, InvalidStreamId):
        return ApiError(422, str(exc))
    if isinstance(exc, UNAVAILABLE):
        log.warning("store unavailable on %s %s: %s", method, path, exc)
        return ApiError(
            503, "the event store is unavailable; retry shortly", headers={"Retry-After": "1"}
        )
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return ApiError(500, "internal server error")

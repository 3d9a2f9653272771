"""facta's JSON error body on FastAPI: for the routes of an aggregate router (by their route
class, so a router needs nothing set up on the app) and, with :func:`add_error_handlers`, for
the rest of the app (unknown paths, methods not allowed, the app's own routes)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from facta._edge.errors import UNAVAILABLE, ApiError, error_for
from facta._edge.json import MEDIA_TYPE, encode
from facta.domain import DomainError
from facta.errors import (
    AppendConditionFailed,
    InvalidStreamId,
    StreamNotFound,
    WrongExpectedVersion,
)


def error_response(error: ApiError) -> Response:
    """The JSON answer of ``error``, with its headers."""
    return Response(
        encode(error.body()),
        status_code=error.status,
        media_type=MEDIA_TYPE,
        headers=error.headers,
    )


def _validation_error(exc: RequestValidationError) -> ApiError:
    details = []
    for problem in exc.errors():
        location = [str(part) for part in problem.get("loc", ())]
        source = location[0] if location else "request"
        key = location[-1] if len(location) > 1 else ""
        details.append({"message": str(problem.get("msg", "")), "key": key, "source": source})
    message = "invalid request"
    if details:
        first = details[0]
        message = f"{first['message']} (in {first['source']} {first['key']})".replace(" )", ")")
    return ApiError(422, message, details=details)


def _http_error(exc: HTTPException) -> ApiError:
    status = exc.status_code
    # Starlette's 400s are unreadable input; the service keeps 400 for commands the domain
    # rejects.
    return ApiError(422 if status == 400 else status, str(exc.detail), headers=exc.headers)


def api_error(exc: Exception, request: Request) -> ApiError:
    """The ApiError that answers ``exc``, raised while serving ``request``."""
    if isinstance(exc, RequestValidationError):
        return _validation_error(exc)
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    return error_for(exc, request.method, request.url.path)


class JsonErrorsRoute(APIRoute):
    """A route that answers every failure of its own (a bad parameter, a rejected command,
    an unreachable store) with facta's JSON error body, whatever the app's handlers are."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, wrapped."""
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return error_response(api_error(exc, request))

        return answer


_MAPPED: tuple[type[Exception], ...] = (
    ApiError,
    RequestValidationError,
    HTTPException,
    DomainError,
    WrongExpectedVersion,
    AppendConditionFailed,
    StreamNotFound,
    InvalidStreamId,
    *(kind for kind in UNAVAILABLE if issubclass(kind, Exception)),
)


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with facta's JSON body: unknown paths (404), methods
    not allowed (405), bad parameters of the app's own routes (422), ApiError and facta's
    errors raised by them (400, 404, 409, 422, 503), and anything else (500, logged)."""

    async def handle(request: Request, exc: Exception) -> Response:
        return error_response(api_error(exc, request))

    for kind in _MAPPED:
        app.add_exception_handler(kind, handle)
    app.add_exception_handler(Exception, handle)

"""The HTTP edge on FastAPI, for teams whose service is a FastAPI app already.

    runtime = Runtime(open_my_application)
    app = FastAPI(lifespan=lifespan(runtime))
    add_error_handlers(app)
    app.include_router(aggregate_router(ACCOUNTS, runtime))

gives the Litestar layer's aggregate routes (``POST/GET /accounts/{id}``, ``GET
/accounts/{id}/events``) with the same headers (ETag, If-Match, Idempotency-Key,
If-None-Match, Link) and the same JSON errors (:mod:`facta.http.errors`). The resource is the
same :class:`AggregateResource` the Litestar layer takes. Commands are decoded by msgspec,
strictly, never by pydantic; the OpenAPI document shows them, the views and the error body
as inline JSON Schemas. Needs the ``fastapi`` extra (not the ``http`` one).
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from facta._edge.body import MAX_BODY_SIZE
from facta._edge.errors import ApiError
from facta._edge.resource import AggregateResource
from facta._edge.runtime import Runtime
from facta.fastapi._errors import add_error_handlers
from facta.fastapi.router import aggregate_router


def lifespan(runtime: Runtime) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A FastAPI lifespan that opens ``runtime``'s Application at startup and closes it (and
    what it registered on ``runtime.cleanup``) at shutdown."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    return run


__all__ = [
    "MAX_BODY_SIZE",
    "AggregateResource",
    "ApiError",
    "Runtime",
    "add_error_handlers",
    "aggregate_router",
    "lifespan",
]

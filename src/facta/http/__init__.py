"""The HTTP edge: a Litestar layer any facta application can serve itself with.

    runtime = Runtime(open_my_application)
    app = create_app(runtime, [AggregateResource(Account(), "/accounts", view, AccountView)])

gives ``POST/GET /accounts/{id}``, ``GET /accounts/{id}/events``, the global feed ``GET
/events`` (and ``/events/live`` as Server-Sent Events), ``/health``, ``/ready``,
``/metrics``, and the docs at ``/docs``. Errors are JSON (see :mod:`facta.http.errors`).
Needs the ``http`` extra.
"""

from facta._edge.body import MAX_BODY_SIZE
from facta._edge.runtime import Runtime
from facta.http._json import timestamp
from facta.http.app import create_app
from facta.http.auth import ApiKeys
from facta.http.consistency import PositionParameter, caught_up
from facta.http.errors import ApiError, error_response
from facta.http.resource import AggregateResource, aggregate_routes
from facta.http.server import serve

__all__ = [
    "MAX_BODY_SIZE",
    "AggregateResource",
    "ApiError",
    "ApiKeys",
    "PositionParameter",
    "Runtime",
    "aggregate_routes",
    "caught_up",
    "create_app",
    "error_response",
    "serve",
    "timestamp",
]

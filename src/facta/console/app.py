"""The console on a Litestar app: mounted at ``/console`` on a service (``facta serve``), or
served alone (``facta console``).

The page and its scripts and styles are files of this package (``static/``): no CDN, no
build step, nothing fetched from the network. They hold no data, so they are served to
anyone (a browser cannot send an API key when it opens a page); everything they show comes
from the JSON endpoints under ``/console/api``, which are behind the service's API keys like
every other route. The page asks for a key when an endpoint answers 401 and sends it as
``X-API-Key``.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from facta.console.operations import operation_routes
from facta.console.reads import read_routes
from facta.console.service import ConsoleConfig, ConsoleService
from facta.http._json import JsonResponse
from facta.http.errors import EXCEPTION_HANDLERS, ErrorsAsSent

CONSOLE = "/console"
ASSETS = f"{CONSOLE}/assets"
STATIC = Path(__file__).parent / "static"


def console_routes(service: ConsoleService) -> list[ControllerRouterHandler]:
    """The page, its assets and the JSON endpoints of a console on ``service``."""

    @get([CONSOLE, f"{CONSOLE}/"], include_in_schema=False, sync_to_thread=False)
    def page() -> Response[bytes]:
        html = (STATIC / "index.html").read_bytes()
        return Response(html, media_type="text/html; charset=utf-8")

    assets = create_static_files_router(
        ASSETS,
        directories=[STATIC],
        include_in_schema=False,
        cache_control=CacheControlHeader(no_cache=True),
    )
    api = [*read_routes(service), *operation_routes(service)]
    for handler in api:  # documented as the service's own routes are: errors as sent
        handler.operation_class = ErrorsAsSent
    return [page, assets, *api]


def mount_console(app: Litestar, config: ConsoleConfig) -> ConsoleService:
    """Add a console on ``config``'s store to ``app`` at ``/console``; it opens its store on
    first use and closes it when the app shuts down."""
    service = ConsoleService(config)
    for route in console_routes(service):
        app.register(route)
    app.on_shutdown.append(service.close)
    return service


def create_console_app(config: ConsoleConfig) -> Litestar:
    """A Litestar app serving the console alone (``facta console``); ``/`` leads to it."""
    service = ConsoleService(config)

    @get("/", include_in_schema=False, sync_to_thread=False)
    def home() -> Response[None]:
        return Response(None, status_code=307, headers={"Location": CONSOLE})

    return Litestar(
        route_handlers=[home, *console_routes(service)],
        exception_handlers=EXCEPTION_HANDLERS,
        response_class=JsonResponse,
        on_shutdown=[service.close],
        openapi_config=None,
    )

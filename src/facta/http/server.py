"""Run a Litestar app under uvicorn (uvloop and httptools when installed)."""

from __future__ import annotations

import socket
from typing import Any

from litestar.types import ASGIApp

from facta.http._deadlines import BODY_TIMEOUT, HEADER_TIMEOUT, deadline_protocol


def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    json_logs: bool = False,
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``app`` until interrupted (SIGINT or SIGTERM: open streams get 3 s to finish).

    ``json_logs``: every log line, uvicorn's included, as a JSON object on stderr with the
    ids facta knows (:func:`facta.observability.configure_logging`). A client that has not
    sent a request's headers ``header_timeout`` seconds after it began (or after it
    connected), or its body ``body_timeout`` seconds after the headers, is disconnected
    (:mod:`facta.http._deadlines`); idle connections between requests close after 5 s.
    ``sock``: a listening socket to serve on instead of binding ``host`` and ``port`` (one
    of several processes sharing it).
    """
    import uvicorn

    options: dict[str, Any] = {}
    protocol = deadline_protocol(header_timeout, body_timeout)
    if protocol is not None:
        options["http"] = protocol
    if json_logs:
        from facta.observability.logging import configure_logging

        configure_logging(log_level.upper())
        options["log_config"] = None  # uvicorn's loggers then reach the JSON handler
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        **options,
        access_log=False,  # one log line per request costs more than the request itself
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run(sockets=None if sock is None else [sock])
    if not server.started:  # the port taken, the app's start-up failed: as uvicorn.run says
        raise SystemExit(3)

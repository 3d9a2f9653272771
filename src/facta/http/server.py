"""Run a Litestar app under uvicorn (uvloop and httptools when installed)."""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp


def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    json_logs: bool = False,
) -> None:
    """Serve ``app`` until interrupted (SIGINT or SIGTERM: open streams get 3 s to finish).

    ``json_logs``: every log line, uvicorn's included, as a JSON object on stderr with the
    ids facta knows (:func:`facta.observability.configure_logging`).
    """
    import uvicorn

    options: dict[str, Any] = {}
    if json_logs:
        from facta.observability.logging import configure_logging

        configure_logging(log_level.upper())
        options["log_config"] = None  # uvicorn's loggers then reach the JSON handler
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        **options,
        access_log=False,  # one log line per request costs more than the request itself
        timeout_graceful_shutdown=3,
        server_header=False,
    )

"""App factories for ``facta serve --app tests.http.custom_apps:NAME`` in tests (the server
process needs the repository on PYTHONPATH: :func:`on_path`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, post

from facta import Application, open_store
from facta.examples.bank.service import create_app as bank_app
from facta.http import Runtime, create_app

ROOT = str(Path(__file__).resolve().parents[2])


def ignoring_keys(store_url: str, **options: Any) -> Litestar:
    """The bank service, built without the keys it was handed (a factory taking ``**kwargs``
    and passing on none of them)."""
    return bank_app(store_url, projections=False)


@post("/notes", status_code=200)
async def echo_note(data: dict[str, Any]) -> dict[str, Any]:
    """A route reading its JSON body the Litestar way (not a command)."""
    return {"keys": sorted(data)}


def with_notes(store_url: str, *, projections: bool = True, **options: Any) -> Litestar:
    """A facta app with one plain JSON route besides the feed and probes (``options``: the
    API keys, when given)."""

    async def open_application() -> Application:
        return Application(await open_store(store_url))

    return create_app(Runtime(open_application), [], route_handlers=[echo_note], **options)

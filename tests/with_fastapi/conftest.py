"""The bank accounts on FastAPI (facta.examples.bank.fastapi_app) in a real uvicorn process on a
free port, on SQLite and on PostgreSQL (a fresh schema, dropped afterwards), driven over real
HTTP. One server per backend for the session; tests keep apart by their own account ids."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import BACKEND_NAMES, Server, drop_schema, free_port, store_url_for
from tests.http.test_errors import opened  # noqa: F401 - an account at version 1, as there

APP = "facta.examples.bank.fastapi_app:create_app"


def start_uvicorn(store_url: str, workdir: Path, timeout: float = 30.0) -> Server:
    """``uvicorn --factory`` serving the FastAPI bank on ``store_url``, once it answers."""
    port = free_port()
    log = workdir / f"uvicorn-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FACTA_STORE": store_url}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", APP, "--port", str(port),
             "--log-level", "warning"],
            cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", store_url, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"uvicorn exited with {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop()
    raise AssertionError(f"uvicorn did not answer within {timeout}s:\n{server.output()}")


@pytest.fixture(scope="session", params=BACKEND_NAMES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The FastAPI bank under uvicorn on each backend (PostgreSQL: skipped with the reason
    when it is unreachable, failed under FACTA_REQUIRE_SERVICES=1)."""
    workdir = tmp_path_factory.mktemp(f"fastapi-{request.param}")
    running = start_uvicorn(store_url_for(request.param, workdir), workdir)
    yield running
    running.stop()
    drop_schema(running.store_url)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


@pytest.fixture
def account_id() -> str:
    """A fresh account id, so tests sharing a server never meet."""
    return f"acc-{uuid.uuid4().hex[:10]}"

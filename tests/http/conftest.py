"""`facta serve` as a real process on a free port, driven over real HTTP.

One server per backend for the whole session (starting one takes a second or more); tests
keep apart by using their own account ids.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import service_missing

POSTGRES_URL = os.environ.get("FACTA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


_PORTS_PER_WORKER = 2000
_next_port: list[int] = []


def free_port() -> int:
    """A port for a test's server, free now. Taken below the kernel's ephemeral range
    (32768 up), so that no outgoing connection takes it meanwhile, and from a block of this
    test process's own (pytest-xdist's worker number), so that the suite's parallel workers
    never hand out the same one (a port the kernel picks at random, checked free and then
    bound by the server, was once taken by another worker in between)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = 20000 + (int(worker) % 6 if worker.isdigit() else 0) * _PORTS_PER_WORKER
    if not _next_port:
        _next_port.append(first)
    for _ in range(_PORTS_PER_WORKER):
        port = _next_port[0]
        _next_port[0] = first + (port + 1 - first) % _PORTS_PER_WORKER
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (a server of an earlier test, still closing): the next
            return port
    raise RuntimeError(f"no free port in {first}-{first + _PORTS_PER_WORKER - 1}")


def facta_command() -> list[str]:
    """The installed ``facta`` script next to this Python, else ``python -m facta.cli``."""
    script = Path(sys.executable).parent / "facta"
    return [str(script)] if script.exists() else [sys.executable, "-m", "facta.cli"]


@dataclass
class Server:
    """A running ``facta serve`` process."""

    url: str
    store_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(
    store_url: str,
    workdir: Path,
    *extra: str,
    timeout: float = 30.0,
    host: str = "127.0.0.1",
    prefix: Sequence[str] = (),
) -> Server:
    """Start ``facta serve`` on a free port and wait until it answers ``/health``
    (``prefix``: what runs the command, as ``ip netns exec NAME``; ``host``: the address it
    binds and is reached at)."""
    port = free_port()
    log = workdir / f"serve-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FACTA_STORE", None)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                *prefix,
                *facta_command(),
                "serve",
                "--store",
                store_url,
                "--host",
                host,
                "--port",
                str(port),
                "--log-level",
                "warning",
                *extra,
            ],
            cwd=workdir,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://{host}:{port}", store_url, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"facta serve exited with {process.returncode}:\n{server.output()}"
            )
        try:
            if httpx.get(f"{server.url}/health", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"facta serve did not answer within {timeout}s:\n{server.output()}")


def postgres_store_url() -> str:
    """A PostgreSQL store URL in a fresh schema, or skip/fail when PostgreSQL is not usable."""
    try:
        import facta.store.postgres  # noqa: F401
    except ImportError:
        pytest.skip("the PostgreSQL backend is not in this tree yet")
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        service_missing("PostgreSQL is not reachable at 127.0.0.1:5432")
    schema = f"http_{uuid.uuid4().hex[:12]}"
    return f"{POSTGRES_URL}?schema={schema}"


BACKEND_NAMES = ["sqlite", "postgresql"]


def store_url_for(backend: str, workdir: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'facta.db'}"
    return postgres_store_url()


def drop_schema(store_url: str) -> None:
    """Drop the PostgreSQL schema a test server used (nothing for other stores)."""
    if "schema=" not in store_url:
        return
    import asyncpg

    schema = store_url.rsplit("schema=", 1)[1]

    async def drop() -> None:
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()

    asyncio.run(drop())


@pytest.fixture(scope="session", params=BACKEND_NAMES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """``facta serve`` on each backend, shared by every test of the session (tests keep apart
    by their own account ids)."""
    workdir = tmp_path_factory.mktemp(f"serve-{request.param}")
    running = start_server(store_url_for(request.param, workdir), workdir)
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

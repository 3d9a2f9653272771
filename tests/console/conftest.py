"""A real ``facta serve`` with its console, per backend, and a real ``facta projections run``
beside it for the test projection that parks (tests/console/owners.py)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.conftest import (
    BACKEND_NAMES,
    Server,
    drop_schema,
    facta_command,
    start_server,
    store_url_for,
)

ROOT = Path(__file__).parents[2]
OWNERS = "tests.console.owners:OwnersProjection"
CONSOLE_PROJECTIONS = (
    "facta.examples.bank.read_model:TransfersProjection",
    "facta.examples.bank.transfers:TransferSaga",
    OWNERS,
)
API = "/console/api"
ACCOUNTS_INLINE = "facta.examples.bank.read_model:AccountsProjection"
"""The read model the service keeps inline: a runner of the saga maintains it too."""


@dataclass
class Console:
    """The service with its console, the runner of ``owners``, and the blocked-owners file."""

    server: Server
    runner: subprocess.Popen[bytes]
    blocked: Path

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return self.server.client(timeout)


def projection_args() -> list[str]:
    return [arg for spec in CONSOLE_PROJECTIONS for arg in ("--projection", spec)]


def start_runner(store_url: str, workdir: Path, *specs: str) -> subprocess.Popen[bytes]:
    """``facta projections run`` for ``specs``, in the background."""
    log = (workdir / f"runner-{time.monotonic_ns()}.log").open("wb")
    args = [arg for spec in specs for arg in ("--projection", spec)]
    return subprocess.Popen(
        [*facta_command(), "projections", "run", "--store", store_url, *args],
        cwd=workdir,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module", params=BACKEND_NAMES)
def console(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    """``facta serve`` (bank, console on) and a runner of ``owners`` on one backend."""
    workdir = tmp_path_factory.mktemp(f"console-{request.param}")
    blocked = workdir / "blocked.txt"
    blocked.write_text("")
    with pytest.MonkeyPatch.context() as patch:
        # Both processes import tests.console.owners, and read the blocked list.
        patch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("FACTA_TEST_BLOCKED", str(blocked))
        store_url = store_url_for(request.param, workdir)
        server = start_server(store_url, workdir, *projection_args())
        runner = start_runner(store_url, workdir, OWNERS)
        try:
            yield Console(server, runner, blocked)
        finally:
            stop(runner)
            server.stop()
            drop_schema(store_url)


def wait_until(check: Any, what: str, timeout: float = 20.0) -> Any:
    """The first truthy value of ``check()``, polled; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def slots(client: httpx.Client, name: str) -> list[dict[str, Any]]:
    """The console's view of projection ``name``'s active slot rows."""
    page = client.get(f"{API}/projections").json()
    return [p for p in page["projections"] if p["name"] == name and p["active"]]


def act(client: httpx.Client, path: str, name: str, operator: str = "tester") -> httpx.Response:
    """POST a confirmed action."""
    return client.post(f"{API}{path}", json={"operator": operator, "confirm": name})

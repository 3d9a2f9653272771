"""How the console is served: behind the service's API keys (its page and assets open, its
data not), off with --no-console, and alone with ``facta console``."""

from __future__ import annotations

import asyncio
import http.client
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from facta import open_store
from tests.http.conftest import facta_command, free_port, start_server

KEY = "console-test-key-0123456789"


def raw_get(url: str, path: str) -> int:
    """The status of GET ``path`` sent as written (no client-side clean-up of ``..``)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_console_is_behind_the_api_keys(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACTA_API_KEYS", KEY)
        server = start_server(f"sqlite:///{tmp_path / 'facta.db'}", tmp_path)
    try:
        with server.client() as client:
            page = client.get("/console")
            assert page.status_code == 200
            assert "facta console" in page.text
            script = client.get("/console/assets/console.js")
            assert script.status_code == 200
            assert "/console/api" in script.text
            for path in [
                "/console/api/overview",
                "/console/api/streams",
                "/console/api/projections",
            ]:
                assert client.get(path).status_code == 401, path
            denied = client.post(
                "/console/api/projections/transfers/pause",
                json={"operator": "x", "confirm": "transfers"},
            )
            assert denied.status_code == 401
            allowed = client.get("/console/api/overview", headers={"X-API-Key": KEY})
            assert allowed.status_code == 200
            assert allowed.json()["store"]["ok"]
        # The open prefix of the assets is no way round the keys.
        for path in ["/console/assets/../api/overview", "/console/assets/%2e%2e/api/overview"]:
            assert raw_get(server.url, path) in (401, 404), path
    finally:
        server.stop()


def test_no_console_leaves_it_out(tmp_path: Path) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'facta.db'}", tmp_path, "--no-console")
    try:
        with server.client() as client:
            assert client.get("/console").status_code == 404
            assert client.get("/console/api/overview").status_code == 404
            assert client.get("/health").status_code == 200
    finally:
        server.stop()


def test_facta_console_serves_it_alone(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'facta.db'}"
    subprocess.run([*facta_command(), "migrate", "--store", store], check=True, capture_output=True)
    port = free_port()
    log = (tmp_path / "console.log").open("wb")
    process = subprocess.Popen(
        [*facta_command(), "console", "--store", store, "--port", str(port)],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "FACTA_API_KEYS"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/console", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "console.log").read_text()
            assert time.monotonic() < deadline, "facta console did not start"
            time.sleep(0.1)
        home = httpx.get(url, follow_redirects=False)
        assert home.status_code == 307
        assert home.headers["location"] == "/console"
        streams = httpx.get(f"{url}/console/api/streams")
        assert streams.status_code == 200
        assert streams.json() == {"streams": [], "next": None}
    finally:
        process.terminate()
        process.wait(10)


def test_facta_console_refuses_a_store_that_is_not_there(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'nothing.db'}"
    done = subprocess.run(
        [*facta_command(), "console", "--store", missing],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "facta migrate" in done.stderr
    assert "Traceback" not in done.stderr


def test_facta_projections_pause_and_resume_are_recorded(tmp_path: Path) -> None:
    from facta.console.audit import AUDIT_STREAM, recent
    from facta.projections import ProjectionRunner, ReadStore
    from tests.projections.helpers import Counters, codec, fill

    store_url = f"sqlite:///{tmp_path / 'facta.db'}"

    async def build() -> None:
        store = await open_store(store_url)
        try:
            await fill(store, 2, 2)
            await ProjectionRunner(store, [Counters()], codec=codec).catch_up()
        finally:
            await store.close()

    async def states() -> tuple[list[str], list[tuple[str, str]]]:
        store = await open_store(store_url, create=False)
        try:
            found = [s.state for s in await ReadStore(store).status("counters")]
            actions = [(a.action, a.result) for a in await recent(store)]
            assert all(a.operator.endswith("(cli)") for a in await recent(store))
            return found, actions
        finally:
            await store.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*facta_command(), "projections", *args, "--store", store_url],
            capture_output=True,
            text=True,
            timeout=60,
        )

    asyncio.run(build())
    paused = cli("pause", "counters")
    assert paused.returncode == 0, paused.stderr
    assert "paused counters" in paused.stdout
    assert asyncio.run(states())[0] == ["paused"]
    assert "nothing to pause" in cli("pause", "counters").stdout
    assert "resumed counters" in cli("resume", "counters").stdout
    assert "nothing to resume" in cli("resume", "counters").stdout
    found, actions = asyncio.run(states())
    assert found == ["stopped"]  # running again, but no runner holds it here
    assert actions == [("resume", "resumed 1 partition(s)"), ("pause", "paused 1 partition(s)")]
    missing = cli("pause", "nothing")
    assert missing.returncode == 1
    assert "no projection named 'nothing'" in missing.stderr
    assert AUDIT_STREAM == "console-audit"

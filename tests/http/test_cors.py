"""CORS over real HTTP: off by default; with ``--cors-origins`` (FACTA_CORS_ORIGINS), pages
from those origins may call the API, read its headers and follow the live feed, and pages
from anywhere else may not."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import Server, facta_command, start_server

DASHBOARD = "https://dashboard.example"


@pytest.fixture(scope="module")
def open_to_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("cors")
    running = start_server(
        f"sqlite:///{workdir / 'facta.db'}",
        workdir,
        "--cors-origins",
        f"{DASHBOARD}, http://localhost:3000",
    )
    yield running
    running.stop()


def test_cors_is_off_by_default(client: httpx.Client, account_id: str) -> None:
    answer = client.get(f"/accounts/{account_id}", headers={"Origin": DASHBOARD})
    assert answer.status_code == 404
    assert "access-control-allow-origin" not in answer.headers
    preflight = client.options(
        f"/accounts/{account_id}",
        headers={"Origin": DASHBOARD, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_a_listed_origin_may_send_commands_with_their_headers(
    open_to_dashboard: Server, account_id: str
) -> None:
    with open_to_dashboard.client() as client:
        preflight = client.options(
            f"/accounts/{account_id}",
            headers={
                "Origin": DASHBOARD,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, if-match, idempotency-key",
            },
        )
        assert preflight.status_code == 204, preflight.text
        assert preflight.headers["access-control-allow-origin"] == DASHBOARD
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"content-type", "if-match", "idempotency-key"} <= {
            header.strip() for header in allowed.split(",")
        }
        assert "POST" in preflight.headers["access-control-allow-methods"]
        opened = client.post(
            f"/accounts/{account_id}",
            json={"type": "OpenAccount", "owner": "Cy", "initial_balance": 1.0},
            headers={"Origin": DASHBOARD},
        )
        assert opened.status_code == 200
        assert opened.headers["access-control-allow-origin"] == DASHBOARD
        exposed = opened.headers["access-control-expose-headers"]
        assert "ETag" in exposed
        assert "Facta-Position" in exposed
        read = client.get(f"/accounts/{account_id}", headers={"Origin": "http://localhost:3000"})
        assert read.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_a_listed_origin_may_follow_the_live_feed(open_to_dashboard: Server) -> None:
    with (
        open_to_dashboard.client() as client,
        client.stream("GET", "/events/live", headers={"Origin": DASHBOARD}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["access-control-allow-origin"] == DASHBOARD


def test_other_origins_are_refused(open_to_dashboard: Server, account_id: str) -> None:
    with open_to_dashboard.client() as client:
        read = client.get(f"/accounts/{account_id}", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in read.headers
        preflight = client.options(
            f"/accounts/{account_id}",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.parametrize("origin", ["https://dashboard.example/", "dashboard.example"])
def test_an_origin_a_browser_never_sends_is_refused_at_start(tmp_path: Path, origin: str) -> None:
    # A trailing slash or a missing scheme would silently never match: say so at once.
    done = subprocess.run(
        [*facta_command(), "serve", "--store", f"sqlite:///{tmp_path / 'f.db'}"],
        env={**os.environ, "FACTA_CORS_ORIGINS": origin},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "FACTA_CORS_ORIGINS" in done.stderr
    assert "scheme://host[:port]" in done.stderr


def test_a_preflight_needs_no_key_but_the_request_it_precedes_does(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    key = "k" * 32
    keys.write_text(key)
    running = start_server(
        f"sqlite:///{tmp_path / 'facta.db'}",
        tmp_path,
        "--cors-origins",
        DASHBOARD,
        "--api-keys-file",
        str(keys),
    )
    try:
        with running.client() as client:
            preflight = client.options(
                "/accounts/acc-1",
                headers={
                    "Origin": DASHBOARD,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
            )
            assert preflight.status_code == 204, preflight.text
            assert preflight.headers["access-control-allow-origin"] == DASHBOARD
            plain_options = client.options("/accounts/acc-1")
            assert plain_options.status_code == 401
            body = {"type": "OpenAccount", "owner": "Ann", "initial_balance": 1.0}
            without = client.post("/accounts/acc-1", json=body, headers={"Origin": DASHBOARD})
            assert without.status_code == 401
            with_key = client.post(
                "/accounts/acc-1",
                json=body,
                headers={"Origin": DASHBOARD, "Authorization": f"Bearer {key}"},
            )
            assert with_key.status_code == 200, with_key.text
            assert with_key.headers["access-control-allow-origin"] == DASHBOARD
    finally:
        running.stop()

"""Optional API keys: off by default; when set, every request but the probes needs one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from facta.http.auth import ApiKeys
from tests.http.conftest import Server, start_server

KEY = "k-0123456789abcdef-first"
OTHER = "k-fedcba9876543210-second"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("auth")
    keys = workdir / "keys"
    keys.write_text(f"{KEY}\n{OTHER}\n")
    server = start_server(
        f"sqlite:///{workdir / 'facta.db'}", workdir, "--api-keys-file", str(keys)
    )
    yield server
    server.stop()


def test_probes_stay_open(guarded: Server) -> None:
    assert httpx.get(f"{guarded.url}/health").status_code == 200
    assert httpx.get(f"{guarded.url}/ready").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-wrong-key"},
        {"Authorization": f"Basic {KEY}"},
        {"X-API-Key": KEY[:-1]},
    ],
)
def test_requests_without_a_valid_key_are_401_and_write_nothing(
    guarded: Server, headers: dict[str, str]
) -> None:
    body = {"type": "OpenAccount", "owner": "Mallory", "initial_balance": 5}
    with httpx.Client(base_url=guarded.url, headers=headers) as http:
        response = http.post("/accounts/acc-m", json=body)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
        for path in ("/accounts/acc-m", "/accounts", "/events", "/metrics", "/docs/openapi.json"):
            assert http.get(path).status_code == 401, path
    with httpx.Client(base_url=guarded.url, headers={"X-API-Key": KEY}) as http:
        assert http.get("/accounts/acc-m").status_code == 404  # nothing was written


def test_either_header_with_any_key_is_let_in(guarded: Server) -> None:
    body = {"type": "OpenAccount", "owner": "Alice", "initial_balance": 5}
    bearer = {"Authorization": f"Bearer {KEY}"}
    response = httpx.post(f"{guarded.url}/accounts/acc-a", json=body, headers=bearer)
    assert response.status_code == 200
    got = httpx.get(f"{guarded.url}/accounts/acc-a", headers={"X-API-Key": OTHER})
    assert got.json()["owner"] == "Alice"


def test_keys_never_reach_the_log(guarded: Server) -> None:
    httpx.get(f"{guarded.url}/accounts/acc-a", headers={"Authorization": f"Bearer {KEY}"})
    httpx.get(f"{guarded.url}/accounts/acc-a", headers={"X-API-Key": "leaked-guess-0000000"})
    output = guarded.output()
    assert KEY not in output
    assert "leaked-guess" not in output


def test_the_environment_variable_turns_keys_on(tmp_path: Path) -> None:
    os.environ["FACTA_API_KEYS"] = f"{KEY},{OTHER}"
    try:
        server = start_server(f"sqlite:///{tmp_path / 'facta.db'}", tmp_path)
    finally:
        del os.environ["FACTA_API_KEYS"]
    try:
        assert httpx.get(f"{server.url}/events").status_code == 401
        assert httpx.get(f"{server.url}/events", headers={"X-API-Key": OTHER}).status_code == 200
    finally:
        server.stop()


def test_short_or_missing_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        ApiKeys(["short"])
    with pytest.raises(ValueError, match="no API keys"):
        ApiKeys.parse(" , \n")
    assert ApiKeys.parse(f"{KEY}, {OTHER}").accepts(OTHER)

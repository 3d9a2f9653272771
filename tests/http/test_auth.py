"""Optional API keys: off by default; when set, every request but the probes needs one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from facta.http.auth import ApiKeys
from tests.http import custom_apps
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


@pytest.mark.parametrize(
    ("method", "path", "without_auth"),
    [
        ("GET", "/no/such/route", 404),
        ("POST", "/no/such/route", 404),
        ("DELETE", "/accounts/acc-a", 405),
        ("PUT", "/events", 405),
        ("GET", "/accounts/bad%20id", 422),
    ],
)
def test_the_key_is_checked_before_routing(
    guarded: Server, method: str, path: str, without_auth: int
) -> None:
    with httpx.Client(base_url=guarded.url) as http:
        refused = http.request(method, path)
        assert refused.status_code == 401
        assert refused.json() == {
            "status": 401,
            "error": "unauthorized",
            "message": refused.json()["message"],
        }
        assert "API key" in refused.json()["message"]
        admitted = http.request(method, path, headers={"X-API-Key": KEY})
        assert admitted.status_code == without_auth, admitted.text


def test_a_factory_that_drops_the_keys_still_serves_behind_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY}\n")
    monkeypatch.setenv("PYTHONPATH", custom_apps.ROOT)
    server = start_server(
        f"sqlite:///{tmp_path / 'facta.db'}",
        tmp_path,
        "--app",
        "tests.http.custom_apps:ignoring_keys",
        "--api-keys-file",
        str(keys),
    )
    try:
        body = {"type": "OpenAccount", "owner": "Mallory", "initial_balance": 5}
        with httpx.Client(base_url=server.url) as http:
            assert http.post("/accounts/acc-m", json=body).status_code == 401
            for path in ("/accounts/acc-m", "/events", "/docs/openapi.json", "/nowhere"):
                assert http.get(path).status_code == 401, path
            assert http.get("/health").status_code == 200
            assert http.get("/ready").status_code == 200
            key = {"Authorization": f"Bearer {KEY}"}
            assert http.get("/accounts/acc-m", headers=key).status_code == 404  # not written
            assert http.post("/accounts/acc-m", json=body, headers=key).status_code == 200
        assert "API keys required" in server.output()
    finally:
        server.stop()

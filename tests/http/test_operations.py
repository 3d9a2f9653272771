"""Health, readiness, Prometheus metrics, and the OpenAPI document with its docs pages."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.http.conftest import start_server


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["head"].replace(":", "").isdigit()


def test_metrics_count_requests_and_command_outcomes(client: httpx.Client, account_id: str) -> None:
    path = f"/accounts/{account_id}"
    client.post(path, json={"type": "OpenAccount", "owner": "Gus", "initial_balance": 1.0})
    client.post(path, json={"type": "Withdraw", "amount": 5.0})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    series = 'facta_commands_total{{aggregate="account",command="{}",outcome="{}"}}'
    assert series.format("OpenAccount", "accepted") in text
    assert series.format("Withdraw", "rejected") in text
    # Requests are grouped by route template, not one series per account id.
    assert 'path="/accounts/{id}"' in text
    assert account_id not in text


def test_openapi_documents_the_seed_routes(client: httpx.Client) -> None:
    document = client.get("/docs/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/accounts/{id}"]) == {"get", "post"}
    assert "get" in paths["/accounts/{id}/events"]
    assert "get" in paths["/events"]
    body = paths["/accounts/{id}"]["post"]["requestBody"]["content"]["application/json"]
    refs = {member["$ref"].rsplit("/", 1)[1] for member in body["schema"]["oneOf"]}
    assert refs == {"OpenAccount", "Deposit", "Withdraw"}
    schemas = document["components"]["schemas"]
    assert schemas["AccountView"]["properties"]["balance"]["type"] == "number"
    responses = paths["/accounts/{id}"]["post"]["responses"]
    assert {"200", "400", "404", "412", "413", "422", "503"} <= set(responses)


def test_interactive_docs_pages(client: httpx.Client) -> None:
    swagger = client.get("/docs")
    assert swagger.status_code == 200
    assert "swagger-ui" in swagger.text.lower()
    # Its scripts and styles come from the service (a browser renders it: test_browser.py).
    for asset in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        assert f'"/docs/assets/{asset}"' in swagger.text
        served = client.get(f"/docs/assets/{asset}")
        assert served.status_code == 200, asset
        assert len(served.content) > 10_000
    assert "http" not in swagger.text.split("<body>")[0].replace("http-equiv", "")


def test_json_log_format_turns_every_log_line_into_json(tmp_path: Path) -> None:
    server = start_server(
        f"sqlite:///{tmp_path / 'logs.db'}", tmp_path, "--log-format", "json", "--log-level", "info"
    )
    try:
        with server.client() as client:
            assert client.get("/health").status_code == 200
    finally:
        server.stop()
    lines = [line for line in server.output().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    running = [r for r in records if "Uvicorn running on" in r["message"]]
    assert running
    assert running[0]["level"] == "INFO"
    assert "INFO:" not in server.output()  # uvicorn's own text format is gone

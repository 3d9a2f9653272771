"""``GET /accounts`` from the read model (filters, sorting, pages) and transfers run by the
saga inside `facta serve`."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from tests.http.conftest import start_server


def test_list_accounts_filters_sorts_and_pages(client: httpx.Client) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    ids = [f"list-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    for index, account_id in enumerate(ids):
        opened = client.post(
            f"/accounts/{account_id}",
            json={"type": "OpenAccount", "owner": owner, "initial_balance": 10.0 * index},
        )
        assert opened.status_code == 200
    # Inline: the list shows a command's effect as soon as the command has answered.
    client.post(f"/accounts/{ids[0]}", json={"type": "Deposit", "amount": 100.0})

    everything = client.get("/accounts", params={"owner": owner}).json()
    assert sorted(a["id"] for a in everything["accounts"]) == sorted(ids)
    assert everything["next"] is None
    first = next(a for a in everything["accounts"] if a["id"] == ids[0])
    assert (first["owner"], first["balance"], first["version"]) == (owner, 100.0, 2)

    rich = client.get(
        "/accounts",
        params={"owner": owner, "min_balance": "25", "sort": "balance", "descending": "true"},
    ).json()
    assert [a["balance"] for a in rich["accounts"]] == [100.0, 40.0, 30.0]

    seen: list[str] = []
    params: dict[str, str | int] = {"owner": owner, "limit": 2}
    while True:
        page = client.get("/accounts", params=params).json()
        seen.extend(a["id"] for a in page["accounts"])
        if page["next"] is None:
            break
        params["after"] = page["next"]
    assert seen == sorted(ids)


def test_list_accounts_refuses_bad_parameters(client: httpx.Client) -> None:
    for params in (
        {"limit": "0"},
        {"limit": "501"},
        {"min_balance": "NaN"},
        {"min_balance": "lots"},
        {"min_balance": "1e30"},
        {"sort": "password"},
        {"after": "not-a-cursor"},
        {"descending": "maybe"},
    ):
        response = client.get("/accounts", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"] == "invalid_input"


def test_a_transfer_is_carried_out_by_the_saga(client: httpx.Client) -> None:
    source, target = f"src-{uuid.uuid4().hex[:8]}", f"dst-{uuid.uuid4().hex[:8]}"
    for account_id in (source, target):
        client.post(
            f"/accounts/{account_id}",
            json={"type": "OpenAccount", "owner": "Ivy", "initial_balance": 100.0},
        )
    transfer = f"t-{uuid.uuid4().hex[:8]}"
    requested = client.post(
        f"/transfers/{transfer}",
        json={"type": "RequestTransfer", "source": source, "target": target, "amount": 30.0},
    )
    assert requested.status_code == 200, requested.text
    assert requested.json()["status"] == "requested"
    deadline = time.monotonic() + 15
    while client.get(f"/transfers/{transfer}").json()["status"] != "completed":
        assert time.monotonic() < deadline, client.get(f"/transfers/{transfer}").text
        time.sleep(0.1)
    assert client.get(f"/accounts/{source}").json()["balance"] == 70.0
    assert client.get(f"/accounts/{target}").json()["balance"] == 130.0
    # Only RequestTransfer is open to clients; the saga's own commands are not.
    forged = client.post(f"/transfers/{transfer}", json={"type": "RecordCredit"})
    assert forged.status_code == 422


def test_a_list_given_a_commands_position_shows_its_effect(client: httpx.Client) -> None:
    """Read-your-writes on the asynchronous transfers read model: with the Facta-Position of
    the command's answer, the list answers only once the projection has reached it."""
    source, target = f"src-{uuid.uuid4().hex[:8]}", f"dst-{uuid.uuid4().hex[:8]}"
    for account_id in (source, target):
        client.post(
            f"/accounts/{account_id}",
            json={"type": "OpenAccount", "owner": "Ivy", "initial_balance": 100.0},
        )
    for n in range(20):
        requested = client.post(
            f"/transfers/t-{source}-{n}",
            json={"type": "RequestTransfer", "source": source, "target": target, "amount": 1.0},
        )
        assert requested.status_code == 200, requested.text
        position = requested.headers["Facta-Position"]
        listed = client.get("/transfers", params={"source": source, "position": position})
        assert listed.status_code == 200, listed.text
        ids = {t["id"] for t in listed.json()["transfers"]}
        assert f"t-{source}-{n}" in ids
    for bad in ("x", "1:2:3", "-1", "9" * 30, "99999999999:1"):  # the last: past the log's end
        refused = client.get("/transfers", params={"position": bad})
        assert refused.status_code == 422, (bad, refused.text)


def test_no_projections_leaves_the_saga_to_another_process(tmp_path: Path) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'facta.db'}", tmp_path, "--no-projections")
    try:
        with server.client() as client:
            for account_id in ("a", "b"):
                client.post(
                    f"/accounts/{account_id}",
                    json={"type": "OpenAccount", "owner": "Jo", "initial_balance": 10.0},
                )
            client.post(
                "/transfers/t",
                json={"type": "RequestTransfer", "source": "a", "target": "b", "amount": 1.0},
            )
            time.sleep(1.5)
            assert client.get("/transfers/t").json()["status"] == "requested"
            # Nobody runs the transfers read model here: a read at a position waits, then
            # says so (and when to try again), never answering with a stale list.
            head = client.get("/events", params={"limit": 1000}).json()
            position = head["events"][-1]["position"]
            behind = client.get("/transfers", params={"position": position})
            assert behind.status_code == 503, behind.text
            assert behind.headers["Retry-After"] == "1"
            assert "has not reached position" in behind.json()["message"]
            # The inline read model is part of every append, projections or not.
            assert len(client.get("/accounts").json()["accounts"]) == 2
    finally:
        server.stop()

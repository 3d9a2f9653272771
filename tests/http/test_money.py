"""Money in every answer is written as the seed writes it (``1300.0``, ``10.25``, ``5.0``):
in states, transfers, histories, the read-model list and the event feed, however the amount
was sent or computed.

JSON parsers read ``11.00``, ``11`` and ``11.0`` as one number, so these tests read the raw
text of the answers.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx

JSON = {"Content-Type": "application/json"}


def amounts(text: str, key: str) -> list[str]:
    """Every number under ``key`` in a JSON text, as written."""
    return re.findall(rf'"{key}":(-?[0-9][0-9.eE+-]*)', text)


def test_balances_are_in_the_seeds_form(client: httpx.Client, account_id: str) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    path = f"/accounts/{account_id}"
    opened = client.post(
        path, json={"type": "OpenAccount", "owner": owner, "initial_balance": 10.25}
    )
    assert amounts(opened.text, "balance") == ["10.25"]
    summed = client.post(path, json={"type": "Deposit", "amount": 0.75})
    assert amounts(summed.text, "balance") == ["11.0"]  # not 11.00
    whole = client.post(path, content=b'{"type": "Deposit", "amount": 5}', headers=JSON)
    assert amounts(whole.text, "balance") == ["16.0"]
    assert amounts(client.get(path).text, "balance") == ["16.0"]
    assert amounts(client.get(path, params={"version": 2}).text, "balance") == ["11.0"]
    history = client.get(f"{path}/events").text
    assert amounts(history, "initial_balance") == ["10.25"]
    assert amounts(history, "amount") == ["0.75", "5.0"]
    listed = client.get("/accounts", params={"owner": owner}).text
    assert amounts(listed, "balance") == ["16.0"]


def test_transfer_amounts_are_in_the_seeds_form(client: httpx.Client) -> None:
    start = client.get("/ready").json()["head"]
    source, target = (f"acc-{uuid.uuid4().hex[:10]}" for _ in range(2))
    for account in (source, target):
        client.post(
            f"/accounts/{account}",
            json={"type": "OpenAccount", "owner": "Tess", "initial_balance": 100.0},
        )
    transfer = f"t-{uuid.uuid4().hex[:8]}"
    requested = client.post(
        f"/transfers/{transfer}",
        content=b'{"type": "RequestTransfer", "source": "%s", "target": "%s", "amount": 5}'
        % (source.encode(), target.encode()),
        headers=JSON,
    )
    assert requested.status_code == 200, requested.text
    assert amounts(requested.text, "amount") == ["5.0"]
    deadline = time.monotonic() + 30
    while client.get(f"/transfers/{transfer}").json()["status"] != "completed":
        assert time.monotonic() < deadline, client.get(f"/transfers/{transfer}").text
        time.sleep(0.05)
    assert amounts(client.get(f"/transfers/{transfer}").text, "amount") == ["5.0"]
    assert amounts(client.get(f"/transfers/{transfer}/events").text, "amount") == ["5.0"]
    assert amounts(client.get(f"/accounts/{source}").text, "balance") == ["95.0"]
    feed = client.get("/events", params={"after": start, "type": "TransferRequested"})
    ids = [event["stream_id"] for event in feed.json()["events"]]
    assert amounts(feed.text, "amount")[ids.index(f"transfer-{transfer}")] == "5.0"

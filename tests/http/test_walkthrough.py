"""The seed's curl walkthrough against `facta serve`, with the seed's exact answers."""

from __future__ import annotations

import json

import httpx

SEED_EVENTS = [
    {"type": "AccountOpened", "owner": "Alice", "initial_balance": 1000.0},
    {"type": "MoneyDeposited", "amount": 500.0},
    {"type": "MoneyWithdrawn", "amount": 200.0},
]


def post_json(client: httpx.Client, path: str, text: str, **headers: str) -> httpx.Response:
    # The seed's bodies, sent as curl sends them: raw text with a JSON content type.
    return client.post(
        path, content=text.encode(), headers={"Content-Type": "application/json", **headers}
    )


def test_seed_walkthrough(client: httpx.Client, account_id: str) -> None:
    path = f"/accounts/{account_id}"
    opened = post_json(
        client,
        path,
        '{\n"type": "OpenAccount",\n"owner": "Alice",\n"initial_balance": 1000.0\n}',
    )
    assert opened.status_code == 200, opened.text
    assert opened.json() == {"id": account_id, "owner": "Alice", "balance": 1000.0, "version": 1}
    assert opened.headers["etag"] == '"1"'

    deposited = post_json(client, path, '{\n"type": "Deposit",\n"amount": 500.0\n}')
    assert deposited.json() == {"id": account_id, "owner": "Alice", "balance": 1500.0, "version": 2}
    withdrawn = post_json(client, path, '{\n"type": "Withdraw",\n"amount": 200.0\n}')
    assert withdrawn.json() == {"id": account_id, "owner": "Alice", "balance": 1300.0, "version": 3}

    state = client.get(path)
    assert state.status_code == 200
    assert state.headers["content-type"] == "application/json"
    assert state.json() == {"id": account_id, "owner": "Alice", "balance": 1300.0, "version": 3}
    # Money is a JSON number written as the seed writes it, never a string.
    assert '"balance":1300.0' in state.text

    events = client.get(f"{path}/events")
    assert events.status_code == 200
    body = events.json()
    assert [{k: e[k] for k in seed} for e, seed in zip(body, SEED_EVENTS, strict=True)] == (
        SEED_EVENTS
    )
    # Envelope fields are extra keys; the seed's keys come first and keep their values.
    assert [list(e)[: len(seed)] for e, seed in zip(body, SEED_EVENTS, strict=True)] == [
        list(seed) for seed in SEED_EVENTS
    ]
    assert [e["version"] for e in body] == [1, 2, 3]
    assert '"initial_balance":1000.0' in events.text
    assert all(json.dumps(e["position"]) for e in body)


def test_the_seed_example_account_id(client: httpx.Client) -> None:
    # The seed's own id works too (once per server: ids are shared across tests).
    created = client.post(
        "/accounts/acc-001",
        json={"type": "OpenAccount", "owner": "Alice", "initial_balance": 1000.0},
    )
    assert created.status_code in (200, 400), created.text
    assert client.get("/accounts/acc-001").json()["id"] == "acc-001"

"""The global event feed: pages by position, filters, and the live Server-Sent Events stream."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator

import httpx

from tests.http.conftest import Server


def test_feed_pages_cover_the_log_once_in_order(client: httpx.Client, account_id: str) -> None:
    start = client.get("/ready").json()["head"]
    path = f"/accounts/{account_id}"
    client.post(path, json={"type": "OpenAccount", "owner": "Dan", "initial_balance": 1.0})
    for _ in range(4):
        client.post(path, json={"type": "Deposit", "amount": 2.0})
    seen = []
    after = start
    while True:
        page = client.get("/events", params={"after": after, "limit": 2}).json()
        if not page["events"]:
            assert page["next"] == after
            break
        seen.extend(page["events"])
        after = page["next"]
    mine = [e for e in seen if e["stream_id"] == f"account-{account_id}"]
    assert [e["version"] for e in mine] == [1, 2, 3, 4, 5]
    assert mine[0]["data"] == {"type": "AccountOpened", "owner": "Dan", "initial_balance": 1.0}
    assert mine[1]["type"] == "MoneyDeposited"
    assert mine[1]["data"]["amount"] == 2.0
    assert len({e["position"] for e in seen}) == len(seen)


def test_feed_filters_by_type_and_category(client: httpx.Client, account_id: str) -> None:
    start = client.get("/ready").json()["head"]
    path = f"/accounts/{account_id}"
    client.post(path, json={"type": "OpenAccount", "owner": "Dan", "initial_balance": 1.0})
    client.post(path, json={"type": "Deposit", "amount": 2.0})
    opened = client.get(
        "/events", params={"after": start, "type": "AccountOpened", "category": "account"}
    ).json()["events"]
    assert [e["type"] for e in opened] == ["AccountOpened"]
    assert client.get("/events", params={"after": start, "category": "other"}).json() == {
        "events": [],
        "next": start,
    }


def read_sse(response: httpx.Response, want: int, out: list[dict[str, str]]) -> None:
    message: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in message:
                out.append(message)
                if len(out) >= want:
                    return
            message = {}
            continue
        field, _, value = line.partition(":")
        if field:
            message[field] = value.strip()


@contextlib.contextmanager
def stream_events(
    server: Server, params: dict[str, str], want: int
) -> Iterator[list[dict[str, str]]]:
    received: list[dict[str, str]] = []
    with (
        httpx.Client(base_url=server.url, timeout=20) as http,
        http.stream("GET", "/events/live", params=params) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = threading.Thread(target=read_sse, args=(response, want, received), daemon=True)
        reader.start()
        yield received
        reader.join(15)
    assert len(received) >= want, received


def test_live_feed_streams_new_events_as_they_happen(server: Server, account_id: str) -> None:
    with server.client() as client:
        start = client.get("/ready").json()["head"]
        path = f"/accounts/{account_id}"
        client.post(path, json={"type": "OpenAccount", "owner": "Eve", "initial_balance": 1.0})
        params = {"after": start, "category": "account"}
        with stream_events(server, params, want=3) as received:
            # Written while the stream is open: delivered live, after the catch-up.
            client.post(path, json={"type": "Deposit", "amount": 3.0})
            client.post(path, json={"type": "Withdraw", "amount": 2.0})
    mine = [m for m in received if f"account-{account_id}" in m["data"]]
    assert [m["event"] for m in mine] == ["AccountOpened", "MoneyDeposited", "MoneyWithdrawn"]
    assert [json.loads(m["data"])["version"] for m in mine] == [1, 2, 3]
    assert all(m["id"] == json.loads(m["data"])["position"] for m in mine)


def test_live_feed_resumes_after_last_event_id(server: Server, account_id: str) -> None:
    with server.client() as client:
        path = f"/accounts/{account_id}"
        client.post(path, json={"type": "OpenAccount", "owner": "Fay", "initial_balance": 1.0})
        first = client.get("/ready").json()["head"]
        client.post(path, json={"type": "Deposit", "amount": 4.0})
    received: list[dict[str, str]] = []
    with (
        httpx.Client(base_url=server.url, timeout=20) as http,
        http.stream("GET", "/events/live", headers={"Last-Event-ID": first}) as response,
    ):
        read_sse(response, 1, received)
    assert received[0]["event"] == "MoneyDeposited"
    assert json.loads(received[0]["data"])["stream_id"] == f"account-{account_id}"


def test_live_feed_in_the_message_form_sends_plain_messages(
    server: Server, account_id: str
) -> None:
    # Without an event name every message is a plain "message", the only kind a browser's
    # EventSource.onmessage receives; the type is in the data.
    with server.client() as client:
        start = client.get("/ready").json()["head"]
        path = f"/accounts/{account_id}"
        client.post(path, json={"type": "OpenAccount", "owner": "Gus", "initial_balance": 1.0})
        params = {"after": start, "category": "account", "format": "message"}
        with stream_events(server, params, want=2) as received:
            client.post(path, json={"type": "Deposit", "amount": 3.0})
    mine = [m for m in received if f"account-{account_id}" in m["data"]]
    assert [json.loads(m["data"])["type"] for m in mine] == ["AccountOpened", "MoneyDeposited"]
    assert all("event" not in m for m in mine), mine
    assert all(m["id"] == json.loads(m["data"])["position"] for m in mine)

"""The console's documented JSON endpoints over real HTTP, on SQLite and PostgreSQL: streams,
events, state at a version, causation, tail, projections and their actions, relays."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from facta import open_store
from tests.console.conftest import API, Console, act, slots, wait_until


def open_account(client: httpx.Client, account: str, owner: str, balance: float = 100.0) -> None:
    body = {"type": "OpenAccount", "owner": owner, "initial_balance": balance}
    answer = client.post(f"/accounts/{account}", json=body)
    assert answer.status_code == 200, answer.text


def test_streams_are_found_by_prefix_and_category_and_paged(console: Console) -> None:
    tag = uuid.uuid4().hex[:8]
    with console.client() as client:
        for n in range(3):
            open_account(client, f"acc-{tag}-{n}", "Ann")
        client.post(f"/accounts/acc-{tag}-1", json={"type": "Deposit", "amount": 5})
        first = client.get(
            f"{API}/streams", params={"category": "account", "prefix": f"acc-{tag}", "limit": 2}
        )
        assert first.status_code == 200, first.text
        page = first.json()
        assert [s["stream_id"] for s in page["streams"]] == [
            f"account-acc-{tag}-0",
            f"account-acc-{tag}-1",
        ]
        assert page["streams"][1]["version"] == 2
        assert page["next"] == f"account-acc-{tag}-1"
        rest = client.get(
            f"{API}/streams",
            params={"category": "account", "prefix": f"acc-{tag}", "after": page["next"]},
        ).json()
        assert [s["stream_id"] for s in rest["streams"]] == [f"account-acc-{tag}-2"]
        assert rest["next"] is None
        # The prefix alone is the whole stream id's.
        same = client.get(f"{API}/streams", params={"prefix": f"account-acc-{tag}-2"}).json()
        assert [s["stream_id"] for s in same["streams"]] == [f"account-acc-{tag}-2"]


def test_a_streams_events_one_event_and_the_state_at_any_version(console: Console) -> None:
    account = f"acc-{uuid.uuid4().hex[:8]}"
    with console.client() as client:
        open_account(client, account, "Bea", 10.0)
        client.post(f"/accounts/{account}", json={"type": "Deposit", "amount": 5})
        client.post(f"/accounts/{account}", json={"type": "Withdraw", "amount": 3})
        page = client.get(f"{API}/streams/account-{account}/events", params={"limit": 2}).json()
        assert page["version"] == 3
        assert page["aggregate"] == "account"
        assert [(e["version"], e["type"]) for e in page["events"]] == [
            (1, "AccountOpened"),
            (2, "MoneyDeposited"),
        ]
        assert page["next_version"] == 3
        event = client.get(f"{API}/events/{page['events'][1]['event_id']}").json()
        assert event["data"]["amount"] == 5
        assert event["stream_id"] == f"account-{account}"
        assert event["version"] == 2
        assert {"correlation_id", "causation_id"} <= set(event["metadata"])
        states = [
            client.get(f"{API}/streams/account-{account}/state", params={"version": v}).json()
            for v in (1, 2, 3)
        ]
        assert [s["state"]["balance"] for s in states] == [10.0, 15.0, 12.0]
        assert [s["version"] for s in states] == [1, 2, 3]


def test_bad_input_gets_a_clear_error_never_a_500(console: Console) -> None:
    with console.client() as client:
        for path, status in [
            (f"{API}/streams?limit=0", 400),
            (f"{API}/streams?limit=501", 400),
            (f"{API}/streams?prefix=a%20b", 400),
            (f"{API}/streams/bad%20id/events", 422),
            (f"{API}/streams/account-nobody-{uuid.uuid4().hex}/events", 404),
            (f"{API}/streams/account-nobody-{uuid.uuid4().hex}/state?version=3", 404),
            (f"{API}/streams/nocategory-x/state", 404),
            (f"{API}/events/{uuid.uuid4()}", 404),
            (f"{API}/causation", 400),
            (f"{API}/tail?after=abc", 400),
            (f"{API}/tail?after=0&type=a%20b", 422),
        ]:
            answer = client.get(path)
            assert answer.status_code in (status, 422 if status == 400 else status), (
                path,
                answer.status_code,
                answer.text,
            )
            assert answer.json()["message"], path


def test_a_transfers_causation_graph_spans_its_streams_and_the_saga(console: Console) -> None:
    tag = uuid.uuid4().hex[:8]
    source, target, transfer = f"acc-{tag}-s", f"acc-{tag}-t", f"t-{tag}"
    with console.client() as client:
        open_account(client, source, "Cy", 50.0)
        open_account(client, target, "Di", 0.0)
        body = {"type": "RequestTransfer", "source": source, "target": target, "amount": 20}
        assert client.post(f"/transfers/{transfer}", json=body).status_code == 200
        wait_until(
            lambda: client.get(f"/transfers/{transfer}").json()["status"] == "completed",
            "the saga to complete the transfer",
        )
        requested = client.get(f"{API}/streams/transfer-{transfer}/events").json()["events"][0]
        graph = client.get(f"{API}/causation", params={"key": requested["event_id"]}).json()
    events = {n["id"]: n for n in graph["nodes"] if n["kind"] == "event"}
    commands = [n for n in graph["nodes"] if n["kind"] == "command"]
    assert {(n["stream_id"], n["label"]) for n in events.values()} >= {
        (f"transfer-{transfer}", "TransferRequested"),
        (f"account-{source}", "MoneyWithdrawn"),
        (f"transfer-{transfer}", "TransferDebited"),
        (f"account-{target}", "MoneyDeposited"),
        (f"transfer-{transfer}", "TransferCompleted"),
    }
    assert len(commands) >= 5  # the request, and each command the saga executed
    # Everything is reached from the request's event, through commands.
    reached, frontier = set(), [requested["event_id"]]
    children: dict[str, list[str]] = {}
    for edge in graph["edges"]:
        children.setdefault(edge["source"], []).append(edge["target"])
    while frontier:
        node = frontier.pop()
        reached.add(node)
        frontier.extend(c for c in children.get(node, []) if c not in reached)
    assert set(events) - {requested["event_id"]} <= reached
    # The same graph from the correlation id.
    with console.client() as client:
        again = client.get(f"{API}/causation", params={"key": graph["correlation_id"]}).json()
    assert {n["id"] for n in again["nodes"]} == {n["id"] for n in graph["nodes"]}


def test_the_tail_follows_the_log_filtered(console: Console) -> None:
    account = f"acc-{uuid.uuid4().hex[:8]}"
    with console.client() as client:
        start = client.get(f"{API}/tail").json()
        assert start["events"] == []
        open_account(client, account, "Eve")
        client.post(f"/accounts/{account}", json={"type": "Deposit", "amount": 1})

        def mine(params: dict[str, Any]) -> list[str]:
            page = client.get(f"{API}/tail", params={"after": start["next"], **params}).json()
            return [e["type"] for e in page["events"] if e["stream_id"] == f"account-{account}"]

        # The tail is gap-safe: on PostgreSQL it holds back what follows any transaction
        # still open in the database (another test's, here), so it catches up, not at once.
        wait_until(
            lambda: mine({"category": "account"}) == ["AccountOpened", "MoneyDeposited"],
            "the tail to show both of the account's events",
        )
        assert mine({"type": "MoneyDeposited"}) == ["MoneyDeposited"]
        assert mine({"category": "transfer"}) == []


def test_pause_resume_and_rebuild_are_confirmed_and_recorded(console: Console) -> None:
    tag = uuid.uuid4().hex[:8]
    with console.client() as client:
        assert act(client, "/projections/transfers/pause", "wrong-name").status_code == 400
        no_operator = client.post(
            f"{API}/projections/transfers/pause", json={"confirm": "transfers"}
        )
        assert no_operator.status_code == 422
        assert act(client, "/projections/nope/pause", "nope").status_code == 404
        assert act(client, "/projections/transfers/explode", "transfers").status_code == 422
        paused = act(client, "/projections/transfers/pause", "transfers", "alice")
        assert paused.status_code == 200, paused.text
        assert slots(client, "transfers")[0]["state"] == "paused"
        # While paused, the transfers read model falls behind.
        open_account(client, f"acc-{tag}-a", "Al", 30.0)
        open_account(client, f"acc-{tag}-b", "Bo", 0.0)
        body = {
            "type": "RequestTransfer",
            "source": f"acc-{tag}-a",
            "target": f"acc-{tag}-b",
            "amount": 1,
        }
        client.post(f"/transfers/t-{tag}", json=body)
        wait_until(lambda: slots(client, "transfers")[0]["lag_events"] > 0, "transfers to lag")
        assert act(client, "/projections/transfers/pause", "transfers").status_code == 409
        assert act(client, "/projections/transfers/resume", "transfers", "bob").status_code == 200
        wait_until(
            lambda: (
                (rows := slots(client, "transfers"))
                and all(s["lag_events"] == 0 and s["state"] == "running" for s in rows)
            ),
            "the resumed transfers projection to catch up",
        )
        before = slots(client, "transfers")[0]["slot"]
        rebuilt = act(client, "/projections/transfers/rebuild", "transfers", "carol")
        assert rebuilt.status_code == 200, rebuilt.text
        wait_until(lambda: slots(client, "transfers")[0]["slot"] > before, "the rebuild to switch")
        assert act(client, "/projections/accounts/rebuild", "accounts").status_code == 409  # inline
        assert act(client, "/projections/transfer_saga/rebuild", "transfer_saga").status_code == 409
        actions = client.get(f"{API}/projections").json()["actions"]
    recorded = [(a["operator"], a["action"], a["projection"]) for a in actions]
    assert recorded[:3] == [
        ("carol", "rebuild", "transfers"),
        ("bob", "resume", "transfers"),
        ("alice", "pause", "transfers"),
    ]
    assert all(a["at"] for a in actions)


def test_a_parked_event_is_retried_once_fixed_and_another_skipped(console: Console) -> None:
    tag = uuid.uuid4().hex[:8]
    blocked = f"Mallory{tag}"
    console.blocked.write_text(f"{blocked}\n{blocked}-2\n")
    with console.client() as client:
        open_account(client, f"acc-{tag}", blocked)
        open_account(client, f"acc-{tag}-2", f"{blocked}-2")

        def parked() -> dict[str, dict[str, Any]]:
            letters = client.get(f"{API}/projections").json()["parked"].get("owners", [])
            return {d["stream_id"]: d for d in letters}

        found = wait_until(
            lambda: (
                len(parked().keys() & {f"account-acc-{tag}", f"account-acc-{tag}-2"}) == 2
                and parked()
            ),
            "owners to park both",
        )
        letter = found[f"account-acc-{tag}"]
        assert "is blocked" in letter["error"]
        path = f"/projections/owners/parked/{letter['event_id']}/retry"
        again = act(client, path, "owners", "dave")
        assert again.status_code == 200, again.text
        assert again.json()["result"].startswith("failed again: Blocked")
        assert f"account-acc-{tag}" in parked()
        handled = slots(client, "owners")[0]["handled"]
        console.blocked.write_text(f"{blocked}-2\n")
        fixed = act(client, path, "owners", "dave")
        assert fixed.json()["result"] == "handled", fixed.text
        assert f"account-acc-{tag}" not in parked()
        assert slots(client, "owners")[0]["handled"] == handled + 1
        # The runner took the projection up again after the retry.
        wait_until(lambda: slots(client, "owners")[0]["state"] == "running", "owners to run again")
        other = found[f"account-acc-{tag}-2"]
        skip = f"/projections/owners/parked/{other['event_id']}/skip"
        assert act(client, skip, "owners").json()["result"] == "skipped"
        assert f"account-acc-{tag}-2" not in parked()
        assert act(client, skip, "owners").status_code == 404
        missing = f"/projections/owners/parked/{uuid.uuid4()}/retry"
        assert act(client, missing, "owners").status_code == 404


def test_overview_and_relays(console: Console) -> None:
    async def relay_row() -> None:
        store = await open_store(console.server.store_url, create=False)
        try:
            row = await store.relay_checkpoints.acquire("amqp://test/console", "tester", 60)
            assert row is not None
            await store.relay_checkpoints.save("amqp://test/console", "tester", row.position, 0, 60)
            await store.relay_checkpoints.record_error("amqp://test/console", "broker gone")
        finally:
            await store.close()

    asyncio.run(relay_row())
    with console.client() as client:
        open_account(client, f"acc-{uuid.uuid4().hex[:8]}", "Fay")
        overview = wait_until(  # the owners runner, a process of its own, has claimed it
            lambda: (
                (o := client.get(f"{API}/overview").json())["projections"].get("owners") is not None
                and o
            ),
            "the runner of owners to start",
        )
        assert overview["store"]["ok"]
        assert overview["events"] > 0
        assert overview["streams"] > 0
        assert set(overview["projections"]) >= {"transfers", "transfer_saga", "owners"}
        relays = client.get(f"{API}/relays").json()["relays"]
    relay = next(r for r in relays if r["name"] == "amqp://test/console")
    assert relay["lag_events"] > 0
    assert relay["holding"]
    assert relay["owner"] == "tester"
    assert relay["last_error"] == "broker gone"
    assert relay["last_error_at"] is not None
    assert any(r["name"] == "amqp://test/console" for r in overview["relays"])

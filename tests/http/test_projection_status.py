"""What an operator sees of a stopped policy and a parked event, on a real ``facta serve``:
``/ready`` stays 200 but says ``degraded`` and names them, ``/status`` has the details,
``/metrics`` the stopped state, ``facta projections status`` the parked counts; and the way
back (restart, clear). Plus the edge: a transfer naming no account id is refused with 422."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from facta import Application, Event, EventEnvelope, open_store
from facta.examples.bank.domain import Account, OpenAccount
from facta.examples.bank.transfers import RequestTransfer, Transfer, TransferRequested
from facta.projections import Policy, PolicyContext, ProjectionRunner
from tests.cli.test_cli import facta
from tests.http.conftest import BACKEND_NAMES, drop_schema, start_server, store_url_for

BAD_IDS = ["bad id", "caf\N{HOT BEVERAGE}", "a\x00b", "bob\n", "x" * 300, ""]


def test_a_transfer_naming_no_account_id_is_refused_and_writes_nothing(
    client: httpx.Client, account_id: str
) -> None:
    client.post(
        f"/accounts/{account_id}",
        json={"type": "OpenAccount", "owner": "Ed", "initial_balance": 50.0},
    )
    for bad in BAD_IDS:
        for source, target in ((account_id, bad), (bad, account_id)):
            transfer = f"t-{uuid.uuid4().hex[:8]}"
            body = {"type": "RequestTransfer", "source": source, "target": target, "amount": 5}
            answer = client.post(f"/transfers/{transfer}", json=body)
            assert answer.status_code == 422, (repr(bad), answer.text)
            assert answer.json()["error"] == "invalid_input"
            assert client.get(f"/transfers/{transfer}").status_code == 404
    assert client.get(f"/accounts/{account_id}").json()["balance"] == 50.0


class BrokenSaga(Policy):
    """The transfer saga as a buggy release left it: stopped at the first request."""

    name = "transfer_saga"
    event_types = (TransferRequested,)
    on_error = "stop"
    retries = 0

    async def handle(self, envelope: EventEnvelope[Event], context: PolicyContext) -> None:
        raise RuntimeError("a bug in the old release")


class Auditor(Policy):
    """A policy (parking, the default) that cannot handle transfer requests."""

    name = "auditor"
    event_types = (TransferRequested,)
    retries = 0

    async def handle(self, envelope: EventEnvelope[Event], context: PolicyContext) -> None:
        raise KeyError("no auditor for that")


async def _prepare(url: str) -> None:
    """Two accounts, a transfer requested, the saga stopped at it, an auditor's event parked."""
    store = await open_store(url)
    try:
        app = Application(store)
        await app.execute(Account(), "alice", OpenAccount("Alice", Decimal("100.0")))
        await app.execute(Account(), "bob", OpenAccount("Bob", Decimal("0.0")))
        requested = await app.execute(
            Transfer(), "t-1", RequestTransfer("alice", "bob", Decimal("30.0"))
        )
        runner = ProjectionRunner(store, [BrokenSaga(), Auditor()], app=app)
        # Up to the request itself, not head(): on PostgreSQL the visible head can be held
        # behind it by other tests' transactions, and the saga would then not reach it.
        await runner.catch_up(until=requested.position)
        await runner.close()
    finally:
        await store.close()


def _wait_until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _metric(text: str, name: str, projection: str) -> float | None:
    """The value of metric ``name`` for ``projection`` on a Prometheus page."""
    for line in text.splitlines():
        if line.startswith(name + "{") and f'projection="{projection}"' in line:
            return float(line.split()[-1])
    return None


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_a_stopped_saga_and_a_parked_event_are_seen_and_mended(
    backend: str, tmp_path: Path
) -> None:
    url = store_url_for(backend, tmp_path)
    asyncio.run(_prepare(url))
    server = start_server(url, tmp_path)
    try:
        with server.client() as client:
            ready = client.get("/ready")
            assert ready.status_code == 200  # every instance can still serve
            body = ready.json()
            assert (body["status"], body["failed"], body["parked"], body["details"]) == (
                "degraded",
                ["transfer_saga"],
                {"auditor": 1},
                "/status",
            )
            status = client.get("/status").json()
            assert status["status"] == "degraded"
            slots = {p["name"]: p for p in status["projections"]}
            saga = slots["transfer_saga"]
            assert (saga["state"], saga["error"]) == (
                "failed",
                "RuntimeError: a bug in the old release",
            )
            assert saga["error_position"] is not None
            assert saga["lag_events"] > 0
            assert (slots["auditor"]["parked"], slots["auditor"]["state"]) == (1, "stopped")

            def stopped() -> float | None:
                page = client.get("/metrics").text
                return _metric(page, "facta_projection_stopped", "transfer_saga")

            _wait_until(lambda: stopped() == 1.0, "stopped=1")
            assert client.get("/transfers/t-1").json()["status"] == "requested"

            shown = facta("projections", "status", "--store", url, cwd=tmp_path)
            assert shown.returncode == 0, shown.stderr
            assert "transfer_saga (slot 1) is stopped at" in shown.stdout
            assert "auditor (slot 1) parked 1 event(s)" in shown.stdout

            # The fixed release runs (the service's own saga): restart the stopped one.
            restarted = facta(
                "projections", "restart", "transfer_saga", "--store", url, cwd=tmp_path
            )
            assert restarted.returncode == 0, restarted.stderr
            _wait_until(lambda: client.get("/transfers/t-1").json()["status"] == "completed", "t-1")
            _wait_until(lambda: stopped() == 0.0, "stopped=0")
            assert client.get("/accounts/bob").json()["balance"] == 30.0
            assert client.get("/ready").json()["failed"] == []
            assert client.get("/ready").json()["status"] == "degraded"  # still one parked

            listed = facta(
                "projections", "parked", "auditor", "--clear", "--store", url, cwd=tmp_path
            )
            assert listed.returncode == 0, listed.stderr
            assert "KeyError: 'no auditor for that'" in listed.stdout
            assert "cleared 1 parked event(s) of auditor" in listed.stdout
            ready = client.get("/ready").json()
            assert (ready["status"], ready["failed"], ready["parked"]) == ("ready", [], {})
            assert client.get("/status").json()["status"] == "ok"
    finally:
        server.stop()
        drop_schema(url)


class SplitAuditor(Auditor):
    """The auditor in three partitions (by transfer stream)."""

    name = "split_auditor"
    partitions = 3


async def _prepare_split(url: str) -> None:
    """Two transfers requested; the split auditor parks each, in its own partition."""
    store = await open_store(url)
    try:
        app = Application(store)
        await app.execute(Account(), "alice", OpenAccount("Alice", Decimal("100.0")))
        await app.execute(Account(), "bob", OpenAccount("Bob", Decimal("0.0")))
        for transfer in ("t-1", "t-2"):
            request = RequestTransfer("alice", "bob", Decimal("1.0"))
            last = await app.execute(Transfer(), transfer, request)
        runner = ProjectionRunner(store, [SplitAuditor()], app=app)
        await runner.catch_up(until=last.position)  # not head(): see _prepare
        await runner.close()
    finally:
        await store.close()


def test_a_partitioned_policy_shows_one_row_per_partition(tmp_path: Path) -> None:
    url = store_url_for("sqlite", tmp_path)
    asyncio.run(_prepare_split(url))
    server = start_server(url, tmp_path, "--no-projections")
    try:
        with server.client() as client:
            views = client.get("/status").json()["projections"]
            split = [v for v in views if v["name"] == "split_auditor"]
            assert [(v["partition"], v["partitions"]) for v in split] == [(p, 3) for p in range(3)]
            assert sum(v["handled"] for v in split) == 0  # both parked, none handled
            assert all(v["parked"] == 2 for v in split)  # the slot's count, on each partition
            # Counted once per slot where it adds up, not once per partition.
            assert client.get("/ready").json()["parked"] == {"split_auditor": 2}
        shown = facta("projections", "status", "--store", url, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "1 of 3" in shown.stdout
        assert shown.stdout.count("split_auditor (slot 1) parked 2 event(s)") == 1
    finally:
        server.stop()

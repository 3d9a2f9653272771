"""PostgreSQL failover under load (issue 23, campaign 1, short): three `facta serve` nodes on
one multi-host URL (``postgresql://primary,standby/db?target_session_attrs=read-write``),
clients depositing through all three with Idempotency-Keys; the primary is SIGKILLed and the
synchronous standby promoted. Every deposit acknowledged before, during or after is in the
log once, clients saw 503 (never a 500) meanwhile, each node found the new primary by
itself, and the inline read model equals the balances folded from the log.

Serial: it starts two PostgreSQL servers of its own and loads the machine for its span."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from facta import open_store
from tests.http.conftest import Server, free_port, start_server
from tests.topology.clusters import Pair

pytestmark = pytest.mark.serial

ACCOUNTS = 6
CLIENTS = 6
AFTER_RECOVERY = 1.0  # seconds of load once every node answers again


@dataclass
class Load:
    """What the clients saw."""

    acknowledged: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    killed: float | None = None  # when the primary was killed
    # Each node's first 200 to a request sent after the kill: when it works again.
    first_ok_after: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, node: int, outcome: str, key: str, sent: float, at: float) -> None:
        with self.lock:
            self.statuses[outcome] += 1
            if outcome == "200":
                self.acknowledged.append(key)
                if self.killed is not None and sent >= self.killed:
                    self.first_ok_after.setdefault(node, at)


def deposit_until_stopped(
    nodes: list[Server], accounts: list[str], load: Load, stop: threading.Event, seed: int
) -> None:
    """Deposit 1 to random accounts through the nodes in turn; a key that got no answer or
    a 503 is sent again (to the next node) until it is acknowledged."""
    chance = random.Random(seed)
    clients = [httpx.Client(base_url=n.url, timeout=10) for n in nodes]
    turn = seed
    try:
        while not stop.is_set():
            key, account = str(uuid.uuid4()), chance.choice(accounts)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                turn += 1
                node = turn % len(nodes)
                sent = time.monotonic()
                try:
                    answer = clients[node].post(
                        f"/accounts/{account}",
                        json={"type": "Deposit", "amount": 1.0},
                        headers={"Idempotency-Key": key},
                    )
                    outcome = str(answer.status_code)
                except httpx.TransportError as exc:
                    outcome = type(exc).__name__
                load.saw(node, outcome, key, sent, time.monotonic())
                if outcome == "200":
                    break
                time.sleep(0.05)
    finally:
        for client in clients:
            client.close()


def test_the_primary_killed_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    pair = Pair(free_port(), free_port())
    nodes: list[Server] = []
    try:
        pair.start()
        store_url = f"{pair.url}&schema=bank"
        for index in range(3):
            workdir = tmp_path / f"node{index}"
            workdir.mkdir()
            nodes.append(start_server(store_url, workdir))
        accounts = [f"fo-{i}" for i in range(ACCOUNTS)]
        with nodes[0].client() as client:
            for account in accounts:
                opened = client.post(
                    f"/accounts/{account}",
                    json={"type": "OpenAccount", "owner": "Flo", "initial_balance": 0},
                )
                assert opened.status_code == 200, opened.text

        load, stop = Load(), threading.Event()
        clients = [
            threading.Thread(target=deposit_until_stopped, args=(nodes, accounts, load, stop, s))
            for s in range(CLIENTS)
        ]
        for thread in clients:
            thread.start()
        time.sleep(1.5)
        before = len(load.acknowledged)
        killed = load.killed = time.monotonic()
        pair.primary.kill()
        pair.standby.promote()
        promoted = time.monotonic()
        deadline = killed + 60
        while len(load.first_ok_after) < len(nodes) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(AFTER_RECOVERY)
        stop.set()
        for thread in clients:
            thread.join(90)

        recovered = {node: at - killed for node, at in load.first_ok_after.items()}
        report = {
            "setup_s": round(pair.setup_seconds, 2),
            "acknowledged_before_kill": before,
            "acknowledged": len(load.acknowledged),
            "statuses": dict(load.statuses),
            "promote_s": round(promoted - killed, 2),
            "recovery_s": {n: round(s, 2) for n, s in sorted(recovered.items())},
        }
        print("failover:", json.dumps(report))
        assert len(recovered) == len(nodes), report  # every node found the new primary
        assert not [s for s in load.statuses if s.startswith("5") and s != "503"], report
        assert before > 0, report
        assert len(load.acknowledged) > before, report

        logged = asyncio.run(_command_ids_and_balances(store_url, accounts))
        command_ids, balances = logged
        # Every acknowledged deposit is in the log, once; nothing unacknowledged twice.
        assert not [k for k, n in Counter(command_ids).items() if n > 1]
        missing = [key for key in load.acknowledged if key not in command_ids]
        assert missing == [], f"{len(missing)} acknowledged deposits lost: {report}"
        with nodes[1].client() as client:
            listed = client.get("/accounts", params={"owner": "Flo", "limit": 100}).json()
            assert {a["id"]: Decimal(str(a["balance"])) for a in listed["accounts"]} == balances
            for account in accounts:
                state = client.get(f"/accounts/{account}").json()
                assert Decimal(str(state["balance"])) == balances[account]
        assert sum(balances.values()) == len(command_ids)
    finally:
        for node in nodes:
            node.stop()
        pair.remove()


async def _command_ids_and_balances(
    store_url: str, accounts: list[str]
) -> tuple[list[str], dict[str, Decimal]]:
    """The command ids of the deposits to ``accounts`` in the log, and each one's balance
    folded from its events (read from whichever server is the primary now)."""
    store = await open_store(store_url, create=False)
    try:
        ids: list[str] = []
        balances: dict[str, Decimal] = {}
        after = None
        while True:
            page = await (store.read_all() if after is None else store.read_all(after=after))
            if not page:
                break
            for event in page:
                account = event.stream_id.removeprefix("account-")
                if account not in accounts:
                    continue
                data = json.loads(event.data)
                if event.type == "AccountOpened":
                    balances[account] = Decimal(str(data["initial_balance"]))
                elif event.type == "MoneyDeposited":
                    balances[account] += Decimal(str(data["amount"]))
                    ids.append(json.loads(event.metadata)["command_id"])
            after = page[-1].position
        return ids, balances
    finally:
        await store.close()

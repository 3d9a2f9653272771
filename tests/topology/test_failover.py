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
import os
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from tests.http.conftest import Server, free_port, start_server
from tests.topology.clusters import Pair
from tests.topology.load import Load, command_ids_and_balances, deposit_until_stopped

pytestmark = pytest.mark.serial

ACCOUNTS = 6
CLIENTS = 6
# Seconds of load before the kill and once every node answers again: short in `make test`,
# longer in `make soak` (FACTA_TOPOLOGY_LOAD).
LOAD = float(os.environ.get("FACTA_TOPOLOGY_LOAD", "1.5"))
AFTER_RECOVERY = LOAD


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
        time.sleep(LOAD)
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

        logged = asyncio.run(command_ids_and_balances(store_url, accounts))
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

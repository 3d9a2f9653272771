"""PostgreSQL failover under load (issue 23, campaign 1, short): three `facta serve` nodes and
a `facta projections run` worker, each in a network namespace of its own, on one multi-host
URL (``postgresql://primary,standby/db?target_session_attrs=read-write``), clients
depositing through the three nodes with Idempotency-Keys; the primary is SIGKILLed and the
synchronous standby promoted. Every deposit acknowledged before, during or after is in the
log once, clients saw 503 (never a 500) meanwhile, each node found the new primary by
itself, a transfer requested afterwards is carried out once by the saga, and the inline read
model equals the balances folded from the log.

Serial: it starts two PostgreSQL servers of its own and loads the machine for its span."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from tests.http.conftest import Server, facta_command, free_port, start_server
from tests.topology.clusters import Pair
from tests.topology.load import Depositors, command_ids_and_balances, open_accounts
from tests.topology.netns import Namespace

pytestmark = pytest.mark.serial

ACCOUNTS = 6
CLIENTS = 6
# Seconds of load before the kill and once every node answers again: short in `make test`,
# longer in `make soak` (FACTA_TOPOLOGY_LOAD).
LOAD = float(os.environ.get("FACTA_TOPOLOGY_LOAD", "1.5"))
AFTER_RECOVERY = LOAD


def test_the_primary_killed_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    spaces = [Namespace() for _ in range(4)]  # three app nodes and a projection worker
    nodes: list[Server] = []
    worker: subprocess.Popen[bytes] | None = None
    pair: Pair | None = None
    try:
        for space in spaces:
            space.create()
        ports = free_port(), free_port()
        gateways = [space.back.gateway for space in spaces]
        pair = Pair(*ports, listen=",".join(["127.0.0.1", *gateways]))
        pair.start()

        def url(host: str) -> str:
            servers = f"{host}:{ports[0]},{host}:{ports[1]}"
            return f"postgresql://postgres@{servers}/postgres?target_session_attrs=read-write&schema=bank"

        store_url = url("127.0.0.1")
        for index, space in enumerate(spaces[:3]):
            workdir = tmp_path / f"node{index}"
            workdir.mkdir()
            nodes.append(
                start_server(
                    url(space.back.gateway),
                    workdir,
                    host=space.front.address,
                    prefix=space.command([]),
                )
            )
        worker = _worker(spaces[3], url(spaces[3].back.gateway), tmp_path / "worker.log")
        accounts = [f"fo-{i}" for i in range(ACCOUNTS)]
        open_accounts(nodes[0], accounts, "Flo", 0)
        depositors = Depositors(nodes, accounts, CLIENTS)
        load = depositors.load
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
        depositors.stop()

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

        with nodes[0].client() as client:  # the saga, in whichever runner holds it now
            requested = client.post(
                "/transfers/fo-transfer",
                json={
                    "type": "RequestTransfer",
                    "source": accounts[0],
                    "target": accounts[1],
                    "amount": 2.0,
                },
            )
            assert requested.status_code == 200, requested.text
            deadline = time.monotonic() + 60
            while client.get("/transfers/fo-transfer").json()["status"] != "completed":
                assert time.monotonic() < deadline, client.get("/transfers/fo-transfer").text
                time.sleep(0.2)

        logged = asyncio.run(command_ids_and_balances(store_url, accounts))
        command_ids, balances = logged
        # Every acknowledged deposit is in the log, once; nothing unacknowledged twice.
        assert not [k for k, n in Counter(command_ids).items() if n > 1]
        missing = [key for key in load.acknowledged if key not in command_ids]
        assert missing == [], f"{len(missing)} acknowledged deposits lost: {report}"
        assert len(set(command_ids) - set(load.acknowledged)) == 1  # the saga's credit
        with nodes[1].client() as client:
            listed = client.get("/accounts", params={"owner": "Flo", "limit": 100}).json()
            assert {a["id"]: Decimal(str(a["balance"])) for a in listed["accounts"]} == balances
            for account in accounts:
                state = client.get(f"/accounts/{account}").json()
                assert Decimal(str(state["balance"])) == balances[account]
        # Every deposit added 1; the transfer moved 2 once (its credit is a deposit too).
        assert sum(balances.values()) == len(set(load.acknowledged)), report
    finally:
        for node in nodes:
            node.stop()
        if worker is not None:
            worker.terminate()
            worker.wait(15)
        if pair is not None:
            pair.remove()
        for space in spaces:
            space.remove()


def _worker(space: Namespace, store_url: str, log: Path) -> subprocess.Popen[bytes]:
    """`facta projections run` of the bank's asynchronous projections and saga, in
    ``space`` (it shares them with the nodes' own runners, by lease)."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            space.command(
                [
                    *facta_command(),
                    "projections",
                    "run",
                    "--store",
                    store_url,
                    "--projection",
                    "facta.examples.bank.transfers:TransferSaga",
                    # The service keeps it inline: the saga's commands must keep it current.
                    "--inline",
                    "facta.examples.bank.read_model:AccountsProjection",
                    "--projection",
                    "facta.examples.bank.read_model:TransfersProjection",
                ]
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )

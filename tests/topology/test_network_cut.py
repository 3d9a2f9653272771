"""An app node cut off from its database and healed (issue 23, campaign 2, short).

Node A runs in a network namespace of its own, reaching PostgreSQL over one veth link and
its clients over another; node B runs beside the database. Clients deposit through both with
Idempotency-Keys, going to the other node when one fails. A's database link is taken down
(packets go nowhere: no reset, no refusal) for a few seconds, then brought up again.

Meanwhile A answers 503 within its statement bound (``command_timeout=2``), never hangs and
never answers 500, while B keeps serving; a transfer requested during the cut is carried out
by the saga (on B, if A held its lease); once healed, A serves again. Afterwards every
acknowledged deposit is in the log once, the read model equals the log, and the transfer
moved its money once.

Serial: it starts a PostgreSQL server of its own and loads the machine for its span."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import Server, free_port, start_server
from tests.topology.clusters import Pair
from tests.topology.load import Depositors, command_ids_and_balances, open_accounts
from tests.topology.netns import Namespace

pytestmark = pytest.mark.serial

ACCOUNTS = 4
CLIENTS = 4
# Seconds of load before the cut and of the cut itself: short in `make test`, longer in
# `make soak` (FACTA_TOPOLOGY_LOAD, FACTA_TOPOLOGY_CUT).
LOAD = float(os.environ.get("FACTA_TOPOLOGY_LOAD", "1.0"))
CUT_SECONDS = float(os.environ.get("FACTA_TOPOLOGY_CUT", "5.0"))
STATEMENT_BOUND = 2  # seconds: the store URL's command_timeout


def test_a_node_cut_off_from_the_database_answers_503_and_recovers(tmp_path: Path) -> None:
    namespace = Namespace()
    namespace.create()
    port = free_port()
    pair = Pair(port, free_port(), listen=f"127.0.0.1,{namespace.back.gateway}")
    nodes: list[Server] = []
    try:
        pair.start(standby=False)
        options = f"/postgres?schema=bank&command_timeout={STATEMENT_BOUND}"
        for index, (database, host, prefix) in enumerate(
            [
                (namespace.back.gateway, namespace.front.address, namespace.command([])),
                ("127.0.0.1", "127.0.0.1", []),
            ]
        ):
            workdir = tmp_path / f"node{index}"
            workdir.mkdir()
            url = f"postgresql://postgres@{database}:{port}{options}"
            nodes.append(start_server(url, workdir, host=host, prefix=prefix))
        cut_node, other = nodes
        accounts = [f"cut-{i}" for i in range(ACCOUNTS)]
        open_accounts(other, accounts, "Cy", 100)
        depositors = Depositors(nodes, accounts, CLIENTS)
        load = depositors.load
        time.sleep(LOAD)
        namespace.cut()
        cut_at = time.monotonic()
        during = _answers_while(cut_node, accounts[0], CUT_SECONDS)
        transfer = "cut-transfer"
        with other.client() as client:
            requested = client.post(
                f"/transfers/{transfer}",
                json={
                    "type": "RequestTransfer",
                    "source": accounts[0],
                    "target": accounts[1],
                    "amount": 30.0,
                },
            )
            assert requested.status_code == 200, requested.text
        namespace.heal()
        healed_at = time.monotonic()
        recovered = _first_200(cut_node, accounts[0], 30)
        time.sleep(LOAD)
        depositors.stop()
        with other.client() as client:
            deadline = time.monotonic() + 60
            while client.get(f"/transfers/{transfer}").json()["status"] != "completed":
                assert time.monotonic() < deadline, client.get(f"/transfers/{transfer}").text
                time.sleep(0.2)

        report = {
            "acknowledged": len(load.acknowledged),
            "statuses": dict(load.statuses),
            "cut_node_during_cut": dict(Counter(status for status, _ in during)),
            "longest_answer_during_cut_s": round(max(s for _, s in during), 2),
            "cut_s": round(healed_at - cut_at, 2),
            "recovered_after_heal_s": round(recovered - healed_at, 2),
        }
        print("network cut:", json.dumps(report))
        assert {status for status, _ in during} == {"503"}, report
        # Bounded by the statement bound, never by TCP's retransmission timeout (about 15
        # minutes): a request may wait for the statements queued ahead of it in the group
        # commit and for its stream's read, each bounded.
        assert max(s for _, s in during) < 4 * STATEMENT_BOUND + 2, report
        assert not [s for s in load.statuses if s.startswith("5") and s != "503"], report

        command_ids, balances = asyncio.run(command_ids_and_balances(other.store_url, accounts))
        assert not [k for k, n in Counter(command_ids).items() if n > 1]
        missing = [key for key in load.acknowledged if key not in command_ids]
        assert missing == [], f"{len(missing)} acknowledged deposits lost: {report}"
        # The saga's credit is a deposit too, under a command id of its own: once.
        assert len(set(command_ids) - set(load.acknowledged)) == 1, report
        with cut_node.client() as client:  # healed: it reads the same as the other
            listed = client.get("/accounts", params={"owner": "Cy", "limit": 100}).json()
        served = {a["id"]: Decimal(str(a["balance"])) for a in listed["accounts"]}
        assert served == balances, report  # the read model equals the log
        # Money is conserved: the transfer moved 30 once; every deposit added 1.
        assert sum(served.values()) == 100 * ACCOUNTS + len(command_ids) - 1, report
    finally:
        for node in nodes:
            node.stop()
        pair.remove()
        namespace.remove()


def _answers_while(node: Server, account: str, seconds: float) -> list[tuple[str, float]]:
    """Deposit through ``node`` for ``seconds`` (new keys): each answer and how long it took."""
    answers = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=node.url, timeout=STATEMENT_BOUND + 20) as client:
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                status = str(
                    client.post(
                        f"/accounts/{account}", json={"type": "Deposit", "amount": 1.0}
                    ).status_code
                )
            except httpx.TransportError as exc:
                status = type(exc).__name__
            answers.append((status, time.monotonic() - sent))
            time.sleep(0.2)
    return answers


def _first_200(node: Server, account: str, seconds: float) -> float:
    """When ``node`` first reads ``account`` again (fails the test after ``seconds``)."""
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=node.url, timeout=10) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(f"/accounts/{account}").status_code == 200:
                    return time.monotonic()
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise AssertionError(f"{node.url} did not serve again within {seconds} s of the heal")

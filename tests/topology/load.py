"""Deposit load for the topology tests: clients depositing through several app nodes with
Idempotency-Keys until told to stop, what they saw, and what the log holds afterwards."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import httpx

from facta import open_store
from tests.http.conftest import Server


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


async def command_ids_and_balances(
    store_url: str, accounts: list[str]
) -> tuple[list[str], dict[str, Decimal]]:
    """The command ids of the deposits to ``accounts`` in the log, and each one's balance
    folded from its events (opened, deposits, withdrawals), read from whichever server is
    the primary now."""
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
                elif event.type == "MoneyWithdrawn":
                    balances[account] -= Decimal(str(data["amount"]))
            after = page[-1].position
        return ids, balances
    finally:
        await store.close()


def open_accounts(node: Server, accounts: list[str], owner: str, balance: float) -> None:
    """Open ``accounts`` of ``owner`` through ``node``, each with ``balance``."""
    with node.client() as client:
        for account in accounts:
            opened = client.post(
                f"/accounts/{account}",
                json={"type": "OpenAccount", "owner": owner, "initial_balance": balance},
            )
            assert opened.status_code == 200, opened.text


class Depositors:
    """``count`` client threads depositing through ``nodes`` (see deposit_until_stopped)
    from construction until :meth:`stop`; what they saw is in :attr:`load`."""

    def __init__(self, nodes: list[Server], accounts: list[str], count: int) -> None:
        self.load, self._stop = Load(), threading.Event()
        self._threads = [
            threading.Thread(
                target=deposit_until_stopped, args=(nodes, accounts, self.load, self._stop, s)
            )
            for s in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop them once each has its current deposit acknowledged (or gave up on it)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(90)

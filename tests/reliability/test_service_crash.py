"""Crash safety: the service is killed with SIGKILL under load, several times, and restarted.

Clients send deposits, withdrawals and transfers, each with its own Idempotency-Key. An
answer of 2xx is an acknowledgement; a dropped connection leaves the outcome unknown, and the
client retries with the same key after the restart (which must apply the command once). At
the end, against the log itself: every acknowledged command is there exactly once, no event
is duplicated, every stream's versions are gap-free, balances equal the fold of the log and
never went negative, money is conserved, every transfer finished, and the accounts read model
equals the fold.

``FACTA_CRASH_KILLS`` / ``FACTA_CRASH_SECONDS`` scale it up (``make soak``).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from facta import Application, open_store
from facta.examples.bank.domain import Account, AccountState
from tests.http.conftest import BACKEND_NAMES, Server, drop_schema, start_server, store_url_for

KILLS = int(os.environ.get("FACTA_CRASH_KILLS", "3"))
SECONDS_BETWEEN_KILLS = float(os.environ.get("FACTA_CRASH_SECONDS", "1.5"))
CLIENTS = 16
ACCOUNTS = [f"acc-{i}" for i in range(6)]
OPENING = Decimal("1000.0")


@dataclass
class Ledger:
    """What the clients were told."""

    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> body
    rejected: set[str] = field(default_factory=set)
    unknown: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    transfers: set[str] = field(default_factory=set)
    crashes_seen: int = 0
    retried: int = 0


class Service:
    """The server process, restartable, with its current base URL."""

    def __init__(self, store_url: str, workdir: Path) -> None:
        self.store_url = store_url
        self.workdir = workdir
        self.server: Server = start_server(store_url, workdir)

    def kill(self) -> None:
        os.kill(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait(10)

    def restart(self) -> None:
        self.server = start_server(self.store_url, self.workdir)


NUMBERS = msgspec.json.Encoder(decimal_format="number")


async def send(
    http: httpx.AsyncClient, service: Service, path: str, body: dict[str, Any], key: str
) -> int | None:
    """POST once; the status, or None when the connection broke (outcome unknown)."""
    # Money goes as a JSON number (the API refuses strings), written exactly: "12.30".
    money = {k: Decimal(body[k]) for k in ("amount", "initial_balance") if k in body}
    content = NUMBERS.encode({**body, **money})
    try:
        response = await http.post(
            f"{service.server.url}{path}",
            content=content,
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
        )
    except httpx.TransportError:
        return None
    return response.status_code


async def client(
    http: httpx.AsyncClient, service: Service, ledger: Ledger, stop: asyncio.Event
) -> None:
    rng = random.Random()
    while not stop.is_set():
        key = uuid.uuid4().hex
        choice = rng.random()
        amount = f"{rng.randint(1, 200)}.{rng.randint(0, 99):02d}"
        if choice < 0.2:
            source, target = rng.sample(ACCOUNTS, 2)
            path = f"/transfers/t-{key[:12]}"
            body = {"type": "RequestTransfer", "source": source, "target": target, "amount": amount}
        else:
            path = f"/accounts/{rng.choice(ACCOUNTS)}"
            body = {"type": "Deposit" if choice < 0.6 else "Withdraw", "amount": amount}
        status = await send(http, service, path, body, key)
        if status is None or status >= 500:
            ledger.unknown[key] = (path, body)
            await asyncio.sleep(0.05)
        elif status < 300:
            ledger.acknowledged[key] = {"path": path, **body}
            if path.startswith("/transfers"):
                ledger.transfers.add(path.removeprefix("/transfers/"))
        elif status == 400:
            ledger.rejected.add(key)
        else:
            raise AssertionError(f"{path} {body} answered {status}")


async def campaign(service: Service, ledger: Ledger) -> None:
    async with httpx.AsyncClient(timeout=10.0) as http:
        for account in ACCOUNTS:
            body = {"type": "OpenAccount", "owner": account, "initial_balance": str(OPENING)}
            status = await send(http, service, f"/accounts/{account}", body, f"open-{account}")
            assert status == 200
        for _ in range(KILLS):
            stop = asyncio.Event()
            clients = [
                asyncio.create_task(client(http, service, ledger, stop)) for _ in range(CLIENTS)
            ]
            await asyncio.sleep(SECONDS_BETWEEN_KILLS * random.uniform(0.6, 1.4))
            await asyncio.to_thread(service.kill)
            ledger.crashes_seen += 1
            await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*clients)
            await asyncio.to_thread(service.restart)
        # Settle every unknown outcome by retrying it with its key: it applies at most once.
        for key, (path, body) in list(ledger.unknown.items()):
            status = await send(http, service, path, body, key)
            assert status is not None
            assert status < 500, f"retry of {key} answered {status}"
            del ledger.unknown[key]
            ledger.retried += 1
            if status < 300:
                ledger.acknowledged[key] = {"path": path, **body}
                if path.startswith("/transfers"):
                    ledger.transfers.add(path.removeprefix("/transfers/"))
            else:
                ledger.rejected.add(key)
        await wait_for_transfers(http, service, ledger)


async def wait_for_transfers(http: httpx.AsyncClient, service: Service, ledger: Ledger) -> None:
    """The saga resumes after each restart; wait until every transfer reached an end."""
    pending = set(ledger.transfers)
    for _ in range(600):
        for transfer in list(pending):
            response = await http.get(f"{service.server.url}/transfers/{transfer}")
            if response.status_code == 200 and response.json()["status"] in (
                "completed",
                "rejected",
                "refunded",
            ):
                pending.discard(transfer)
        if not pending:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"transfers never finished: {sorted(pending)[:5]}")


async def verify(service: Service, ledger: Ledger) -> None:
    store = await open_store(service.store_url)
    try:
        log = []
        page = await store.read_all(limit=10_000)
        while page:
            log.extend(page)
            page = await store.read_all(after=page[-1].position, limit=10_000)
        assert len({e.event_id for e in log}) == len(log), "an event id is stored twice"
        streams: dict[str, list[int]] = {}
        for event in log:
            streams.setdefault(event.stream_id, []).append(event.version)
        for stream, versions in streams.items():
            assert versions == list(range(1, len(versions) + 1)), f"{stream} has gaps"

        by_command = Counter(e.meta.get("command_id") for e in log)
        for key, body in ledger.acknowledged.items():
            assert by_command[key] == 1, f"acknowledged {body} is in the log {by_command[key]}x"
        for key in ledger.rejected:
            assert by_command[key] == 0, f"rejected command {key} wrote events"

        app = Application(store)
        account = Account()
        total = Decimal(0)
        async with httpx.AsyncClient(base_url=service.server.url, timeout=10.0) as http:
            listed = {
                a["id"]: a for a in (await http.get("/accounts?limit=100")).json()["accounts"]
            }
            for entity in ACCOUNTS:
                state: AccountState = account.initial
                for envelope in await app.history(account, entity):
                    state = account.evolve(state, envelope.event)
                    assert state.balance >= 0, f"{entity} went negative"
                served = (await http.get(f"/accounts/{entity}")).json()
                assert Decimal(str(served["balance"])) == state.balance
                assert Decimal(str(listed[entity]["balance"])) == state.balance
                total += state.balance
        deposits = withdrawals = Decimal(0)
        for body in ledger.acknowledged.values():
            if body["type"] == "Deposit":
                deposits += Decimal(body["amount"])
            elif body["type"] == "Withdraw":
                withdrawals += Decimal(body["amount"])
        assert total == OPENING * len(ACCOUNTS) + deposits - withdrawals, "money was not conserved"
    finally:
        await store.close()


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_acknowledged_commands_survive_sigkill_under_load(backend: str, tmp_path: Path) -> None:
    service = Service(store_url_for(backend, tmp_path), tmp_path)
    ledger = Ledger()
    try:
        asyncio.run(campaign(service, ledger))
        asyncio.run(verify(service, ledger))
    finally:
        service.server.stop()
        drop_schema(service.store_url)
    assert ledger.crashes_seen == KILLS
    assert len(ledger.acknowledged) > 50
    print(
        f"{backend}: {len(ledger.acknowledged)} acknowledged, {len(ledger.rejected)} rejected,"
        f" {len(ledger.transfers)} transfers, {ledger.retried} unknown outcomes retried by key,"
        f" {ledger.crashes_seen} kills survived"
    )

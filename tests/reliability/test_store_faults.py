"""Store faults: PostgreSQL terminates the service's connections again and again under load.

Meanwhile the service answers 503 (never a 500, never a hang); when the faults stop it recovers
by itself, and no acknowledged command is lost or applied twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from facta import open_store
from tests.http.conftest import POSTGRES_URL, drop_schema, postgres_store_url, start_server

ACCOUNTS = [f"acc-{i}" for i in range(4)]


async def terminate(application_name: str, stop: asyncio.Event) -> int:
    """Terminate every connection the service holds, every 0.5 s, until ``stop``."""
    admin = await asyncpg.connect(POSTGRES_URL)
    killed = 0
    try:
        while not stop.is_set():
            rows = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = $1",
                application_name,
            )
            killed += len(rows)
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    return killed


async def drive(url: str, seconds: float) -> tuple[dict[str, str], dict[str, str], Counter[int]]:
    acknowledged: dict[str, str] = {}
    unsettled: dict[str, str] = {}  # key -> account, outcome unknown
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient, account: str) -> None:
        while time.monotonic() < deadline:
            key = uuid.uuid4().hex
            try:
                response = await http.post(
                    f"/accounts/{account}",
                    json={"type": "Deposit", "amount": 1.5},
                    headers={"Idempotency-Key": key},
                )
            except httpx.TransportError:
                statuses[0] += 1
                unsettled[key] = account
                continue
            statuses[response.status_code] += 1
            if response.status_code == 200:
                acknowledged[key] = account
            else:
                assert response.status_code == 503, response.text
                assert response.headers.get("Retry-After")
                unsettled[key] = account
                await asyncio.sleep(0.05)

    async with httpx.AsyncClient(base_url=url, timeout=15.0) as http:
        await asyncio.gather(*(client(http, ACCOUNTS[i % 4]) for i in range(12)))
    return acknowledged, unsettled, statuses


async def campaign(tmp_path: Path, schema_url: str) -> None:
    name = f"faults_{uuid.uuid4().hex[:8]}"
    store_url = f"{schema_url}&application_name={name}"
    server = start_server(store_url, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=15.0) as http:
            for account in ACCOUNTS:
                body = {"type": "OpenAccount", "owner": "Ann", "initial_balance": 0}
                assert (await http.post(f"/accounts/{account}", json=body)).status_code == 200
        stop = asyncio.Event()
        killer = asyncio.create_task(terminate(name, stop))
        acknowledged, unsettled, statuses = await drive(server.url, 6.0)
        stop.set()
        killed = await killer
        assert killed > 0
        assert statuses[503] > 0, f"no fault was visible: {statuses}"
        assert set(statuses) <= {0, 200, 503}

        # Recovered by itself: commands succeed again within a few seconds.
        async with httpx.AsyncClient(base_url=server.url, timeout=15.0) as http:
            for _ in range(100):
                response = await http.post(
                    f"/accounts/{ACCOUNTS[0]}", json={"type": "Deposit", "amount": 1}
                )
                if response.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert response.status_code == 200
            for key, account in unsettled.items():  # a retry by key settles it, once
                response = await http.post(
                    f"/accounts/{account}",
                    json={"type": "Deposit", "amount": 1.5},
                    headers={"Idempotency-Key": key},
                )
                assert response.status_code == 200, response.text
    finally:
        server.stop()

    store = await open_store(store_url)
    try:
        log = await store.read_all(limit=1_000_000)
    finally:
        await store.close()
    by_key = Counter(e.meta.get("command_id") for e in log)
    for key in acknowledged:
        assert by_key[key] == 1, f"acknowledged {key} is in the log {by_key[key]} times"
    assert len({e.event_id for e in log}) == len(log)
    print(
        f"faults: {killed} connections terminated, {len(acknowledged)} acknowledged,"
        f" statuses {dict(statuses)}, {len(unsettled)} unknown outcomes settled by key"
    )


def test_terminated_connections_give_503_and_the_service_recovers(tmp_path: Path) -> None:
    schema_url = postgres_store_url()
    try:
        asyncio.run(campaign(tmp_path, schema_url))
    finally:
        drop_schema(schema_url)

"""Old events decode in processes that never ran a command: a projection worker and
``facta events verify``, each knowing only the new code's event classes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from facta import open_store
from facta.projections import ReadStore
from facta.store.base import EventStore
from tests.conftest import open_scratch_postgres
from tests.evolution.balances import Balance, WalletBalances
from tests.test_schema_evolution import write_with_v1

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a store holding only what version 1 of the wallet wrote."""
    store: EventStore
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wallets.db'}"
        store = await open_store(url)
    else:
        store = await open_scratch_postgres()
        url = store.url
    await write_with_v1(store)
    try:
        yield url
    finally:
        await store.close()


def facta(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facta.cli", *arguments],
        cwd=ROOT,  # so that ``tests.evolution`` imports
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_projection_worker_of_the_new_code_reads_the_old_events(store_url: str) -> None:
    rebuilt = facta(
        "projections",
        "rebuild",
        "wallet_balances",
        "--store",
        store_url,
        "--projection",
        "tests.evolution.balances:WalletBalances",
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    store = await open_store(store_url)
    read_store = ReadStore(store)
    try:
        balance = await read_store.documents(WalletBalances).get("wallet-w-1")
    finally:
        await read_store.close()
        await store.close()
    # WalletOpened v1 upcast twice; FundsAdded (in cents) renamed and upcast.
    assert balance == Balance("Ann", "basic", Decimal("12.55"))


async def test_events_verify_of_the_new_code_decodes_the_old_events(store_url: str) -> None:
    verified = facta(
        "events", "verify", "--store", store_url, "--aggregate", "tests.evolution.wallet_v3:Wallet"
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "every event decodes" in verified.stdout

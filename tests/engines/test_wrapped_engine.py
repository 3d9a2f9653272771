"""An engine of another package's (tests/engine_plugin, installed by ``make install``): found
by its entry point, it passes the conformance suite facta ships, and ``facta serve`` serves
the bank on it, with nothing in facta's source naming it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest

from facta import Engine, open_store
from facta.store.registry import BUILT_IN
from facta.testing.conformance import EngineContract
from tests.http.conftest import start_server

ROOT = Path(__file__).resolve().parents[2]


def test_the_engine_is_found_by_its_entry_point_not_by_facta() -> None:
    [entry] = entry_points(group="facta.engines", name="wrapped")
    assert entry.value == "facta_wrapped_engine:open_engine"
    assert "wrapped" not in BUILT_IN
    named = [p for p in (ROOT / "src").rglob("*.py") if "facta_wrapped_engine" in p.read_text()]
    assert not named


class TestWrappedEngine(EngineContract):
    """The whole shipped suite, on the third party's engine."""

    @pytest.fixture
    async def store(self) -> AsyncIterator[Engine]:
        engine = await open_store("wrapped://conformance")
        assert engine.name == "wrapped"
        yield engine
        await engine.close()


def _eventually(check: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_facta_serve_serves_the_bank_on_it(tmp_path: Path) -> None:
    server = start_server("wrapped://bank", tmp_path)
    try:
        with server.client() as client:
            for account, balance in (("alice", 100.0), ("bob", 0.0)):
                opened = client.post(
                    f"/accounts/{account}",
                    json={"type": "OpenAccount", "owner": account, "initial_balance": balance},
                )
                assert opened.status_code == 200, opened.text
            deposit = client.post("/accounts/alice", json={"type": "Deposit", "amount": 25.5})
            assert deposit.json() == {
                "id": "alice",
                "owner": "alice",
                "balance": 125.5,
                "version": 2,
            }
            requested = client.post(
                "/transfers/t-1",
                json={"type": "RequestTransfer", "source": "alice", "target": "bob", "amount": 5},
            )
            assert requested.status_code == 200, requested.text

            def settled() -> bool:
                return client.get("/transfers/t-1").json()["status"] == "completed"

            _eventually(settled)
            listed = client.get("/accounts", params={"sort": "account_id"}).json()["accounts"]
            balances = {a["id"]: Decimal(str(a["balance"])) for a in listed}
            assert balances == {"alice": Decimal("120.5"), "bob": Decimal("5")}
            assert client.get("/ready").json()["status"] == "ready"
            history = client.get("/accounts/alice/events").json()
            assert [e["type"] for e in history] == [
                "AccountOpened",
                "MoneyDeposited",
                "MoneyWithdrawn",
            ]
    except httpx.HTTPError:
        raise AssertionError(server.output()) from None
    finally:
        server.stop()

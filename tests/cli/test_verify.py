"""`facta events verify`: every stored event decodes with the code about to deploy."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from facta import Application, NewEvent, open_store
from facta.examples.bank.domain import Account, Deposit, OpenAccount
from tests.cli.test_cli import facta


async def fill(url: str, *, bad: bool) -> None:
    store = await open_store(url)
    app = Application(store)
    await app.execute(Account(), "acc-1", OpenAccount("Alice", Decimal("10.0")))
    await app.execute(Account(), "acc-1", Deposit(Decimal("5.5")))
    if bad:
        await store.append("account-acc-9", [NewEvent("MoneyVanished", b"{}")])
        await store.append("account-acc-8", [NewEvent("MoneyDeposited", b'{"amount":"x"}')])
    await store.close()


async def test_a_clean_store_verifies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'facta.db'}"
    await fill(url, bad=False)
    result = facta("events", "verify", "--store", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "every event decodes" in result.stdout
    assert "AccountOpened" in result.stdout


async def test_undecodable_events_are_reported_per_type_with_a_nonzero_exit(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'facta.db'}"
    await fill(url, bad=True)
    result = facta("events", "verify", "--store", url, cwd=tmp_path)
    assert result.returncode == 1
    assert "MoneyVanished" in result.stdout
    assert "account-acc-9" in result.stdout
    assert "account-acc-8" in result.stdout  # the first bad MoneyDeposited
    assert "2 event type(s) do not decode" in result.stderr


def test_a_bad_aggregate_spec_is_a_usage_error(tmp_path: Path) -> None:
    result = facta("events", "verify", "--aggregate", "nowhere:Nothing", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot load 'nowhere:Nothing'" in result.stderr


async def test_a_gap_in_a_stream_is_reported(tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path / 'facta.db'}"
    await fill(url, bad=False)
    # Only a hand-edited database can have a gap: write one behind the store's back.
    with sqlite3.connect(tmp_path / "facta.db") as connection:
        connection.execute(
            "INSERT INTO events (event_id, stream_id, category, version, type, schema_version,"
            " data, metadata, recorded_at) VALUES ('x-1', 'account-acc-1', 'account', 4,"
            " 'MoneyDeposited', 1, '{\"amount\":1.0}', '{}', 0)"
        )
    result = facta("events", "verify", "--store", url, cwd=tmp_path)
    assert result.returncode == 1
    assert "gap in account-acc-1: version 4 where 3 was due" in result.stdout

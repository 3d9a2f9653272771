"""``facta streams delete|truncate|retention|scavenge`` and ``facta archive run|status`` as
a user runs them, real processes on SQLite and PostgreSQL: what each prints, what it leaves
in the store (read back through facta), and the one-line refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from facta import Application, StreamGone, open_store
from facta.examples.bank.domain import Account, Deposit, OpenAccount
from tests.cli.test_cli import facta
from tests.http.conftest import BACKEND_NAMES, drop_schema, store_url_for


async def _fill(url: str) -> None:
    store = await open_store(url)
    try:
        app = Application(store)
        for n in range(1, 5):
            await app.execute(Account(), f"acc-{n}", OpenAccount(f"Holder {n}", Decimal(10)))
            for _ in range(5):
                await app.execute(Account(), f"acc-{n}", Deposit(Decimal(1)))
    finally:
        await store.close()


async def _read(url: str) -> dict[str, object]:
    store = await open_store(url, create=False)
    try:
        app = Application(store)
        found: dict[str, object] = {}
        for n in range(1, 5):
            try:
                found[f"acc-{n}"] = (await app.load(Account(), f"acc-{n}")).state.balance
            except StreamGone:
                found[f"acc-{n}"] = "gone"
        found["versions"] = [r.version for r in await store.read_stream("account-acc-1")]
        return found
    finally:
        await store.close()


@pytest.fixture(params=BACKEND_NAMES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = store_url_for(request.param, tmp_path)
    asyncio.run(_fill(url))
    yield url
    drop_schema(url)


def test_deleting_truncating_scavenging_and_archiving(store_url: str, tmp_path: Path) -> None:
    def run(*args: str) -> str:
        result = facta(*args, "--store", store_url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    out = run("streams", "retention", "account-acc-1", "--max-count", "3")
    assert "retention of stream account-acc-1: max age - s, max count 3" in out
    out = run("streams", "scavenge")
    assert "1 stream(s) with a rule, 1 truncated, 3 event(s) erased" in out
    out = run("streams", "truncate", "account-acc-2", "--before", "4", "--yes")
    assert "truncated account-acc-2: 3 event(s) erased, a snapshot at version 3" in out
    out = run("streams", "delete", "account-acc-3", "--reason", "closed", "--yes")
    assert "deleted account-acc-3 (soft): tombstone at version 7" in out
    out = run("streams", "delete", "account-acc-4", "--hard", "--yes")
    assert "deleted account-acc-4 (hard): tombstone at version 7" in out
    assert "6 event(s) erased" in out
    state = asyncio.run(_read(store_url))
    assert state == {
        "acc-1": Decimal(15),
        "acc-2": Decimal(15),
        "acc-3": "gone",
        "acc-4": "gone",
        "versions": [4, 5, 6],
    }
    archive = str(tmp_path / "archive")
    # Every stream is younger than a day: only the deleted one moves (its events but the
    # tombstone), then everything with --older-than 0.
    out = run("archive", "run", "--archive", archive, "--older-than", "1")
    assert "archived 6 event(s) of 1 stream(s)" in out
    out = run("archive", "run", "--archive", archive, "--older-than", "0", "--compact")
    assert "archived 4 event(s) of 2 stream(s)" in out  # acc-1: 4, 5; acc-2: 4, 5
    out = run("archive", "status", "--archive", archive)
    assert "archived events: 10" in out
    assert "archived streams: 3" in out
    assert "database events: 5" in out  # each account's last event, and the rule
    through = f"{store_url}{'&' if '?' in store_url else '?'}archive={archive}"
    assert asyncio.run(_read(through)) == state


def test_refusals_are_one_line(store_url: str, tmp_path: Path) -> None:
    cases = [
        (("streams", "delete", "account-nobody", "--yes"), "not found"),
        (("streams", "delete", "bad id", "--yes"), "stream id"),
        (("streams", "truncate", "account-acc-1", "--before", "9", "--yes"), "version 6"),
        (("streams", "retention", "account-acc-1", "--max-count", "0"), "0 is not in the range"),
        (("archive", "run", "--older-than", "1"), "archive=DIR"),
        (("archive", "status"), "archive=DIR"),
    ]
    for args, message in cases:
        result = facta(*args, "--store", store_url, cwd=tmp_path)
        assert result.returncode != 0, (args, result.stdout)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert asyncio.run(_read(store_url))["versions"] == [1, 2, 3, 4, 5, 6]

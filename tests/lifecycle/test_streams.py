"""Deleting, truncating and retention, on every engine (the ``store`` fixture: memory,
SQLite, PostgreSQL), through the bank: what loads, what is refused, what stays in the log,
and what the inline read model holds afterwards."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from facta import Application, Engine, StreamDeleted, StreamGone, StreamNotFound
from facta.examples.bank.domain import Account, Deposit, OpenAccount
from facta.examples.bank.read_model import Accounts, AccountsProjection
from facta.lifecycle import (
    delete_stream,
    retention_rules,
    scavenge,
    set_retention,
    truncate_stream,
)
from facta.projections import InlineProjections, ReadStore
from facta.store.base import NewEvent
from facta.store.engine import Erasure, Snapshots
from facta.store.erasure import Eraser


async def bank(store: Engine, deposits: int = 4) -> tuple[Application, ReadStore]:
    """Accounts acc-1 (opened, then ``deposits`` deposits of 1) and acc-2, with the accounts
    read model kept inline."""
    read_store = ReadStore(store)
    inline = InlineProjections(store, [AccountsProjection()])
    await inline.setup()
    app = Application(store, transaction_hook=inline)
    await app.execute(Account(), "acc-1", OpenAccount("Ada", Decimal(100)))
    for _ in range(deposits):
        await app.execute(Account(), "acc-1", Deposit(Decimal(1)))
    await app.execute(Account(), "acc-2", OpenAccount("Grace", Decimal(7)))
    return app, read_store


async def test_a_soft_deleted_account_is_gone_but_its_history_stays(store: Engine) -> None:
    app, read_store = await bank(store)
    deletion = await delete_stream(store, "account-acc-1", reason="closed by the holder", app=app)
    assert (deletion.version, deletion.erased, deletion.hard) == (6, 0, False)
    with pytest.raises(StreamGone, match="deleted"):
        await app.load(Account(), "acc-1")
    with pytest.raises(StreamGone):  # no command runs on it, a creating one neither
        await app.execute(Account(), "acc-1", OpenAccount("Eve", Decimal(1)))
    assert await store.stream_version("account-acc-1") == 6  # the id is not reused
    # Its events stay readable, and time travel to before the deletion works.
    assert [r.version for r in await store.read_stream("account-acc-1")] == [1, 2, 3, 4, 5, 6]
    assert (await app.load(Account(), "acc-1", version=5)).state.balance == Decimal(104)
    tombstone = app.decode_all(await store.read_stream("account-acc-1", from_version=6))
    assert tombstone[0].event == StreamDeleted(False, 0, "closed by the holder")
    # The inline read model dropped it in the same transaction; the other account is there.
    accounts = Accounts(read_store)
    assert await accounts.get("acc-1") is None
    assert (await accounts.get("acc-2")) is not None
    # Deleting again writes nothing.
    again = await delete_stream(store, "account-acc-1", app=app)
    assert again.version == 6
    assert await store.stream_version("account-acc-1") == 6


async def test_a_hard_delete_erases_the_events_and_keeps_a_record(store: Engine) -> None:
    if store.capability(Erasure) is None:
        pytest.skip("no erasure")
    app, read_store = await bank(store)
    if store.capability(Snapshots) is not None:
        await store.require(Snapshots).save_snapshot(
            app.snapshots.snapshot(
                Account(),
                (await store.read_stream("account-acc-1"))[-1],
                (await app.load(Account(), "acc-1")).state,
            )
        )
    deletion = await delete_stream(store, "account-acc-1", hard=True, reason="erasure", app=app)
    assert (deletion.version, deletion.erased) == (6, 5)
    [left] = await store.read_stream("account-acc-1")
    assert left.version == 6
    assert app.decode_all([left])[0].event == StreamDeleted(True, 5, "erasure")
    log = await store.read_all()
    assert [r.stream_id for r in log] == ["account-acc-2", "account-acc-1"]
    assert b"Ada" not in b"".join(r.data for r in log)
    if store.capability(Snapshots) is not None:
        assert await store.load_snapshot("account-acc-1") is None
    with pytest.raises(StreamGone):
        await app.load(Account(), "acc-1")
    assert await Accounts(read_store).get("acc-1") is None
    # A soft-deleted stream can be erased later; a hard one is not touched again.
    await delete_stream(store, "account-acc-2", app=app)
    later = await delete_stream(store, "account-acc-2", hard=True, app=app)
    assert later.erased == 2  # the account opened and the soft tombstone
    assert later.version == 3
    assert (await delete_stream(store, "account-acc-2", hard=True)).version == 3


async def test_deleting_a_stream_that_does_not_exist_is_refused(store: Engine) -> None:
    with pytest.raises(StreamNotFound):
        await delete_stream(store, "account-nobody")
    assert await store.read_all() == []


async def test_deletion_races_commands_and_wins_or_waits(store: Engine) -> None:
    app, _ = await bank(store, deposits=0)

    async def deposits() -> int:
        done = 0
        for _ in range(30):
            try:
                await app.execute(Account(), "acc-1", Deposit(Decimal(1)))
                done += 1
            except StreamGone:
                break
            await asyncio.sleep(0)
        return done

    racing = asyncio.create_task(deposits())
    await asyncio.sleep(0.001)
    deletion = await delete_stream(store, "account-acc-1", app=app)
    done = await racing
    records = await store.read_stream("account-acc-1")
    # The tombstone is the last event, whatever the deposits managed before it.
    assert records[-1].version == deletion.version == len(records) == 2 + done
    assert records[-1].type == "facta.StreamDeleted"


async def test_truncating_keeps_a_snapshot_so_the_account_still_loads(store: Engine) -> None:
    if store.capability(Erasure) is None or store.capability(Snapshots) is None:
        pytest.skip("no erasure or snapshots")
    app, _ = await bank(store, deposits=9)  # versions 1..10, balance 109
    done = await truncate_stream(store, "account-acc-1", 8, aggregate=Account(), app=app)
    assert (done.erased, done.snapshot) == (7, 7)
    assert [r.version for r in await store.read_stream("account-acc-1")] == [8, 9, 10]
    fresh = Application(store)  # no cached state: from the snapshot and the events after
    assert (await fresh.load(Account(), "acc-1")).state.balance == Decimal(109)
    assert (await fresh.load(Account(), "acc-1", version=9)).state.balance == Decimal(108)
    with pytest.raises(StreamGone, match="erased"):
        await fresh.load(Account(), "acc-1", version=3)
    await fresh.execute(Account(), "acc-1", Deposit(Decimal(1)))
    assert (await Application(store).load(Account(), "acc-1")).state.balance == Decimal(110)
    with pytest.raises(ValueError, match="version 11"):
        await truncate_stream(store, "account-acc-1", 12)


async def test_truncating_without_a_snapshot_makes_loading_say_so(store: Engine) -> None:
    if store.capability(Erasure) is None:
        pytest.skip("no erasure")
    app, _ = await bank(store, deposits=3)
    await truncate_stream(store, "account-acc-1", 3)  # no aggregate: no snapshot
    with pytest.raises(StreamGone, match="versions 1 to 2 were erased"):
        await Application(store).load(Account(), "acc-1")
    assert (await app.load(Account(), "acc-2")).state.balance == Decimal(7)


async def test_the_scavenger_applies_max_count_and_max_age(store: Engine) -> None:
    if store.capability(Erasure) is None or store.capability(Snapshots) is None:
        pytest.skip("no erasure or snapshots")
    app, _ = await bank(store, deposits=9)  # acc-1: 10 events; acc-2: 1
    for _ in range(5):
        await app.execute(Account(), "acc-2", Deposit(Decimal(1)))  # acc-2: 6 events
    await store.append("audit-a", [_audit(n) for n in range(6)])
    await set_retention(store, "account", category=True, max_count=4)
    await set_retention(store, "account-acc-2", max_count=100)  # a stream's rule wins
    await set_retention(store, "audit-a", max_age=3600)
    assert len(await retention_rules(store)) == 3
    done = await scavenge(store, aggregates=[Account()], app=app, now=time.time() + 7200)
    assert (done.visited, done.truncated, done.erased) == (3, 2, 6 + 5)
    assert [r.version for r in await store.read_stream("account-acc-1")] == [7, 8, 9, 10]
    assert len(await store.read_stream("account-acc-2")) == 6
    assert [r.version for r in await store.read_stream("audit-a")] == [6]  # the last is kept
    assert (await Application(store).load(Account(), "acc-1")).state.balance == Decimal(109)
    again = await scavenge(store, aggregates=[Account()], now=time.time() + 7200)
    assert again.erased == 0
    with pytest.raises(ValueError, match="max_count"):
        await set_retention(store, "audit-a", max_count=0)


def _audit(n: int) -> NewEvent:
    return NewEvent("Audited", b'{"n":%d}' % n)


async def test_erasure_reports_the_log_size(store: Engine) -> None:
    eraser: Eraser | None = store.capability(Erasure)
    if eraser is None:
        pytest.skip("no erasure")
    await bank(store, deposits=20)
    before = await eraser.log_size()
    await truncate_stream(store, "account-acc-1", 20)
    after = await eraser.log_size()
    assert before.events - after.events == 19
    assert after.table_bytes > 0
    assert after.total_bytes >= after.table_bytes

"""Archiving to cold storage, on every engine: every read path returns the archived events
as before (byte for byte, in order), commands go on, the database shrinks, projections
rebuild from the archive, and erasure and forgetting reach into it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from facta import REDACTED, Application, Engine, NewEvent, forget
from facta.archive.cold import ColdStore
from facta.errors import CommandIdReused, DuplicateEventId
from facta.examples.bank.domain import Account, Deposit, OpenAccount, Withdraw
from facta.examples.bank.read_model import Accounts, AccountsProjection
from facta.lifecycle import archive_status, archive_streams, delete_stream, readers_horizon
from facta.projections import ProjectionRunner, ReadStore
from facta.store.base import START, Position, RecordedEvent
from facta.store.engine import Erasure
from tests.conftest import BACKENDS

ACCOUNTS = 12
EVENTS_EACH = 8  # opened, then 7 deposits and withdrawals


@pytest.fixture(params=list(BACKENDS))
async def archived(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    """An empty engine of each backend, reading through an archive in ``tmp_path``."""
    engine = await BACKENDS[request.param](tmp_path)
    if engine.capability(Erasure) is None:
        await engine.close()
        pytest.skip(f"the {engine.name} engine has no erasure")
    engine.use_archive(ColdStore(tmp_path / "archive"))
    yield engine
    await engine.close()


async def fill(store: Engine) -> Application:
    app = Application(store)
    for n in range(ACCOUNTS):
        await app.execute(Account(), f"acc-{n}", OpenAccount(f"Holder {n}", Decimal(100)))
    for round_ in range(EVENTS_EACH - 1):
        for n in range(ACCOUNTS):
            command = Deposit(Decimal(n + 1)) if round_ % 2 else Withdraw(Decimal(1))
            await app.execute(Account(), f"acc-{n}", command)
    await whole_log(store, ACCOUNTS * EVENTS_EACH)
    return app


async def whole_log(store: Engine, count: int) -> list[RecordedEvent]:
    """The log once it shows ``count`` events (PostgreSQL may hold fresh ones back)."""
    async with asyncio.timeout(60):
        while len(log := await read_everything(store)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return log


async def read_everything(
    store: Engine, page: int = 7, **filters: list[str]
) -> list[RecordedEvent]:
    """The whole log in small pages, so that pages straddle the archive's chunks."""
    found: list[RecordedEvent] = []
    after = START
    while batch := await store.read_all(after=after, limit=page, **filters):
        found += batch
        after = batch[-1].position
    return found


async def everything(store: Engine) -> tuple[list[RecordedEvent], dict[str, list[RecordedEvent]]]:
    log = await read_everything(store)
    streams = {
        f"account-acc-{n}": await store.read_stream(f"account-acc-{n}") for n in range(ACCOUNTS)
    }
    return log, streams


async def test_archived_events_read_back_byte_for_byte(archived: Engine) -> None:
    app = await fill(archived)
    balances = [(await app.load(Account(), f"acc-{n}")).state.balance for n in range(ACCOUNTS)]
    before_log, before_streams = await everything(archived)
    run = await archive_streams(
        archived, older_than=60, now=time.time() + 3600, chunk_size=20, compact=True
    )
    total = ACCOUNTS * EVENTS_EACH
    assert (run.streams, run.events) == (ACCOUNTS, total - ACCOUNTS)
    assert run.chunks >= (total - ACCOUNTS) // 20
    assert (run.before.events, run.after.events) == (total, ACCOUNTS)
    # Every read path: the log in pages, each stream, backwards, bounded, filtered.
    after_log, after_streams = await everything(archived)
    assert after_log == before_log
    assert after_streams == before_streams
    one = before_streams["account-acc-3"]
    assert await archived.read_stream("account-acc-3", backwards=True, limit=3) == one[::-1][:3]
    assert await archived.read_stream("account-acc-3", from_version=2, to_version=4) == one[1:4]
    assert await archived.read_stream("account-acc-3", to_version=2, backwards=True) == one[1::-1]
    deposits = await read_everything(archived, types=["MoneyDeposited"])
    assert deposits == [r for r in before_log if r.type == "MoneyDeposited"]
    # Loading and commands go on: states from the archive, appends in the database.
    fresh = Application(archived)
    for n in range(ACCOUNTS):
        assert (await fresh.load(Account(), f"acc-{n}")).state.balance == balances[n]
    assert (await fresh.load(Account(), "acc-5", version=2)).state.balance == Decimal(99)
    await fresh.execute(Account(), "acc-5", Deposit(Decimal(1000)))
    assert (await Application(archived).load(Account(), "acc-5")).state.balance == (
        balances[5] + 1000
    )
    status = await archive_status(archived)
    assert status["archived_events"] == total - ACCOUNTS
    assert status["database_events"] == ACCOUNTS + 1


async def test_a_projection_rebuilds_from_the_archive_and_subscriptions_read_it(
    archived: Engine,
) -> None:
    await fill(archived)
    before_log, _ = await everything(archived)
    await archive_streams(archived, older_than=60, now=time.time() + 3600, chunk_size=25)
    read_store = ReadStore(archived)
    runner = ProjectionRunner(archived, [AccountsProjection()])
    try:
        await runner.catch_up(until=before_log[-1].position)
    finally:
        await runner.close()
    accounts = Accounts(read_store)
    app = Application(archived)
    for n in range(ACCOUNTS):
        summary = await accounts.get(f"acc-{n}")
        assert summary is not None
        assert summary.balance == (await app.load(Account(), f"acc-{n}")).state.balance
        assert summary.version == EVENTS_EACH
    followed: list[RecordedEvent] = []
    async with asyncio.timeout(30):
        async for record in archived.subscribe(batch_size=10):
            followed.append(record)
            if len(followed) == len(before_log):
                break
    assert followed == before_log


async def test_archived_events_are_found_by_id_and_their_commands_not_run_twice(
    archived: Engine,
) -> None:
    """An idempotent command retried after its events were archived returns its first
    result and writes nothing; appending archived event ids again is a repeat (the first
    result), or DuplicateEventId in another stream, as for events still in the database."""
    app = await fill(archived)
    first = await app.execute(Account(), "acc-7", Deposit(Decimal(5)), command_id="pay-1")
    await app.execute(Account(), "acc-7", Withdraw(Decimal(1)))  # so that pay-1's is archived
    before = await archived.read_stream("account-acc-7")
    run = await archive_streams(archived, older_than=60, now=time.time() + 3600, chunk_size=9)
    assert run.events == ACCOUNTS * (EVENTS_EACH - 1) + 2
    assert archived.archive is not None
    assert archived.archive.may_hold_event(before[0].event_id)
    for record in before:
        assert await archived.find_event(record.event_id) == record  # byte for byte
    assert await archived.find_event("00000000-0000-0000-0000-000000000000") is None
    again = await Application(archived).execute(
        Account(), "acc-7", Deposit(Decimal(5)), command_id="pay-1"
    )
    assert (again.version, again.position) == (first.version, first.position)
    assert await archived.read_stream("account-acc-7") == before  # nothing written
    with pytest.raises(CommandIdReused):
        await Application(archived).execute(
            Account(), "acc-7", Withdraw(Decimal(5)), command_id="pay-1"
        )
    # The store's own repeat rule, for archived ids: the same append, or another stream.
    archived_ones = before[1:3]
    events = [
        NewEvent(r.type, r.data, r.schema_version, r.metadata, event_id=r.event_id)
        for r in archived_ones
    ]
    repeat = await archived.append("account-acc-7", events)
    assert repeat.events == tuple(archived_ones)
    with pytest.raises(DuplicateEventId):
        await archived.append("account-acc-8", events)
    assert await archived.read_stream("account-acc-7") == before
    assert await archived.read_stream("account-acc-8", from_version=EVENTS_EACH + 1) == []


async def test_an_archive_indexed_before_event_ids_were_is_indexed_when_opened(
    tmp_path: Path,
) -> None:
    cold = ColdStore(tmp_path / "cold")
    records = [
        RecordedEvent(f"id-{n}", "s-1", n, Position(0, n), "E", 1, b"{}", b"{}", 0.0)
        for n in range(1, 6)
    ]
    cold.write_chunk(records[:3])
    cold.write_chunk(records[3:])
    cold._db.execute("DROP TABLE event_ids")  # as an archive of the version before
    cold.close()
    reopened = ColdStore(tmp_path / "cold")
    try:
        assert [reopened.find_event(f"id-{n}") for n in range(1, 6)] == records
        assert reopened.find_event("id-6") is None
        assert not reopened.may_hold_event("id-6")
        assert reopened.erase("s-1") == 5
        assert not reopened.may_hold_event("id-2")
        assert reopened.find_event("id-2") is None
    finally:
        reopened.close()


async def test_only_what_every_reader_passed_is_archived(archived: Engine) -> None:
    await fill(archived)
    log = await read_everything(archived)
    horizon = log[len(log) // 2].position
    run = await archive_streams(archived, older_than=60, now=time.time() + 3600, horizon=horizon)
    stored = await read_everything_stored(archived)
    # Nothing at or before the horizon is left in the database but each stream's last event
    # and what followed a stream's first event past the horizon; nothing after it moved.
    assert all(r in stored for r in log if r.position > horizon)
    assert run.events == len(log) - len(stored)
    assert await read_everything(archived) == log
    # A projection slot behind the log holds the horizon back.
    runner = ProjectionRunner(archived, [AccountsProjection()])
    try:
        await runner.catch_up(until=log[-1].position)
    finally:
        await runner.close()
    later = await Application(archived).execute(Account(), "acc-1", Deposit(Decimal(1)))
    assert later.position is not None
    assert await readers_horizon(archived) == log[-1].position < later.position


async def read_everything_stored(store: Engine) -> list[RecordedEvent]:
    found: list[RecordedEvent] = []
    after = START
    while batch := await store.stored_events.read_all(after=after):
        found += batch
        after = batch[-1].position
    return found


async def test_a_hard_delete_erases_the_archived_copy_too(archived: Engine) -> None:
    await fill(archived)
    await archive_streams(archived, older_than=60, now=time.time() + 3600, chunk_size=10)
    deletion = await delete_stream(archived, "account-acc-2", hard=True, reason="erasure")
    assert deletion.erased == EVENTS_EACH  # 7 from the archive, the last from the database
    assert [r.type for r in await archived.read_stream("account-acc-2")] == ["facta.StreamDeleted"]
    log = await read_everything(archived)
    assert not [r for r in log if r.stream_id == "account-acc-2" and r.version < EVENTS_EACH + 1]
    assert archived.archive is not None
    for chunk in archived.archive.chunks():
        assert all(r.stream_id != "account-acc-2" for r in archived.archive.events_of(chunk.name))
    status = await archive_status(archived)
    assert status["archived_events"] == (ACCOUNTS - 1) * (EVENTS_EACH - 1)


async def test_forgetting_reaches_archived_personal_fields(archived: Engine) -> None:
    app = await fill(archived)
    await archive_streams(archived, older_than=60, now=time.time() + 3600)
    assert (await app.load(Account(), "acc-4")).state.owner == "Holder 4"
    done = await forget(archived, "account-acc-4", app=app)
    assert done.streams == ["account-acc-4"]
    opened = (await archived.read_stream("account-acc-4", limit=1))[0]
    assert opened.data == b'{"type":"AccountOpened","owner":"%s","initial_balance":100.0}' % (
        REDACTED.encode()
    )
    assert (await Application(archived).load(Account(), "acc-4")).state.owner == REDACTED


async def test_archiving_needs_an_archive(tmp_path: Path) -> None:
    store = await BACKENDS["sqlite"](tmp_path)
    try:
        with pytest.raises(ValueError, match="archive=DIR"):
            await archive_streams(store, older_than=1)
    finally:
        await store.close()


async def test_the_archive_is_a_store_url_option(tmp_path: Path) -> None:
    from facta import open_store

    url = f"sqlite:///{tmp_path / 'bank.db'}?archive={tmp_path / 'cold'}"
    store = await open_store(url)
    try:
        app = await fill(store)
        await archive_streams(store, older_than=60, now=time.time() + 3600)
        assert (tmp_path / "cold" / "index.sqlite").exists()
        expected = (await app.load(Account(), "acc-0")).state
    finally:
        await store.close()
    again = await open_store(url)  # another process's view: the same events
    try:
        assert (await Application(again).load(Account(), "acc-0")).state == expected
        assert len(await read_everything(again)) == ACCOUNTS * EVENTS_EACH
        assert Position(0, 1) == (await again.read_all(limit=1))[0].position
    finally:
        await again.close()

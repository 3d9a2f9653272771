"""What only the PostgreSQL store has to prove: gap-safe order under out-of-order commits,
subscriptions that survive a killed connection, concurrent migrations, group commit."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest

from facta import (
    ANY,
    NO_STREAM,
    DuplicateEventId,
    Hook,
    NewEvent,
    RecordedEvent,
    StoreUnavailable,
    WrongExpectedVersion,
    open_store,
)
from facta.store import HeldBack
from facta.store._migrations import migration_files
from facta.store.postgres import PostgresEngine, PostgresEventStore
from tests.conftest import POSTGRES_URL, ScratchPostgresStore, open_scratch_postgres

# PostgreSQL delivers an event once every older transaction in the cluster has ended: these
# tests hold transactions open on purpose and count exactly what is held back, so they run
# alone, after the parallel phase of `make test` (tests running beside them in other worker
# processes would change the counts, and be held back by their open transactions).
pytestmark = pytest.mark.serial


def new(n: int = 1) -> list[NewEvent]:
    return [NewEvent("Happened", b'{"n":%d}' % i) for i in range(n)]


@pytest.fixture
async def pg() -> AsyncIterator[ScratchPostgresStore]:
    store = await open_scratch_postgres()
    yield store
    await store.close()


async def collect(
    store: PostgresEventStore, seen: list[RecordedEvent], batch_size: int = 1000
) -> None:
    async for event in store.subscribe(batch_size=batch_size):
        seen.append(event)


async def until(condition: Any, subscriber: asyncio.Task[None]) -> None:
    """Wait for ``condition`` (20 s at most), failing at once with the subscriber's error if
    the subscription ends."""
    deadline = asyncio.get_running_loop().time() + 20
    while not condition():
        if subscriber.done():
            subscriber.result()
            raise AssertionError("the subscription ended")
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def test_a_subscriber_gets_every_committed_event_once_though_commits_come_out_of_order(
    pg: ScratchPostgresStore,
) -> None:
    """DESIGN contract 3: 32 writers hold their transactions open for random times, so rows
    with lower sequence numbers commit after rows with higher ones; some roll back."""
    writers, appends = 32, 8
    writer = await PostgresEventStore.open(POSTGRES_URL, schema=pg.schema, pool_size=40)
    seen: list[RecordedEvent] = []
    subscriber = asyncio.create_task(collect(pg, seen, batch_size=7))
    committed: list[RecordedEvent] = []
    rolled_back: set[str] = set()

    async def hold_open(tx: object, events: Sequence[RecordedEvent]) -> None:
        await asyncio.sleep(random.uniform(0, 0.03))
        if random.random() < 0.2:
            raise RuntimeError("roll back")

    async def write(w: int) -> None:
        for i in range(appends):
            events = new(random.randint(1, 3))
            try:
                if i % 3 == 2:  # a group-committed append between the slow transactions
                    result = await writer.append(f"w-{w}", events)
                else:
                    result = await writer.append(f"w-{w}", events, hook=Hook(hold_open))
            except RuntimeError:
                rolled_back.update(e.event_id for e in events)
                continue
            committed.extend(result.events)

    try:
        await asyncio.gather(*(write(w) for w in range(writers)))
        await until(lambda: len(seen) >= len(committed), subscriber)
        await asyncio.sleep(0.3)  # room for a duplicate or a rolled-back event to show up
    finally:
        subscriber.cancel()
        await writer.close()
    # The writers really did commit out of sequence order ...
    commit_order = [e.position.sequence for e in committed]
    assert commit_order != sorted(commit_order)
    assert rolled_back
    # ... and the subscriber still got each committed event exactly once, in log order.
    assert len(seen) == len(committed)
    assert {e.event_id for e in seen} == {e.event_id for e in committed}
    assert not rolled_back & {e.event_id for e in seen}
    assert [e.position for e in seen] == sorted(e.position for e in committed)
    assert seen == await pg.read_all(limit=len(committed) + 1)


async def test_a_transaction_still_open_holds_delivery_back_and_is_counted(
    pg: ScratchPostgresStore,
) -> None:
    await pg.append("early-1", new(1))
    head = await pg.head()
    blocker = await asyncpg.connect(POSTGRES_URL)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.fetchval("SELECT pg_current_xact_id()")  # now it holds a transaction id
        later = await pg.append("later-1", new(2))
        assert await pg.stream_version("later-1") == 2  # stored and readable by stream ...
        assert await pg.read_all(after=head) == []  # ... but not deliverable in the log yet
        assert await pg.head() == head
        assert await pg.require(HeldBack).held_back() == 2
        await transaction.rollback()
    finally:
        await blocker.close()
    assert await pg.read_all(after=head) == list(later.events)
    assert await pg.require(HeldBack).held_back() == 0


async def test_a_read_waits_briefly_for_a_short_transaction_in_the_way(
    pg: ScratchPostgresStore,
) -> None:
    blocker = await asyncpg.connect(POSTGRES_URL)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.fetchval("SELECT pg_current_xact_id()")
        appended = await pg.append("soon-1", new(1))

        async def end_soon() -> None:
            await asyncio.sleep(0.1)  # well within the store's visibility_wait of 0.5 s
            await transaction.commit()

        ending = asyncio.create_task(end_soon())
        assert await pg.read_all() == list(appended.events)
        await ending
    finally:
        await blocker.close()


async def test_a_follower_reads_what_is_visible_at_once_while_events_are_held_back(
    pg: ScratchPostgresStore,
) -> None:
    """The projection runner and the relay read with ``wait_for_held_back=False``: they are
    woken when more is visible, so they must not spend the store's visibility_wait polling."""
    first = await pg.append("early-1", new(1))
    pg.store.visibility_wait = 30.0  # a wait would be unmistakable
    blocker = await asyncpg.connect(POSTGRES_URL)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.fetchval("SELECT pg_current_xact_id()")
        await pg.append("later-1", new(1))
        page = await asyncio.wait_for(pg.read_all(wait_for_held_back=False), 10)
        assert page == list(first.events)  # what is visible, without the held-back event
        await transaction.rollback()
    finally:
        await blocker.close()


async def test_the_held_back_probe_reads_the_end_of_the_key_not_the_whole_log(
    pg: ScratchPostgresStore,
) -> None:
    """head() and every short page ask whether committed events are held back, and
    held_back() counts them; each must stay a probe of the primary key however long the log
    grows (they once scanned it all)."""
    for n in range(20):
        await pg.append(f"s-{n}", new(1000))

    def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(n for child in node.get("Plans", ()) for n in nodes(child))]

    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        for sql in (pg.store.sql.head, pg.store.sql.held_back):
            [plan] = json.loads(await connection.fetchval(f"EXPLAIN (FORMAT JSON) {sql}"))
            scans = [n for n in nodes(plan["Plan"]) if n.get("Relation Name") == "events"]
            assert scans, sql
            assert all(n["Node Type"] != "Seq Scan" for n in scans), (sql, scans)
    finally:
        await connection.close()
    assert await pg.require(HeldBack).held_back() == 0


async def test_a_subscription_survives_its_connections_being_killed(
    pg: ScratchPostgresStore,
) -> None:
    name = f"facta-test-{uuid.uuid4().hex[:8]}"
    reader = await PostgresEventStore.open(POSTGRES_URL, schema=pg.schema, application_name=name)
    admin = await asyncpg.connect(POSTGRES_URL)
    seen: list[RecordedEvent] = []
    subscriber = asyncio.create_task(collect(reader, seen, batch_size=5))
    written: list[RecordedEvent] = []

    async def kill() -> int:
        killed: int = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            name,
        )
        return killed

    try:
        for i in range(20):
            written.extend((await pg.append(f"k-{i % 4}", new(2))).events)
        await until(lambda: len(seen) == len(written), subscriber)
        assert await kill() >= 1  # the listening connection at least
        for round_ in range(10):  # keep killing while events flow and the reader catches up
            for i in range(10):
                written.extend((await pg.append(f"k-{i % 4}", new(1))).events)
            if round_ % 2 == 0:
                await kill()
            await asyncio.sleep(0.02)
        await until(lambda: len(seen) >= len(written), subscriber)
        # It lost its listening connection and listens again (retrying once a second).
        await until(lambda: reader.listener.connects >= 2, subscriber)
        written.extend((await pg.append("k-9", new(1))).events)
        await until(lambda: len(seen) >= len(written), subscriber)
        await asyncio.sleep(0.2)
    finally:
        subscriber.cancel()
        await admin.close()
        await reader.close()
    assert [e.event_id for e in seen] == [e.event_id for e in written]


async def test_several_pools_migrating_one_schema_at_once_apply_each_migration_once() -> None:
    schema = f"test_{uuid.uuid4().hex[:16]}"
    stores = [
        ScratchPostgresStore(url, PostgresEventStore(POSTGRES_URL, schema=schema, pool_size=2))
        for url in [f"{POSTGRES_URL}?schema={schema}"] * 4
    ]
    try:
        applied = await asyncio.gather(*(s.migrate() for s in stores))
        everything = [version for version, _, _ in migration_files("facta.store.postgres")]
        assert sorted(applied) == [[], [], [], everything]
        assert await stores[0].migrate() == []
        await stores[1].append("m-1", new(1), NO_STREAM)
        assert await stores[2].stream_version("m-1") == 1
    finally:
        for store in stores[1:]:
            await PostgresEngine.close(store)  # the last close drops the schema
        await stores[0].close()


async def test_schemas_and_prefixes_keep_apps_apart(pg: ScratchPostgresStore) -> None:
    url = f"{POSTGRES_URL}?schema={pg.schema}&prefix=tenant_b_"
    other = await open_store(url)
    try:
        assert isinstance(other, PostgresEngine)
        assert (other.schema, other.prefix) == (pg.schema, "tenant_b_")
        await pg.append("acct-1", new(2))
        await other.append("acct-1", new(1))
        assert await pg.stream_version("acct-1") == 2
        assert await other.stream_version("acct-1") == 1
        assert len(await other.read_all()) == 1
    finally:
        await other.close()


@pytest.mark.parametrize(
    "options",
    [{"schema": "Bad-Schema"}, {"prefix": "x; DROP TABLE y"}, {"schema": "1abc"}],
)
async def test_bad_schema_or_prefix_names_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="must be lowercase"):
        await PostgresEventStore.open(POSTGRES_URL, **options)


async def test_an_unreachable_server_raises_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1/"):
        await PostgresEventStore.open("postgresql://postgres@127.0.0.1:1/test")


async def test_concurrent_appends_share_transactions_and_each_gets_its_own_answer(
    pg: ScratchPostgresStore,
) -> None:
    await pg.append("g-0", new(2), NO_STREAM)
    taken = new(1)
    await pg.append("g-1", taken, NO_STREAM)
    repeat = new(1)
    first = await pg.append("g-2", repeat, NO_STREAM)

    async def attempt(i: int) -> object:
        try:
            if i == 0:
                return await pg.append("g-0", new(1), 5)  # wrong version
            if i == 1:
                return await pg.append("g-9", taken, ANY)  # id stored in g-1
            if i == 2:
                return await pg.append("g-2", repeat, NO_STREAM)  # a retry
            if i == 3:
                return await pg.append("g-3", [NewEvent("Bad\x00type", b"{}")])
            return await pg.append(f"ok-{i}", new(2), NO_STREAM)
        except Exception as exc:
            return exc

    outcomes = await asyncio.gather(*(attempt(i) for i in range(40)))
    assert isinstance(outcomes[0], WrongExpectedVersion)
    assert outcomes[0].actual == 2
    assert isinstance(outcomes[1], DuplicateEventId)
    assert "g-1" in str(outcomes[1])
    assert outcomes[2] == first
    assert isinstance(outcomes[3], asyncpg.PostgresError)  # refused by the server alone
    assert await pg.stream_version("g-3") == 0
    assert await pg.stream_version("g-9") == 0
    oks = [await pg.read_stream(f"ok-{i}") for i in range(4, 40)]
    assert all(len(events) == 2 for events in oks)
    # Group commit did happen: the 36 good appends took fewer transactions than appends,
    # though one request in their batch failed it and it had to be split.
    assert len({e.position.commit for events in oks for e in events}) < 36


async def test_appends_racing_from_two_stores_lose_cleanly(pg: ScratchPostgresStore) -> None:
    other = await PostgresEventStore.open(POSTGRES_URL, schema=pg.schema)
    try:
        for version in range(5):
            outcomes = await asyncio.gather(
                *(s.append("race-1", new(2), version * 2) for s in (pg, other) * 5),
                return_exceptions=True,
            )
            assert sum(not isinstance(o, Exception) for o in outcomes) == 1
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            assert all(isinstance(o, WrongExpectedVersion) for o in failures)
        # ANY never conflicts: every one of these lands
        await asyncio.gather(*(s.append("race-2", new(1), ANY) for s in (pg, other) * 10))
    finally:
        await other.close()
    assert [e.version for e in await pg.read_stream("race-1")] == list(range(1, 11))
    assert [e.version for e in await pg.read_stream("race-2")] == list(range(1, 21))


async def test_without_notifications_subscribers_still_get_every_event(
    pg: ScratchPostgresStore,
) -> None:
    quiet = await PostgresEventStore.open(POSTGRES_URL, schema=pg.schema, notify=False)
    here: list[RecordedEvent] = []
    there: list[RecordedEvent] = []
    in_process = asyncio.create_task(collect(quiet, here))
    elsewhere = asyncio.create_task(collect(pg, there))  # another store: it has to poll
    try:
        await asyncio.sleep(0.1)
        written = [e for i in range(5) for e in (await quiet.append(f"q-{i}", new(2))).events]
        await until(lambda: len(here) >= len(written), in_process)
        await until(lambda: len(there) >= len(written), elsewhere)
    finally:
        in_process.cancel()
        elsewhere.cancel()
        await quiet.close()
    assert here == there == written

"""Consistency boundaries on PostgreSQL, beyond the contract: an append that waited for a
conditional append's lock sorts after it in the log, never before (the locks come before
the transaction id); reads wait only for held-back events that match their query."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from facta.store.base import NewEvent
from facta.store.boundaries import Query
from facta.store.engine import Boundaries
from facta.store.postgres.boundaries import PostgresBoundaries
from facta.store.postgres.events import PostgresEventStore
from facta.store.postgres.locks import LockKeys
from tests.conftest import POSTGRES_URL, open_scratch_postgres

# PostgreSQL delivers an event once every older transaction in the cluster has ended: these
# tests hold transactions open on purpose and count exactly what is held back, so they run
# alone, after the parallel phase of `make test` (tests running beside them in other worker
# processes would change the counts, and be held back by their open transactions).
pytestmark = pytest.mark.serial


async def _waiting_for_a_lock(connection: asyncpg.Connection, locktype: str) -> bool:
    rows = await connection.fetch(
        "SELECT 1 FROM pg_locks WHERE NOT granted AND locktype = $1", locktype
    )
    return bool(rows)


async def test_an_append_that_waited_for_a_conditional_one_sorts_after_it() -> None:
    store = await open_scratch_postgres()
    holder = await asyncpg.connect(POSTGRES_URL)
    try:
        schema = store.schema
        # A conditional append on tag "seat:1", in the middle of its transaction: it holds
        # the tag's key exclusively (as the append function takes it) and has not yet
        # taken its transaction id.
        key = LockKeys(f"{schema}.{store.prefix}").key("", "seat:1")
        tx = holder.transaction()
        await tx.start()
        await holder.execute(f"LOCK TABLE {schema}.{store.prefix}events IN ROW EXCLUSIVE MODE")
        await holder.execute("SELECT pg_advisory_xact_lock($1)", key)
        # A plain append of an event with the tag starts meanwhile and must wait for it.
        plain = asyncio.create_task(
            store.append("plain-1", [NewEvent("SeatTaken", b"{}", tags=("seat:1",))])
        )
        deadline = time.monotonic() + 10
        while not await _waiting_for_a_lock(holder, "advisory"):
            assert time.monotonic() < deadline, "the plain append never waited for the key"
            await asyncio.sleep(0.01)
        # The conditional append writes its event and commits.
        await holder.execute(
            f"INSERT INTO {schema}.{store.prefix}events (commit_xid, version, recorded_at,"
            " schema_version, event_id, stream_id, category, type, data, metadata, tags) VALUES"
            " (pg_current_xact_id(), 1, 0, 1, 'c-1', 'dcb-c1', 'dcb', 'SeatTaken', '{}', '{}',"
            " ARRAY['seat:1'])"
        )
        await tx.commit()
        appended = await asyncio.wait_for(plain, 10)
        [conditional] = await store.read_stream("dcb-c1")
        assert appended.position > conditional.position
        seats = await store.require(Boundaries).read(Query.of(tags=["seat:1"]))
        # (the raw insert wrote no tag row: only the plain append's event is indexed)
        assert [e.event_id for e in seats.events] == [appended.events[0].event_id]
    finally:
        await holder.close()
        await store.close()


async def test_a_read_waits_only_for_held_back_events_that_match_it() -> None:
    store = await open_scratch_postgres(visibility_wait=2.0)
    blocker = await asyncpg.connect(POSTGRES_URL)
    try:
        dcb = store.require(Boundaries)
        await dcb.append([NewEvent("Mine", b"{}", tags=("mine",))])
        # A transaction left open holds back everything committed after it started.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT pg_current_xact_id()")
        await dcb.append([NewEvent("Other", b"{}", tags=("other",))])
        started = time.monotonic()
        mine = await dcb.read(Query.of(tags=["mine"]))
        assert time.monotonic() - started < 1.0  # nothing matching is held back: no wait
        assert len(mine.events) == 1
        started = time.monotonic()
        other = await dcb.read(Query.of(tags=["other"]))
        assert time.monotonic() - started >= 1.5  # a matching event is held back: it waits
        assert other.events == []  # and, still held back, it is not returned
        await tx.rollback()
        other = await dcb.read(Query.of(tags=["other"]))
        assert len(other.events) == 1
    finally:
        await blocker.close()
        await store.close()


def _literal(value: object) -> str:
    """An argument of the read's statement as an SQL literal (for EXECUTE)."""
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return "'{" + ",".join(f'"{v}"' for v in value) + "}'"
    return f"'{value}'"


@pytest.mark.parametrize(
    "query",
    [
        Query.of(tags=["seat:1"]),
        Query.of(types=["SeatTaken"], tags=["row:1", "seat:1"]),
        Query.of(tags=["seat:1"]) | Query.of(types=["SeatTaken"], tags=["row:2"]),
    ],
    ids=["one tag", "two tags and a type", "two items"],
)
async def test_a_read_by_tag_finds_its_events_by_key_in_any_plan_of_a_young_log(
    query: Query,
) -> None:
    """A connection caches a generic plan for a statement once it has run five times. Made
    while the log was young and never analyzed, that plan joined the tag index with the log
    by a hash join over a sequential scan of the whole log: every read of a tag then cost a
    pass over the log, growing with it until autovacuum analyzed the table (1.2 ms a read
    at 8,000 events in benchmarks/dcb.py; 0.3 ms with key lookups)."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    events = await PostgresEventStore.open(POSTGRES_URL, schema=schema)
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        dcb = PostgresBoundaries(events)
        for i in range(20):
            tags = ("row:1", "seat:1") if i % 2 else ("row:2",)
            await dcb.append([NewEvent("SeatTaken", b"{}", tags=tags)])
        sql, arguments = dcb.statement(query, None, None)
        # The plan made now, on the young log, as the connection would cache it.
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        await connection.execute(f"PREPARE tagged AS {sql}")
        execute = f"EXECUTE tagged({', '.join(_literal(a) for a in arguments)})"
        assert len(await connection.fetch(execute)) == (20 if len(query.items) > 1 else 10)
        for i in range(100):  # the log grows to 2,020 events
            await events.append(f"filler-{i}", [NewEvent("Filler", b"{}") for _ in range(20)])
        plan = "\n".join(row[0] for row in await connection.fetch(f"EXPLAIN {execute}"))
        assert "Seq Scan" not in plan, plan
        assert "Index Scan using events_pkey" in plan, plan
    finally:
        await connection.close()
        await events.close()
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await admin.close()

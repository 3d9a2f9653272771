"""Projections that keep their own SQL tables: created by ``setup`` in the slot's name, written
through the raw connection in the batch's transaction, rebuilt beside the old copy."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from facta import (
    Event,
    EventEnvelope,
    EventStore,
    open_store,
)
from facta.projections import Projection, ProjectionRunner, ReadStore, Session
from tests.conftest import open_scratch_postgres
from tests.projections.helpers import Tick, codec, fill


class SeenSQLite(Projection[Any]):
    """One row per event id: a second application of an event breaks the primary key."""

    name = "seen"
    event_types = (Tick,)
    uses_connection = True

    async def setup(self, session: Session[Any]) -> None:
        session.connection.execute(
            f"CREATE TABLE {session.table('events')} (event_id TEXT PRIMARY KEY, n INTEGER)"
        )

    async def handle(self, envelope: EventEnvelope[Event], session: Session[Any]) -> None:
        assert isinstance(envelope.event, Tick)
        session.connection.execute(
            f"INSERT INTO {session.table('events')} VALUES (?, ?)",
            (envelope.recorded.event_id, envelope.event.n),
        )


class SeenPostgres(SeenSQLite):
    async def setup(self, session: Session[Any]) -> None:
        await session.connection.execute(
            f"CREATE TABLE {session.table('events')} (event_id text PRIMARY KEY, n bigint)"
        )

    async def handle(self, envelope: EventEnvelope[Event], session: Session[Any]) -> None:
        assert isinstance(envelope.event, Tick)
        await session.connection.execute(
            f"INSERT INTO {session.table('events')} VALUES ($1, $2)",
            envelope.recorded.event_id,
            envelope.event.n,
        )


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        store: EventStore = await open_store(f"sqlite:///{tmp_path / 'own.db'}")
        yield store, SeenSQLite(), _sqlite_rows(tmp_path / "own.db")
    else:
        store = await open_scratch_postgres()
        yield store, SeenPostgres(), _postgres_rows(store.schema)  # type: ignore[attr-defined]
    await store.close()


def _sqlite_rows(path: Path) -> Any:
    async def rows(table: str) -> list[tuple[str, int]]:
        with sqlite3.connect(path) as connection:
            return sorted(connection.execute(f"SELECT event_id, n FROM {table}").fetchall())

    return rows


def _postgres_rows(schema: str) -> Any:
    async def rows(table: str) -> list[tuple[str, int]]:
        import asyncpg

        from tests.conftest import POSTGRES_URL

        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            found = await connection.fetch(f"SELECT event_id, n FROM {schema}.{table}")
            return sorted((r[0], r[1]) for r in found)
        finally:
            await connection.close()

    return rows


async def test_own_tables_are_written_once_per_event_and_rebuilt_beside(sql_store: Any) -> None:
    store, projection, rows = sql_store
    await fill(store, 4, 5)
    runner = ProjectionRunner(store, [projection], codec=codec, batch_size=6)
    await runner.catch_up()
    want = sorted((e.event_id, e.version) for e in await store.read_all())
    assert await rows("rm_seen_1_events") == want

    await fill(store, 1, 2, start=4)
    await runner.catch_up()  # only the two new events: a repeat would break the key
    want = sorted((e.event_id, e.version) for e in await store.read_all())
    assert await rows("rm_seen_1_events") == want

    await runner.rebuild("seen")
    await runner.close()
    assert await rows("rm_seen_2_events") == want
    with pytest.raises(Exception, match="rm_seen_1_events"):
        await rows("rm_seen_1_events")  # dropped with its slot
    read_store = ReadStore(store)
    [status] = await read_store.status("seen")
    assert (status.slot, status.handled, status.error) == (2, 22, None)
    await read_store.close()

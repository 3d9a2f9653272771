"""The PostgreSQL engine (``postgresql://USER@HOST:PORT/DB``): several processes writing at
once, readers that never skip.

The event store, snapshots, read models and relay checkpoints live in one schema; see
:mod:`facta.store.postgres.events` for the global order, appending and durability.
"""

from __future__ import annotations

from typing import Any

from facta.store.engine import (
    Boundaries,
    Browsing,
    Engine,
    Erasure,
    HeldBack,
    InlineTransactions,
    PersonalData,
    Snapshots,
    Subscriptions,
)
from facta.store.postgres.boundaries import PostgresBoundaries
from facta.store.postgres.browse import PostgresBrowser
from facta.store.postgres.checkpoints import PostgresCheckpoints
from facta.store.postgres.erasure import PostgresEraser
from facta.store.postgres.events import PostgresEventStore
from facta.store.postgres.keys import PostgresKeys
from facta.store.postgres.read_models import PostgresReadModels


class PostgresEngine(Engine):
    """Every storage contract in one PostgreSQL schema."""

    name = "postgresql"

    def __init__(self, url: str, events: PostgresEventStore) -> None:
        self.store = events
        checkpoints = PostgresCheckpoints(events)
        super().__init__(
            url,
            events=events,
            read_models=PostgresReadModels(events),
            relay_checkpoints=checkpoints,
            capabilities={
                Snapshots: events,
                InlineTransactions: events,
                Subscriptions: events,
                HeldBack: events,
                Boundaries: PostgresBoundaries(events),
                Browsing: PostgresBrowser(events, checkpoints),
                PersonalData: PostgresKeys(events),
                Erasure: PostgresEraser(events),
            },
        )

    @property
    def dsn(self) -> str:
        """The connection URL (without the engine's own options)."""
        return self.store.dsn

    @property
    def schema(self) -> str:
        """The schema the engine's tables are in."""
        return self.store.schema

    @property
    def prefix(self) -> str:
        """The prefix of the engine's table names."""
        return self.store.prefix

    async def migrate(self) -> list[int]:
        """Create or bring up to date the schema; returns the versions applied."""
        return await self.store.migrate()


async def open_engine(url: str, *, create: bool = True, **options: Any) -> PostgresEngine:
    """Connect to ``url`` (options in its query or as keywords: ``schema``, ``prefix``,
    ``pool_size``, ``max_flushes``, ``visibility_wait``, ``notify``, ``pooler``); with
    ``create``, the schema is made or migrated as needed."""
    return PostgresEngine(url, await PostgresEventStore.open(url, create=create, **options))


__all__ = ["PostgresEngine", "PostgresEventStore", "open_engine"]

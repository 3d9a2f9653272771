"""A PostgreSQL store's schema: checking that it is there, and migrating it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from facta.store._migrations import migration_files, require_migrations
from facta.store.postgres.common import describe, lost, unavailable

if TYPE_CHECKING:
    from facta.store.postgres.events import PostgresEventStore

log = logging.getLogger("facta.store.postgres")

MIGRATION_TIMEOUT = 24 * 3600.0
"""Seconds a migration's statement may take: bounded only against a server gone for good,
not by the store's ``command_timeout`` (an index on a large log takes a while)."""


async def require_schema(store: PostgresEventStore) -> None:
    """StoreSetupError unless ``store``'s schema holds every migration."""
    table = f"{store.schema}.{store.prefix}schema_migrations"
    # to_regclass is NULL, not an error, when the schema or the table does not exist.
    rows = await store.fetch("SELECT to_regclass($1) IS NOT NULL", table)
    applied = None
    if rows[0][0]:
        applied = {row[0] for row in await store.fetch(f"SELECT version FROM {table}")}
    require_migrations(
        "facta.store.postgres", applied, f"schema {store.schema!r} of {describe(store.dsn)}"
    )


async def migrate(store: PostgresEventStore) -> list[int]:
    """Create or bring up to date ``store``'s schema; returns the versions applied.

    Idempotent, and safe when several processes migrate at once: the whole run holds a
    transaction-level advisory lock per schema, and applies each missing migration, in
    version order, in the same transaction as its record in ``{prefix}schema_migrations``.
    """
    schema, prefix = store.schema, store.prefix
    pool = await store.pool()
    table = f"{schema}.{prefix}schema_migrations"
    applied: list[int] = []
    try:
        async with pool.acquire() as connection, connection.transaction():
            # Serialises migrations of this schema, by any process, until the commit.
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"facta.migrate.{schema}",
                timeout=MIGRATION_TIMEOUT,  # another process migrating: wait for it
            )
            await connection.execute(
                f"CREATE SCHEMA IF NOT EXISTS {schema};"
                f" CREATE TABLE IF NOT EXISTS {table} (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in await connection.fetch(f"SELECT version FROM {table}")}
            for version, name, sql in migration_files("facta.store.postgres"):
                if version in done:
                    continue
                await connection.execute(
                    sql.replace("{schema}", schema).replace("{prefix}", prefix),
                    timeout=MIGRATION_TIMEOUT,
                )
                await connection.execute(
                    f"INSERT INTO {table} (version, name) VALUES ($1, $2)", version, name
                )
                applied.append(version)
    except Exception as exc:
        if lost(exc):
            raise unavailable(exc, store.where) from exc
        raise
    if applied:
        log.info("migrated %s.%s* to version %d", schema, prefix, applied[-1])
    return applied

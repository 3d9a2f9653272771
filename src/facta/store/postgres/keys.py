"""Data subjects' keys of the PostgreSQL engine: rows of ``{schema}.{prefix}personal_keys``,
on the store's pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from facta.store.keys import SubjectKey
from facta.store.postgres.events import PostgresEventStore

_COLUMNS = "key_id, subject, material, wrapped, created_at"


def _key(row: Any) -> SubjectKey:
    return SubjectKey(row[0], row[1], bytes(row[2]), row[3], row[4])


class PostgresKeys:
    """The :class:`~facta.store.keys.KeyStore` in the schema of one PostgresEventStore."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store
        self.table = f"{store.schema}.{store.prefix}personal_keys"
        self._forgets = f"{store.schema}.{store.prefix}personal_forgets"
        self._snapshots = f"{store.schema}.{store.prefix}snapshots"
        self._events = f"{store.schema}.{store.prefix}events"

    async def subject_key(self, candidate: SubjectKey) -> SubjectKey:
        fetch = self._store.fetch
        select = f"SELECT {_COLUMNS} FROM {self.table} WHERE subject = $1"
        # One round trip for a new subject (the candidate stored) and for a stored one (it is
        # read): an account's opening took one more before, for a read that found nothing.
        found = await fetch(
            f"WITH made AS (INSERT INTO {self.table} ({_COLUMNS}) VALUES ($2, $1, $3, $4, $5)"
            f" ON CONFLICT (subject) DO NOTHING RETURNING {_COLUMNS})"
            f" SELECT {_COLUMNS} FROM made"
            f" UNION ALL ({select} AND NOT EXISTS (SELECT FROM made))",
            candidate.subject,
            candidate.key_id,
            candidate.material,
            candidate.wrapped,
            candidate.created_at,
        )
        if found:
            return _key(found[0])
        # A key committed by another writer after this statement's snapshot was taken (it
        # waited for it, then inserted nothing): read in a statement of its own.
        found = await fetch(select, candidate.subject)
        if found:
            return _key(found[0])
        return await self.subject_key(candidate)  # forgotten in between: make one again

    async def keys(self, key_ids: Sequence[str]) -> list[SubjectKey]:
        rows = await self._store.fetch(
            f"SELECT {_COLUMNS} FROM {self.table} WHERE key_id = ANY($1::text[])", list(key_ids)
        )
        return [_key(row) for row in rows]

    async def subject_key_ids(self, subject: str) -> list[str]:
        rows = await self._store.fetch(
            f"SELECT key_id FROM {self.table} WHERE subject = $1", subject
        )
        return [row[0] for row in rows]

    async def delete_keys(self, subject: str) -> list[str]:
        # One statement, so one transaction: the count grows with the deletion or not at all
        # (a data-modifying WITH runs whether or not the query reads it).
        rows = await self._store.fetch(
            f"WITH deleted AS (DELETE FROM {self.table} WHERE subject = $1 RETURNING key_id),"
            f" counted AS (UPDATE {self._forgets} SET forgets = forgets + 1"
            "  WHERE EXISTS (SELECT FROM deleted))"
            " SELECT key_id FROM deleted",
            subject,
        )
        return [row[0] for row in rows]

    async def forgets(self) -> int:
        rows = await self._store.fetch(f"SELECT forgets FROM {self._forgets}")
        return int(rows[0][0])

    async def streams_containing(self, needles: Sequence[bytes]) -> list[str]:
        if not needles:
            return []
        rows = await self._store.fetch(
            f"SELECT DISTINCT stream_id FROM {self._events} e"
            " WHERE EXISTS (SELECT FROM unnest($1::bytea[]) n WHERE position(n IN e.data) > 0)"
            " ORDER BY stream_id",
            list(needles),
        )
        return [row[0] for row in rows]

    async def purge_snapshots(self, stream_ids: Sequence[str]) -> int:
        rows = await self._store.fetch(
            f"DELETE FROM {self._snapshots} WHERE stream_id = ANY($1::text[]) RETURNING 1",
            list(stream_ids),
        )
        return len(rows)

"""Session: what a projection's handler writes through, for one batch or one append."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic

from facta.store._migrations import validate_identifier
from facta.store.documents import D, DocumentSpec
from facta.store.read_models import Batch, Unit


class Session(Generic[D]):
    """A projection's documents inside one transaction (a runner's batch or an append).

    ``put`` and ``delete`` are buffered and written together when the transaction commits;
    ``get`` sees them at once. Documents are values: build a new one (``msgspec.structs
    .replace``) rather than changing one you got. ``connection`` is the raw database
    connection inside the same transaction, for projections with their own tables.
    """

    __slots__ = ("_cache", "_pending", "_spec", "_table", "_unit")

    def __init__(self, unit: Unit, spec: DocumentSpec[D], table: str) -> None:
        self._unit = unit
        self._spec = spec
        self._table = table
        self._pending: dict[str, D | None] = {}
        self._cache: dict[str, D | None] = {}

    async def get(self, key: str) -> D | None:
        """The document stored under ``key`` (as this transaction has left it), or None."""
        pending = self._pending
        if key in pending:
            return pending[key]
        cache = self._cache
        if key in cache:
            return cache[key]
        raw = await self._unit.get(key)
        document = None if raw is None else self._spec.decode(raw)
        cache[key] = document
        return document

    def put(self, key: str, document: D) -> None:
        """Store ``document`` under ``key`` (replacing any)."""
        self._pending[key] = document

    def delete(self, key: str) -> None:
        """Remove the document under ``key`` (nothing if there is none)."""
        self._pending[key] = None

    @property
    def connection(self) -> Any:
        """The raw connection inside this transaction: ``sqlite3.Connection`` on SQLite
        (synchronous), ``asyncpg.Connection`` on PostgreSQL, None in memory. A runner only
        opens the transaction before the batch for projections with ``uses_connection``."""
        return self._unit.connection

    def table(self, suffix: str) -> str:
        """The name of one of the projection's own tables, tied to this storage slot so that
        a rebuild builds its own copy and the switch drops the old one."""
        return f"{self._table}_{validate_identifier(suffix, 'table suffix')}"

    async def _prefetch(self, keys: Iterable[str]) -> None:
        wanted = [k for k in dict.fromkeys(keys) if k not in self._cache]
        if not wanted:
            return
        found = await self._unit.get_many(wanted)
        decode = self._spec.decode
        for key in wanted:
            raw = found.get(key)
            self._cache[key] = None if raw is None else decode(raw)

    def _fill(self, batch: Batch) -> Batch:
        row = self._spec.row
        for key, document in self._pending.items():
            if document is None:
                batch.deletes.append(key)
            else:
                batch.upserts.append(row(key, document))
        return batch

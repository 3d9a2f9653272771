"""Relay checkpoints of the in-memory engine: a dict per store, shared by every relay on it."""

from __future__ import annotations

import time
import weakref
from dataclasses import replace
from typing import Any

from facta.errors import RelayLeaseLost
from facta.store.base import START, Position
from facta.store.checkpoints import RelayCheckpoint

_memory_rows: weakref.WeakKeyDictionary[Any, dict[str, RelayCheckpoint]] = (
    weakref.WeakKeyDictionary()
)


class MemoryCheckpoints:
    """Checkpoints of relays of one in-memory store (shared by every relay on it)."""

    def __init__(self, store: Any) -> None:
        self._rows = _memory_rows.setdefault(store, {})

    async def rows(self) -> list[RelayCheckpoint]:
        """Every relay's row, by name (for the console)."""
        now = time.time()
        return [
            replace(row, owner=row.owner if row.lease_until > now else None)
            for row in (self._rows[name] for name in sorted(self._rows))
        ]

    async def acquire(self, name: str, owner: str, ttl: float) -> RelayCheckpoint | None:
        now = time.time()
        row = self._rows.setdefault(name, RelayCheckpoint(name, START, 0, None, None))
        if row.owner not in (None, owner) and row.lease_until > now:
            return None
        row.owner, row.lease_until = owner, now + ttl
        return replace(row)

    async def save(
        self, name: str, owner: str, position: Position, published: int, ttl: float
    ) -> None:
        row = self._held(name, owner)
        row.position, row.published = position, row.published + published
        row.updated_at = time.time()
        row.lease_until = row.updated_at + ttl

    async def renew(self, name: str, owner: str, ttl: float) -> None:
        self._held(name, owner).lease_until = time.time() + ttl

    async def release(self, name: str, owner: str) -> None:
        row = self._rows.get(name)
        if row is not None and row.owner == owner:
            row.owner, row.lease_until = None, 0.0

    async def get(self, name: str) -> RelayCheckpoint | None:
        row = self._rows.get(name)
        if row is None:
            return None
        held = row.lease_until > time.time()  # a holder that stopped renewing holds nothing
        owner = row.owner if held else None
        return replace(row, owner=owner)

    async def record_error(self, name: str, error: str) -> None:
        row = self._rows.get(name)
        if row is not None:
            row.error, row.error_at = error, time.time()

    async def close(self) -> None:
        pass

    def _held(self, name: str, owner: str) -> RelayCheckpoint:
        row = self._rows.get(name)
        if row is None or row.owner != owner:
            raise RelayLeaseLost(name)
        return row

"""The Application's snapshots: how a state is written and read, when one is taken, and
saving it off the command's path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from facta._formats import Format, model_format
from facta.domain import Aggregate
from facta.store.base import RecordedEvent, Snapshot
from facta.store.engine import SnapshotStore

log = logging.getLogger("facta.application")

S = TypeVar("S")


class Snapshotter:
    """Takes and reads the snapshots of aggregates' states in a SnapshotStore (None: the
    engine has none, and nothing is taken)."""

    def __init__(self, snapshots: SnapshotStore | None) -> None:
        self.store = snapshots
        self._background: set[asyncio.Task[None]] = set()
        # state type -> how its snapshots are written and read, found once per type.
        self._formats: dict[Any, Format] = {}

    def format(self, aggregate: Aggregate[Any, Any, Any]) -> Format:
        """How ``aggregate``'s state is encoded in a snapshot."""
        kind = aggregate.state_type
        found = self._formats.get(kind)
        if found is None:
            found = model_format(kind) or Format(
                msgspec.json.encode, msgspec.json.Decoder(kind).decode
            )
            self._formats[kind] = found
        return found

    def decode(self, aggregate: Aggregate[S, Any, Any], data: bytes) -> S:
        """A snapshot's state."""
        state: S = self.format(aggregate).decode(data)
        return state

    async def load(
        self,
        aggregate: Aggregate[S, Any, Any],
        stream_id: str,
        version: int | None,
        at: float | None,
    ) -> tuple[S, int] | None:
        """The state and version of the latest usable snapshot at or below the point."""
        if self.store is None:
            return None
        snapshot = await self.store.load_snapshot(
            stream_id, max_version=version, max_recorded_at=at
        )
        if snapshot is None or snapshot.schema_version != aggregate.state_schema_version:
            return None
        return self.decode(aggregate, snapshot.data), snapshot.version

    def snapshot(
        self, aggregate: Aggregate[S, Any, Any], last: RecordedEvent, state: S
    ) -> Snapshot:
        """``state``, the state after ``last``, as a snapshot."""
        return Snapshot(
            last.stream_id,
            last.version,
            aggregate.state_schema_version,
            self.format(aggregate).encode(state),
            last.recorded_at,
        )

    def maybe_take(
        self, aggregate: Aggregate[S, Any, Any], recorded: Sequence[RecordedEvent], state: S
    ) -> None:
        """Save a snapshot of ``state`` in the background if ``recorded`` crossed a multiple
        of the aggregate's ``snapshot_every``."""
        every = aggregate.snapshot_every
        if not every or not recorded or self.store is None:
            return
        last = recorded[-1]
        if last.version // every == (last.version - len(recorded)) // every:
            return
        task = asyncio.get_running_loop().create_task(
            self._save(self.snapshot(aggregate, last, state))
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _save(self, snapshot: Snapshot) -> None:
        try:
            assert self.store is not None
            await self.store.save_snapshot(snapshot)
        except Exception:  # a lost snapshot only costs a longer load later
            log.exception(
                "saving the snapshot of %s at %d failed", snapshot.stream_id, snapshot.version
            )

    async def drain(self) -> None:
        """Wait for the snapshots being saved."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

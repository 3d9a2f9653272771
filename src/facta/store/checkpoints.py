"""Where a relay keeps its checkpoint, and the lease that keeps one relay per destination.

One row per relay name (the destination), in the event store's own database; each engine
implements :class:`CheckpointStore` (its ``relay_checkpoints``). A checkpoint is only
written while the writer still holds the lease, so a relay that lost it cannot move it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from facta.errors import RelayLeaseLost
from facta.store.base import Position

__all__ = ["CheckpointStore", "RelayCheckpoint", "RelayLeaseLost"]


@dataclass(slots=True)
class RelayCheckpoint:
    """A relay's row: its checkpoint, how many events it published, who holds it, and the
    last error it met (with when: kept after it recovered, until the next one)."""

    name: str
    position: Position
    published: int
    updated_at: float | None
    owner: str | None
    lease_until: float = 0.0
    error: str | None = None
    error_at: float | None = None


class CheckpointStore(Protocol):
    """Checkpoints and leases of relays, in one event store's database."""

    async def acquire(self, name: str, owner: str, ttl: float) -> RelayCheckpoint | None:
        """Take the lease of relay ``name`` for ``owner`` (creating its row at START) and
        return its row; None while another relay holds it."""
        ...

    async def save(
        self, name: str, owner: str, position: Position, published: int, ttl: float
    ) -> None:
        """Move the checkpoint to ``position`` (adding ``published``) and renew the lease.

        Raises RelayLeaseLost (writing nothing) if ``owner`` no longer holds it."""
        ...

    async def renew(self, name: str, owner: str, ttl: float) -> None:
        """Keep the lease while idle; raises RelayLeaseLost if it is gone."""
        ...

    async def release(self, name: str, owner: str) -> None:
        """Give the lease up (another relay may take over at once)."""
        ...

    async def get(self, name: str) -> RelayCheckpoint | None:
        """The row of relay ``name``, if it ever ran."""
        ...

    async def record_error(self, name: str, error: str) -> None:
        """Keep ``error`` (and now) as relay ``name``'s last error, for operators (the
        console, ``facta relay status``); nothing if the relay never ran."""
        ...

    async def close(self) -> None: ...

"""The read-model store contract: what each engine provides for projections' documents.

A projection's storage is a *slot*: one documents table ``{prefix}rm_{name}_{slot}`` and
one row in the catalog per partition of the slot (version, checkpoint, lease, state, error).
A projection of one partition has one row, partition 0; one of ``partitions = N`` has N,
each with its own checkpoint and lease, all writing the one table. A new version or a manual
rebuild gets a new slot, built beside the active one and switched to once every partition
of it has caught up (each says so by moving from ``rebuilding`` to ``ready``).

Several processes set up, build and switch slots at once, so every change to the slots of a
name is made under a lock of that name (PostgreSQL: a transaction-level advisory lock; SQLite:
the write lock), and a process that writes a slot in its appends (an inline projection) *pins*
it: a switch that replaces a pinned slot only retires it (state ``retired``, no longer
active), and its table is dropped by a later switch or rebuild once nobody pins it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

import msgspec

from facta.store.base import START, Position, Transaction
from facta.store.documents import Condition, DocumentSpec


class DeadLetter(msgspec.Struct, frozen=True):
    """An event a projection could not handle and parked to go on."""

    name: str
    slot: int
    event_id: str
    position: str
    stream_id: str
    type: str
    error: str
    parked_at: float


@dataclass(slots=True)
class SlotRow:
    """One catalog row."""

    name: str
    slot: int
    version: int
    active: bool
    state: str  # running | rebuilding | failed | inline | retired | paused
    position: Position
    checkpoint_at: float | None = None
    handled: int = 0
    owner: str | None = None
    lease_until: float = 0.0
    error: str | None = None
    error_event_id: str | None = None
    error_position: str | None = None
    failed_at: float | None = None
    partition: int = 0
    fresh: bool = False  # created by this claim: its setup has not run


class Failure(NamedTuple):
    """A handler error that stops a projection, as recorded in its catalog row."""

    event_id: str
    position: str
    error: str


@dataclass(slots=True)
class Batch:
    """What one commit writes: document changes, the new checkpoint, parked events, and
    (when the projection stops) the failure."""

    position: Position
    upserts: list[tuple[Any, ...]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    checkpoint_at: float | None = None
    handled: int = 0
    parked: list[DeadLetter] = field(default_factory=list)
    failure: Failure | None = None


class Unit(Protocol):
    """One batch's unit of work on a worker's connection."""

    @property
    def connection(self) -> Any:
        """The raw connection, inside the batch's transaction once ``begin`` ran."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]: ...

    async def begin(self) -> None:
        """Open the write transaction now rather than at commit."""
        ...

    async def commit(self, batch: Batch) -> None:
        """Write the batch and move the checkpoint from where the slot was, in one
        transaction; raise LeaseLost (writing nothing) if this runner no longer holds it."""
        ...

    async def rollback(self) -> None: ...


Plan = tuple[Literal["take"], int] | tuple[Literal["create"], bool] | tuple[Literal["wait"], str]


def plan_claim(
    rows: Sequence[SlotRow],
    version: int,
    owner: str,
    now: float,
    *,
    downgrade: bool = False,
    partition: int = 0,
    partitions: int = 1,
) -> Plan:
    """Which slot a runner of ``version`` should work on for ``partition`` (of
    ``partitions``): take an existing one (free, its own, or with its lease run out), create
    one (active or not), or wait (and why). ``rows`` are all of the name's catalog rows.
    Pure, so every engine decides the same way. ``downgrade``: build this version beside an
    active newer one too (inline projections, which must store the version their code
    writes), rather than wait.

    The number of partitions belongs to a version: a slot of this version laid out in
    another number is waited on with a reason that says to raise the version (which then
    rebuilds in the new layout, blue/green)."""
    layouts: dict[int, int] = {}
    for r in rows:
        layouts[r.slot] = layouts.get(r.slot, 0) + 1
    mine = [r for r in rows if r.partition == partition]
    active = next((r for r in rows if r.active), None)
    if active is not None and active.version == version:
        if layouts[active.slot] != partitions:
            return ("wait", _relayout(version, layouts[active.slot], partitions))
        return _take(next(r for r in mine if r.slot == active.slot), owner, now)
    if active is not None and active.version > version and not downgrade:
        return ("wait", f"superseded by version {active.version}")
    building = [
        r
        for r in mine
        if not r.active and r.version == version and r.state not in ("inline", "retired")
    ]
    if building:
        row = max(building, key=lambda r: r.slot)
        if layouts[row.slot] != partitions:
            return ("wait", _relayout(version, layouts[row.slot], partitions))
        return _take(row, owner, now)
    if any(r.version == version and layouts[r.slot] != partitions for r in rows):
        other = next(layouts[r.slot] for r in rows if r.version == version)
        return ("wait", _relayout(version, other, partitions))
    return ("create", active is None)


def new_slot_rows(
    name: str,
    slot: int,
    version: int,
    active: bool,
    state: str,
    owner: str,
    until: float,
    *,
    partitions: int,
    mine: int | None,
) -> list[SlotRow]:
    """The catalog rows of a new slot, by partition, leased to ``owner`` until ``until``: all
    of them, or (with ``mine``) that one and the others to :func:`setting_up` of ``owner``."""
    return [
        SlotRow(
            name,
            slot,
            version,
            active,
            state,
            START,
            owner=owner if mine in (None, p) else setting_up(owner),
            lease_until=until,
            partition=p,
            fresh=True,
        )
        for p in range(partitions)
    ]


def setting_up(owner: str) -> str:
    """Who holds the other partitions' rows of a slot that ``owner``'s claim created, until
    it has set the slot up and frees them (no partition handles events before the setup)."""
    return f"{owner}/setting-up"


def _relayout(version: int, stored: int, wanted: int) -> str:
    return (
        f"version {version} is laid out in {stored} partition(s), not {wanted}:"
        " raise the projection's version to change them (it is rebuilt beside the old layout)"
    )


MAX_PARTITIONS = 256
"""The most partitions a projection, a policy or the relay may have (each is a catalog row, a
lease and a read of the log per process that holds it)."""


def partition_of(key: str, partitions: int) -> int:
    """The partition of ``key`` (a stream id, by default) among ``partitions``: a hash that
    is the same in every process and every Python version (``hash()`` is salted per
    process), so all workers agree."""
    if partitions == 1:
        return 0
    return zlib.crc32(key.encode()) % partitions


FAILED = "failed at "
"""How the reason to wait for a failed slot begins (the runner reports it as stopped)."""

PAUSED = "paused by an operator"
"""Why a runner waits for a paused slot (until it is resumed)."""


def _take(row: SlotRow, owner: str, now: float) -> Plan:
    if row.state == "failed":
        return ("wait", f"{FAILED}{row.error_position}: {row.error}")
    if row.state == "inline":
        return ("wait", "maintained inline")
    if row.state == "paused":
        return ("wait", PAUSED)
    if row.owner not in (None, owner) and row.lease_until > now:
        return ("wait", f"held by {row.owner}")
    return ("take", row.slot)


class Worker(Protocol):
    """A runner's connection for one projection: claims, leases, batches, switches."""

    async def claim(
        self,
        name: str,
        version: int,
        spec: DocumentSpec[Any],
        owner: str,
        ttl: float,
        *,
        downgrade: bool = False,
        partition: int = 0,
        partitions: int = 1,
    ) -> SlotRow | str:
        """Take ``partition``'s row of the slot this version should work on (creating the
        slot, its ``partitions`` rows and its table if needed) and lease it; or say why not.
        The other rows of a slot it creates are leased to :func:`setting_up` of ``owner``.
        ``downgrade`` as in :func:`plan_claim`."""
        ...

    async def new_slot(
        self,
        name: str,
        version: int,
        spec: DocumentSpec[Any],
        owner: str,
        ttl: float,
        *,
        partitions: int = 1,
    ) -> list[SlotRow]:
        """Create a fresh slot beside the active one (a manual rebuild) with every one of its
        ``partitions`` rows leased to ``owner``; returns the rows, by partition."""
        ...

    async def renew(self, slot: SlotRow, owner: str, ttl: float) -> bool: ...

    async def release(self, slot: SlotRow, owner: str) -> None: ...

    def unit(self, slot: SlotRow, spec: DocumentSpec[Any]) -> Unit: ...

    async def switch(self, slot: SlotRow, owner: str) -> bool:
        """Say that ``slot``'s partition has caught up (``ready``); once every partition of
        the slot has, make it the active one and drop the one it replaces (retire it, if a
        process pins it). True when the slot is active (now or already), False while other
        partitions are still catching up. Raise LeaseLost if this runner no longer holds it."""
        ...

    async def close(self) -> None: ...


class Row(NamedTuple):
    """A query result row: the document's JSON, its ordering value and its key."""

    data: bytes
    value: Any
    key: str


class ReadModels(Protocol):
    """The read-model store of one engine: projections' documents, their catalog of slots
    (checkpoint, lease, state), dead letters and pins, in the engine's database."""

    prefix: str

    def table(self, name: str, slot: int) -> str:
        """The documents table of a slot, qualified as SQL needs it."""
        ...

    async def worker(self) -> Worker: ...

    async def slots(self, name: str | None = None) -> list[SlotRow]: ...

    async def active(self, name: str) -> SlotRow | None: ...

    async def restart(self, name: str) -> int:
        """Clear the failure of the projection's slots; returns how many were failed."""
        ...

    async def pause(self, name: str, holder: str | None = None, ttl: float = 0.0) -> int:
        """Pause the projection's active slot, every partition of it (state ``paused``):
        its lease is taken from whoever holds it, so that runner's next commit or renewal
        fails and it writes nothing more, and no runner claims it until :meth:`resume`.
        With ``holder``, the rows are leased to ``holder`` for ``ttl`` seconds instead of
        to nobody (an operator's one-off work on the paused slot, such as retrying a parked
        event). Failed and inline slots are left as they are. Returns how many rows."""
        ...

    async def resume(self, name: str) -> int:
        """Hand the paused rows of ``name`` back to the runners (state ``running``, no
        holder); returns how many."""
        ...

    async def runners(self, name: str, owner: str, ttl: float) -> int:
        """Say that runner ``owner`` works on ``name`` for the next ``ttl`` seconds, and
        return how many runners do now, this one included (each takes its fair share of the
        partitions)."""
        ...

    async def leave(self, name: str, owner: str) -> None:
        """Say that runner ``owner`` works on ``name`` no more (it shut down cleanly)."""
        ...

    async def dead_letters(self, name: str, limit: int) -> list[DeadLetter]: ...

    async def parked(self) -> dict[tuple[str, int], int]:
        """How many events each (projection, slot) has parked, for those that have any."""
        ...

    async def clear_dead_letters(self, name: str, event_ids: Sequence[str] | None) -> int:
        """Delete ``name``'s parked events (those of ``event_ids``, or all); returns how many."""
        ...

    async def mark_inline(self, name: str) -> None:
        """Hand the active slot over to inline maintenance (no runner works on it)."""
        ...

    async def pin(self, slot: SlotRow) -> bool:
        """Keep ``slot``'s table from being dropped until :meth:`unpin` (or :meth:`close`),
        if it is still the active inline slot of its version (True); else pin nothing (False).

        For a process that writes the slot in its appends: another process's switch then
        retires it rather than drop it under them.
        """
        ...

    async def unpin(self, slot: SlotRow) -> None:
        """Release the pin :meth:`pin` took on ``slot`` (nothing if there is none)."""
        ...

    def inline_unit(self, tx: Transaction, slot: SlotRow, spec: DocumentSpec[Any]) -> Unit:
        """A unit writing ``slot``'s documents inside ``tx``, the transaction of an append
        of this engine (an inline projection's batch)."""
        ...

    async def get(self, slot: SlotRow, key: str) -> bytes | None: ...

    async def query(
        self,
        slot: SlotRow,
        spec: DocumentSpec[Any],
        conditions: list[Condition],
        order_by: str,
        descending: bool,
        after: tuple[Any, str] | None,
        limit: int,
    ) -> list[Row]: ...

    async def aggregate(
        self,
        slot: SlotRow,
        spec: DocumentSpec[Any],
        function: Literal["count", "sum"],
        field: str,
        conditions: list[Condition],
    ) -> Any: ...

    async def close(self) -> None:
        """Release the connections, and the pins, of this store (the engine closes it)."""
        ...


def table_name(prefix: str, name: str, slot: int) -> str:
    """The documents table of a slot (other tables of the slot add ``_suffix`` to it)."""
    return f"{prefix}rm_{name}_{slot}"

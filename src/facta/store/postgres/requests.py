"""An append request of the PostgreSQL store's group commit, and the arguments of the append
function (migration 0005) for a batch of them: each request's stream, expected version and
events, their tags, the advisory lock keys the batch takes, and the conditions to check."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from facta.store.base import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    TransactionHook,
)
from facta.store.boundaries import AppendCondition
from facta.store.postgres.locks import LockKeys, joined, ordered

_EXPECTED_CODES = {ANY: -1, NO_STREAM: -2, STREAM_EXISTS: -3}


@dataclass(slots=True)
class Request:
    """One append waiting for its batch, and the future its caller awaits."""

    stream_id: str
    events: Sequence[NewEvent]
    expected: ExpectedVersion
    future: asyncio.Future[AppendResult]
    hook: TransactionHook | None = None
    condition: AppendCondition | None = None


def arguments(
    batch: Sequence[Request], recorded_at: float, channel: str | None, keys: LockKeys
) -> list[Any]:
    """The append function's arguments for ``batch`` (``channel``: what it notifies)."""
    streams, expected, counts = [], [], []
    ids: list[str] = []
    types: list[str] = []
    versions: list[int] = []
    data: list[bytes] = []
    metadata: list[bytes] = []
    tags: list[str | None] = []
    tagged = False
    codes = _EXPECTED_CODES
    shared: set[int] = set()
    for request in batch:
        streams.append(request.stream_id)
        wanted = request.expected
        expected.append(wanted if isinstance(wanted, int) else codes[wanted])
        counts.append(len(request.events))
        for event in request.events:
            ids.append(event.event_id)
            types.append(event.type)
            versions.append(event.schema_version)
            data.append(event.data)
            metadata.append(event.metadata)
            if event.tags:
                tagged = True
                tags.append(joined(event.tags))
                shared |= keys.shared((event,))
            else:
                tags.append(None)
    conditions = _conditions(batch, keys) if any(r.condition is not None for r in batch) else None
    exclusive, lock_log = conditions[-1] if conditions else (set(), False)
    lock_keys, lock_exclusive = ordered(shared, exclusive)
    return [
        streams,
        expected,
        counts,
        ids,
        types,
        versions,
        data,
        metadata,
        recorded_at,
        channel,
        tags if tagged else None,
        lock_keys or None,
        lock_exclusive or None,
        lock_log,
        *(conditions[:-1] if conditions else (None,) * 5),
    ]


def _conditions(batch: Sequence[Request], keys: LockKeys) -> list[Any]:
    """The append function's condition arguments for ``batch`` (its items flattened,
    see the migration), then the keys they lock exclusively and whether one locks the
    events table."""
    counts: list[int] = []
    after_commit: list[int] = []
    after_sequence: list[int] = []
    item_types: list[str] = []
    item_tags: list[str] = []
    exclusive: set[int] = set()
    lock_log = False
    for request in batch:
        condition = request.condition
        if condition is None:
            counts.append(0)
            after_commit.append(0)
            after_sequence.append(0)
            continue
        keyed, whole_log = keys.exclusive(condition)
        exclusive |= keyed
        lock_log = lock_log or whole_log
        items = condition.fail_if_events_match.items
        counts.append(len(items))
        after = condition.after
        after_commit.append(0 if after is None else after.commit)
        after_sequence.append(0 if after is None else after.sequence)
        for item in items:
            item_types.append(joined(item.types))
            item_tags.append(joined(item.tags))
    return [counts, after_commit, after_sequence, item_types, item_tags, (exclusive, lock_log)]

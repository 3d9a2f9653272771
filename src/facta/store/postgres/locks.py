"""The locks that make append conditions correct on PostgreSQL without one lock for every
writer.

An append of tagged events takes, shared, an advisory key for each (type, tag) pair its
events could be selected by through a tag: for each of an event's tags, (its type, the tag)
and (any type, the tag). A condition takes, exclusively, one key per query item that names
tags, which every event the item matches also takes: the item's first tag with each of its
types (or with any type). So an append whose events such an item could match and the
conditional append exclude each other, while appends that share no key (disjoint tags) never
wait; shared keys never exclude each other, so plain appends do not wait for each other, and
untagged events (the aggregates') take no key at all.

An item that names no tag can match untagged events, which take no key: a condition with
one locks the events table against writers instead (SHARE ROW EXCLUSIVE, which every
insert's ROW EXCLUSIVE waits for), after its advisory keys, for the length of its append.
Correct and rare; such a condition also reads the log from its position on, so conditions
should name a tag.

A key is 64 bits of a hash of the store's tables and the pair: two pairs that collide only
wait for each other needlessly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from facta.store.base import NewEvent
from facta.store.boundaries import AppendCondition

_ANY = ""


class LockKeys:
    """The keys of one store (``scope``: its schema and prefix, so stores sharing a
    database never share keys)."""

    def __init__(self, scope: str) -> None:
        self._scope = scope
        self._cache: dict[tuple[str, str], int] = {}

    def key(self, type_: str, tag: str) -> int:
        """The key of a (type, tag) pair ("" for any)."""
        pair = (type_, tag)
        found = self._cache.get(pair)
        if found is None:
            digest = hashlib.blake2b(
                f"{self._scope}\x1f{type_}\x1f{tag}".encode(), digest_size=8
            ).digest()
            found = int.from_bytes(digest, "big", signed=True)
            if len(self._cache) < 100_000:  # types and hot tags; unbounded tags are not kept
                self._cache[pair] = found
        return found

    def shared(self, events: Iterable[NewEvent]) -> set[int]:
        """The keys an append of ``events`` takes shared (none for untagged events)."""
        key = self.key
        keys = set()
        for event in events:
            for tag in event.tags:
                keys.add(key(event.type, tag))
                keys.add(key(_ANY, tag))
        return keys

    def exclusive(self, condition: AppendCondition) -> tuple[set[int], bool]:
        """The keys a conditional append takes exclusively, and whether it must lock the
        events table too (an item names no tag)."""
        key = self.key
        keys = set()
        lock_log = False
        for item in condition.fail_if_events_match.items:
            if not item.tags:
                lock_log = True
                continue
            tag = item.tags[0]
            for type_ in item.types or (_ANY,):
                keys.add(key(type_, tag))
        return keys, lock_log


def ordered(shared: set[int], exclusive: set[int]) -> tuple[list[int], list[bool]]:
    """The keys to take, in ascending order (so that no two transactions wait on each other
    in a cycle), each once, exclusive where any append of the batch wants it so."""
    keys = sorted(shared | exclusive)
    return keys, [k in exclusive for k in keys]


def joined(values: Sequence[str]) -> str:
    """Tags or types as one text for the append function (split there on U+001F)."""
    return "\x1f".join(values)

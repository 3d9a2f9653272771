"""Stream metadata for retention (max-age, max-count) and the scavenger that applies it.

A rule is an event, :class:`RetentionSet`, in its own stream: ``retention-stream~{id}`` for
one stream, ``retention-category~{name}`` for every stream of a category (a stream's own
rule wins over its category's). The latest event of a rule's stream is the rule, so rules
are audited and travel with the log like everything else. :func:`scavenge` visits the
streams that have a rule and truncates each to what the rule keeps (always at least its
last event): through :func:`~facta.lifecycle.streams.truncate_stream`, with a snapshot
where the stream belongs to one of the aggregates given, so it still loads.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec

from facta.application import Application
from facta.codec import Codec
from facta.domain import Aggregate, Event
from facta.lifecycle.streams import truncate_stream
from facta.store.base import START, category_of, validate_stream_id
from facta.store.engine import Browsing, Engine

RETENTION_CATEGORY = "retention"
"""The category of the streams that hold retention rules."""


class RetentionSet(Event, frozen=True, tag="facta.RetentionSet"):
    """A retention rule for one stream (``category`` False) or every stream of a category:
    keep at most ``max_count`` events, and none older than ``max_age`` seconds (None: no
    bound). Both None clears the rule."""

    target: str
    category: bool
    max_age: float | None = None
    max_count: int | None = None


class Scavenge(msgspec.Struct, frozen=True):
    """What :func:`scavenge` did: the streams visited and truncated, the events erased."""

    visited: int
    truncated: int
    erased: int


_RULES = Codec([RetentionSet])


def retention_stream(target: str, *, category: bool = False) -> str:
    """The stream holding the retention rule of ``target`` (a stream id or a category)."""
    kind = "category" if category else "stream"
    return validate_stream_id(f"{RETENTION_CATEGORY}-{kind}~{target}")


async def set_retention(
    store: Engine,
    target: str,
    *,
    category: bool = False,
    max_age: float | None = None,
    max_count: int | None = None,
) -> RetentionSet:
    """Set (or with both None, clear) the retention rule of a stream or category."""
    if max_count is not None and max_count < 1:
        raise ValueError("max_count must be 1 or more: a stream keeps its last event")
    if max_age is not None and max_age <= 0:
        raise ValueError("max_age must be a positive number of seconds")
    rule = RetentionSet(target, category, max_age, max_count)
    await store.append(retention_stream(target, category=category), [_RULES.encode(rule)])
    return rule


async def retention_rules(store: Engine) -> list[RetentionSet]:
    """Every rule in force (the latest of each target), streams' and categories'."""
    latest: dict[tuple[bool, str], RetentionSet] = {}
    after = START
    while page := await store.read_all(after=after, categories=[RETENTION_CATEGORY]):
        for record in page:
            rule = _RULES.decode(record)
            if isinstance(rule, RetentionSet):
                latest[(rule.category, rule.target)] = rule
        after = page[-1].position
    return [r for r in latest.values() if r.max_age is not None or r.max_count is not None]


async def scavenge(
    store: Engine,
    *,
    aggregates: Sequence[Aggregate[Any, Any, Any]] = (),
    app: Application | None = None,
    now: float | None = None,
) -> Scavenge:
    """Truncate every stream with a retention rule to what the rule keeps.

    Streams of an aggregate in ``aggregates`` keep a snapshot where they now start (the
    engine needs Snapshots); others are simply cut. Categories' streams are listed with the
    engine's Browsing, or by a scan of the log.
    """
    now = time.time() if now is None else now
    rules = await retention_rules(store)
    by_stream = {r.target: r for r in rules if not r.category}
    for rule in (r for r in rules if r.category):
        for stream_id in await _streams_of(store, rule.target):
            by_stream.setdefault(stream_id, rule)
    by_category = {a.name: a for a in aggregates}
    visited = truncated = erased = 0
    for stream_id, rule in sorted(by_stream.items()):
        visited += 1
        before = await _first_kept(store, stream_id, rule, now)
        if before is None:
            continue
        done = await truncate_stream(
            store, stream_id, before, aggregate=by_category.get(category_of(stream_id)), app=app
        )
        truncated += 1
        erased += done.erased
    return Scavenge(visited, truncated, erased)


async def _first_kept(store: Engine, stream_id: str, rule: RetentionSet, now: float) -> int | None:
    """The first version ``rule`` keeps of ``stream_id``, if that erases something."""
    records = await store.stored_events.read_stream(stream_id)
    if len(records) < 2:
        return None
    last = records[-1].version
    before = records[0].version
    if rule.max_count is not None:
        before = max(before, last - rule.max_count + 1)
    if rule.max_age is not None:
        young = [r.version for r in records if r.recorded_at >= now - rule.max_age]
        before = max(before, young[0] if young else last)
    return before if before > records[0].version else None


async def _streams_of(store: Engine, category: str) -> list[str]:
    """The ids of the streams of ``category``."""
    browser = store.capability(Browsing)
    found: list[str] = []
    if browser is not None:
        after = None
        while page := await browser.streams(f"{category}-", after, 1000):
            found += [s.stream_id for s in page]
            after = page[-1].stream_id
        return found
    seen: set[str] = set()
    after_position = START
    while page_records := await store.read_all(after=after_position, categories=[category]):
        seen.update(r.stream_id for r in page_records)
        after_position = page_records[-1].position
    return sorted(seen)

"""Catch-up-then-live subscriptions, shared by every backend.

A backend only has to page through its log (``read_all``), tell where its head is (``head``)
and wake waiters when something is appended (``wait_for_events``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from facta.store.base import EventStore, Position, RecordedEvent

MAX_WAIT = 1.0
"""Longest sleep between checks when no wake-up arrives (another process may have written)."""


async def follow(
    store: EventStore,
    *,
    after: Position,
    categories: Sequence[str] | None,
    types: Sequence[str] | None,
    batch_size: int,
) -> AsyncIterator[RecordedEvent]:
    """Yield every event after ``after`` that passes the filters, then wait for more, forever."""
    position = after
    filtered = bool(categories or types)
    wait = 0.05
    while True:
        # Read the head before the page: a short page then proves nothing matching lies
        # between the page's end and that head, so a filtered reader may skip ahead to it.
        head = await store.head() if filtered else None
        page = await store.read_all(
            after=position, limit=batch_size, categories=categories, types=types
        )
        for event in page:
            yield event
        if page:
            position = page[-1].position
        if len(page) == batch_size:
            continue
        if head is not None and head > position:
            position = head
        if page:
            wait = 0.05
            continue
        await store.wait_for_events(position, wait)
        wait = min(wait * 2, MAX_WAIT)

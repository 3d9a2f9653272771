"""Catch-up-then-live subscriptions, shared by every engine.

An engine only has to page through its log (``read_all``), tell where its head is (``head``)
and wake waiters when something is appended (``wait_for_events``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from facta._retry import backoff
from facta.errors import StoreUnavailable
from facta.store.base import EventStore, Position, RecordedEvent

log = logging.getLogger("facta.store")

MAX_WAIT = 1.0
"""Longest sleep between checks when no wake-up arrives (another process may have written)."""


async def follow(
    store: EventStore,
    *,
    after: Position,
    categories: Sequence[str] | None,
    types: Sequence[str] | None,
    batch_size: int,
    head: Callable[[], Awaitable[Position]] | None = None,
) -> AsyncIterator[RecordedEvent]:
    """Yield every event after ``after`` that passes the filters, then wait for more, forever.

    Pages are read as soon as they are visible (no wait for events held back). ``head``
    reads the log's head without waiting (default: ``store.head``). A store that cannot be
    reached only pauses it: it reads again after the last event it yielded, with back-off,
    so nothing is lost or repeated.
    """
    read_head = head or store.head
    position = after
    filtered = bool(categories or types)
    wait = 0.05
    failures = 0
    while True:
        try:
            # The head is read before the page: a short page then proves that nothing that
            # passes the filters lies between the page's end and that head, so a filtered
            # reader may skip ahead to it.
            last = await read_head() if filtered else None
            page = await store.read_all(
                after=position,
                limit=batch_size,
                categories=categories,
                types=types,
                wait_for_held_back=False,
            )
        except StoreUnavailable as exc:
            failures += 1
            retry = backoff(failures)
            log.warning("subscription resumes after %s in %.1f s: %s", position, retry, exc)
            await asyncio.sleep(retry)
            continue
        failures = 0
        for event in page:
            yield event
            position = event.position
        if len(page) == batch_size:
            continue
        if last is not None and last > position:
            position = last
        if page:
            wait = 0.05
            continue
        with contextlib.suppress(StoreUnavailable):  # the next read reports and backs off
            await store.wait_for_events(position, wait)
        wait = min(wait * 2, MAX_WAIT)

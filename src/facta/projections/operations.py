"""What an operator does to one projection by hand, beside the runners: retry or skip an
event it parked. (Pause and resume are the catalog's: ReadStore.pause and resume; a rebuild
is ProjectionRunner.rebuild.)

A retry must not race the runner that holds the projection: both would read and write the
same documents. So it pauses the projection with its own lease on the paused rows (the
runner's next commit or renewal fails, writing nothing), handles the event with the
checkpoint left where it is, and then resumes the projection (or leaves it paused, held by
nobody, if an operator had paused it). The event is handled and its dead letter cleared in
two transactions: a crash between them leaves it listed though handled, so a handler that
may be retried should be idempotent, as an at-least-once one must be anyway.
"""

from __future__ import annotations

from facta._ids import owner_id
from facta.application import Application
from facta.codec import Codec
from facta.projections._target import Handler, Target
from facta.projections.apply import Applier
from facta.store.engine import Engine

RETRY_HOLD = 60.0
"""Seconds a retry holds the paused projection's lease (it lets go as soon as it is done)."""


class ParkedEventNotFound(LookupError):
    """The projection has no parked event with this id."""

    def __init__(self, name: str, event_id: str) -> None:
        self.name, self.event_id = name, event_id
        super().__init__(f"projection {name!r} has no parked event {event_id!r}")


class NotRetryable(RuntimeError):
    """The projection cannot take a retry now (failed, inline, or not built)."""


async def retry_parked(
    store: Engine,
    handler: Handler,
    event_id: str,
    *,
    app: Application | None = None,
    codec: Codec | None = None,
) -> str | None:
    """Handle the event ``handler``'s projection parked under ``event_id`` again; on success
    clear its dead letter and return None, else return the error (it stays parked).

    Raises ParkedEventNotFound, and NotRetryable when the projection has no running or
    paused active slot (a failed one is restarted first; an inline one has no parked events).
    """
    target = Target(handler)
    backend = store.read_models
    letters = await backend.dead_letters(target.name, 1000)
    if not any(d.event_id == event_id for d in letters):
        raise ParkedEventNotFound(target.name, event_id)
    record = await store.find_event(event_id)
    if record is None:  # the log never loses an event: a letter of another store's
        raise ParkedEventNotFound(target.name, event_id)
    codec = codec or (app.codec if app is not None else Codec())
    for kind in type(handler).event_types:
        codec.register(kind)
    was_paused = any(r.active and r.state == "paused" for r in await backend.slots(target.name))
    holder = f"{owner_id()}/retry"
    if not await backend.pause(target.name, holder, RETRY_HOLD):
        raise NotRetryable(
            f"projection {target.name!r} is not running or paused (failed or inline):"
            " restart it first"
        )
    try:
        rows = [r for r in await backend.slots(target.name) if r.active and r.owner == holder]
        partition = next(p for p in range(target.partitions) if target.in_partition(record, p))
        slot = next((r for r in rows if r.partition == partition), None)
        if slot is None:
            raise NotRetryable(f"projection {target.name!r} has no partition {partition}")
        worker = await backend.worker()
        try:
            error = await Applier(backend, codec, app).retry(target, worker, slot, record)
        finally:
            await worker.close()
        if error is None:
            await backend.clear_dead_letters(target.name, [event_id])
    finally:
        if was_paused:
            await backend.pause(target.name)  # paused still, by the operator, held by nobody
        else:
            await backend.resume(target.name)
    return None if error is None else f"{type(error).__name__}: {error}"[:2000]

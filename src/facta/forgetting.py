"""Forgetting a data subject (crypto-shredding): delete its keys, purge what holds its data
in clear, record that it was forgotten, rebuild the read models that held its data.

Once its keys are deleted, every sealed field of the subject reads as its redacted value on
every read path (see :mod:`facta.personal`): nothing needs rewriting in the log, which stays
append-only. What is in clear elsewhere is handled here: snapshots of the streams that hold
its sealed fields are deleted (loading replays the events, redacted), the Application's
cached states of those streams are dropped, and the projections named are rebuilt from the
log (so they hold the redacted values). The forgetting itself is an event,
:class:`SubjectForgotten`, in the stream ``forgotten-{subject}``: the audit trail, and what
the relay tells other services so that they forget too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from facta._commands import metadata as command_metadata
from facta.application import Application
from facta.codec import Codec
from facta.domain import Event
from facta.personal.envelope import needle
from facta.projections.projection import Projection
from facta.projections.runner import ProjectionRunner
from facta.store.base import Position, TransactionHook, validate_stream_id
from facta.store.engine import Engine, PersonalData

FORGOTTEN_CATEGORY = "forgotten"
"""The category of the streams that record forgettings: ``forgotten-{subject}``."""


class SubjectForgotten(Event, frozen=True):
    """A data subject was forgotten: its keys (``key_ids``) were deleted, so its personal
    fields in ``streams`` now read as redacted, and those streams' snapshots were purged."""

    subject: str
    key_ids: list[str]
    streams: list[str]
    snapshots_purged: int


class Forgetting(msgspec.Struct, frozen=True):
    """What :func:`forget` did: the keys deleted, the streams that held the subject's sealed
    fields, the snapshots purged, the projections rebuilt, and where the
    :class:`SubjectForgotten` event is in the log."""

    subject: str
    key_ids: list[str]
    streams: list[str]
    snapshots_purged: int
    rebuilt: list[str]
    position: Position


def forgotten_stream(subject: str) -> str:
    """The stream that records the forgetting of ``subject`` (InvalidStreamId for a subject
    whose id cannot be part of a stream id)."""
    return validate_stream_id(f"{FORGOTTEN_CATEGORY}-{subject}")


async def forget(
    store: Engine,
    subject: str,
    *,
    projections: Sequence[Projection[Any]] = (),
    app: Application | None = None,
    hook: TransactionHook | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Forgetting:
    """Forget ``subject``: delete its keys, purge the snapshots of the streams holding its
    sealed fields, drop ``app``'s cached states of them, record :class:`SubjectForgotten`,
    then rebuild each of ``projections`` from the log.

    The :class:`SubjectForgotten` event is appended with ``hook`` (default: ``app``'s
    transaction hook) in its transaction: inline projections that handle it redact their
    documents at once. Async projections that handle it do so when their runner reaches it;
    those that do not are the ones to name in ``projections``.

    Raises CapabilityMissing on an engine without PersonalData. Forgetting a subject with no
    keys (never seen, or forgotten already) deletes nothing and is recorded all the same.
    Finding the streams scans the whole stored log once. Other processes stop decrypting the
    subject's fields once their key cache expires (``Vault.cache_seconds``), and keep the
    states they have cached until those are evicted: see the how-to page.
    """
    keys = store.require(PersonalData)
    stream = forgotten_stream(subject)
    vault = store.vault
    assert vault is not None  # the engine made one for its PersonalData
    needles = [needle(key_id) for key_id in await keys.subject_key_ids(subject)]
    streams = await keys.streams_containing(needles)
    if store.archive is not None and needles:  # archived events keep their sealed fields
        archived = await asyncio.to_thread(store.archive.streams_containing, needles)
        streams = sorted(set(streams) | set(archived))
    purged = await keys.purge_snapshots(streams)
    key_ids = await vault.forget(subject)
    # Again, after the keys are gone: a snapshot taken in between held the fields in clear.
    purged += await keys.purge_snapshots(streams)
    if app is not None:
        for each in streams:
            app.cache.discard(each)
    codec = Codec([SubjectForgotten])
    record = SubjectForgotten(subject, key_ids, streams, purged)
    meta = command_metadata(metadata, None, None)
    if hook is None and app is not None:
        hook = app.transaction_hook
    appended = await store.append(stream, [codec.encode(record, metadata=meta)], hook=hook)
    rebuilt = []
    if projections:
        runner = ProjectionRunner(store, projections, app=app)
        try:
            for handler in projections:
                await runner.rebuild(type(handler).name)
                rebuilt.append(type(handler).name)
        finally:
            await runner.close()
    return Forgetting(subject, key_ids, streams, purged, rebuilt, appended.position)


__all__ = ["FORGOTTEN_CATEGORY", "Forgetting", "SubjectForgotten", "forget", "forgotten_stream"]

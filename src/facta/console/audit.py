"""The console's record of what operators did: an event per action, in the store's own log.

The log is the audit trail facta already has: each action becomes an event of the stream
:data:`AUDIT_STREAM` (who, what, on which projection and event, with what result; its
``recorded_at`` says when), so it is kept, ordered, replicated and relayed like any other,
and the console's actions page reads it back. Projections select events by type, so no read
model sees these unless it asks for :data:`ACTION_TYPE`.
"""

from __future__ import annotations

import msgspec

from facta.http._json import timestamp
from facta.store.base import ANY, NewEvent
from facta.store.engine import Engine

AUDIT_STREAM = "console-audit"
"""The stream the console records its actions in."""

ACTION_TYPE = "ConsoleActionTaken"
"""The type of those events."""


class Action(msgspec.Struct):
    """One action an operator took in the console."""

    action: str
    projection: str
    operator: str
    key_id: str | None = None
    event_id: str | None = None
    result: str = "ok"
    at: str = ""


async def record(store: Engine, action: Action) -> None:
    """Append ``action`` to the audit stream."""
    data = msgspec.json.encode(action)
    await store.append(AUDIT_STREAM, [NewEvent(ACTION_TYPE, data)], ANY)


async def recent(store: Engine, limit: int = 50) -> list[Action]:
    """The last ``limit`` actions, newest first."""
    records = await store.read_stream(AUDIT_STREAM, backwards=True, to_version=None, limit=limit)
    actions = []
    for r in records:
        action = msgspec.json.decode(r.data, type=Action)
        action.at = timestamp(r.recorded_at)
        actions.append(action)
    return actions

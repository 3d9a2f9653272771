"""A projection for the console's tests that parks what it cannot handle yet: an account
opened for an owner named in the file ``$FACTA_TEST_BLOCKED`` fails (and is parked) until
that name is taken out of the file, so that a retry can succeed."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from facta import Event, EventEnvelope
from facta.examples.bank.domain import AccountOpened
from facta.projections import Projection, Session


class Owner(msgspec.Struct, frozen=True):
    account_id: str
    owner: str


class Blocked(Exception):
    """The owner is on the blocked list."""


def _blocked() -> set[str]:
    path = os.environ.get("FACTA_TEST_BLOCKED")
    if not path or not Path(path).exists():
        return set()
    return {line.strip() for line in Path(path).read_text().splitlines() if line.strip()}


class OwnersProjection(Projection[Owner]):
    """One document per account: its owner; parks accounts of blocked owners."""

    name = "owners"
    version = 1
    event_types = (AccountOpened,)
    document = Owner
    on_error = "park"
    retries = 0

    async def handle(self, envelope: EventEnvelope[Event], session: Session[Owner]) -> None:
        event = envelope.event
        assert isinstance(event, AccountOpened)
        if event.owner in _blocked():
            raise Blocked(f"owner {event.owner!r} is blocked")
        key = envelope.recorded.stream_id.partition("-")[2]
        session.put(key, Owner(key, event.owner))

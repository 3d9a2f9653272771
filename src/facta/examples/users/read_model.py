"""The users read model: one document per user, kept inline (in the append's transaction),
so a query right after a command already sees it."""

from __future__ import annotations

import msgspec

from facta import Event, EventEnvelope
from facta.examples.users.domain import (
    UserCreated,
    UserDeactivated,
    UserProfileUpdated,
    UserReactivated,
)
from facta.examples.users.emails import normalise_email
from facta.projections import Projection, Session


class UserView(msgspec.Struct, frozen=True):
    """A user as queries return it (the seed's UserReadModel)."""

    user_id: str
    email: str
    email_normalised: str
    name: str
    bio: str | None
    is_active: bool
    created_at: float
    updated_at: float


class UsersProjection(Projection[UserView]):
    name = "users"
    version = 1
    event_types = (UserCreated, UserProfileUpdated, UserDeactivated, UserReactivated)
    document = UserView
    indexes = ("email_normalised", "is_active", "created_at")

    async def handle(self, envelope: EventEnvelope[Event], session: Session[UserView]) -> None:
        key = envelope.recorded.stream_id.partition("-")[2]
        at = envelope.recorded.recorded_at
        event = envelope.event
        if isinstance(event, UserCreated):
            view = UserView(
                key, event.email, normalise_email(event.email), event.name, None, True, at, at
            )
            session.put(key, view)
            return
        current = await session.get(key)
        if current is None:
            raise LookupError(f"user {key!r} has no UserCreated before {envelope.recorded.type}")
        match event:
            case UserProfileUpdated(name=name, bio=bio):
                current = msgspec.structs.replace(
                    current,
                    name=current.name if name is None else name,
                    bio=current.bio if bio is None else bio,
                )
            case UserDeactivated():
                current = msgspec.structs.replace(current, is_active=False)
            case UserReactivated():
                current = msgspec.structs.replace(current, is_active=True)
        session.put(key, msgspec.structs.replace(current, updated_at=at))

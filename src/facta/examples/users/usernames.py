"""Unique usernames as a decision: the DCB counterpart of the email reservations
(``facta.examples.users.emails``).

There, every email has a reservation stream of its own, appended at ``NO_STREAM``; here a
claim is an event tagged ``username:<name>``, appended on the condition that no event with
that tag was appended since the decision read them. No extra stream or aggregate: the
event that records the claim is the one that keeps the name unique.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from facta import Command, Decision, DomainError, Event, Fold, Model, Tag

MAX_USERNAME = 64


def normalise_username(username: str) -> str:
    """The form two spellings of one name share (trimmed, lowercased); ValueError for a name
    that is empty, longer than 64 characters, or not letters, digits, ``_``, ``.``, ``-``."""
    name = username.strip().lower()
    if not 0 < len(name) <= MAX_USERNAME or not all(c.isalnum() or c in "_.-" for c in name):
        raise ValueError(f"a username is 1-{MAX_USERNAME} letters, digits, _ . or -: {name[:80]!r}")
    return name


class ClaimUsername(Command, frozen=True):
    user_id: str
    username: str

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "username", normalise_username(self.username))


class ReleaseUsername(Command, frozen=True):
    user_id: str
    username: str

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "username", normalise_username(self.username))


class UsernameClaimed(Event, frozen=True):
    user_id: str
    username: Annotated[str, Tag("username")]


class UsernameReleased(Event, frozen=True):
    user_id: str
    username: Annotated[str, Tag("username")]


class UsernameTaken(DomainError):
    """The username belongs to another user."""


def holder(username: str) -> Fold[str | None]:
    """Who holds ``username`` now (None: nobody)."""

    def evolve(current: str | None, event: UsernameClaimed | UsernameReleased) -> str | None:
        return event.user_id if isinstance(event, UsernameClaimed) else None

    return Fold(None, evolve, (UsernameClaimed, UsernameReleased), (f"username:{username}",))


class Holder(msgspec.Struct, frozen=True):
    holder: str | None


class ClaimUsernameDecision(Decision[Holder, ClaimUsername, UsernameClaimed]):
    name = "claim_username"

    def model(self, command: ClaimUsername) -> Model[Holder]:
        return Model(Holder, holder=holder(command.username))

    def decide(self, state: Holder, command: ClaimUsername) -> list[UsernameClaimed]:
        if state.holder == command.user_id:
            return []  # a repeat of this user's own claim
        if state.holder is not None:
            raise UsernameTaken(f"username {command.username!r} is taken")
        return [UsernameClaimed(command.user_id, command.username)]


class ReleaseUsernameDecision(Decision[Holder, ReleaseUsername, UsernameReleased]):
    name = "release_username"

    def model(self, command: ReleaseUsername) -> Model[Holder]:
        return Model(Holder, holder=holder(command.username))

    def decide(self, state: Holder, command: ReleaseUsername) -> list[UsernameReleased]:
        if state.holder != command.user_id:
            return []  # not theirs (any more): nothing to give back
        return [UsernameReleased(command.user_id, command.username)]

"""Users as a decider: create, update the profile, deactivate, reactivate.

Emails are not unique here: one user's stream cannot see the others. Uniqueness is the job
of the email reservations (``facta.examples.users.emails``), checked before a user is created.
"""

from __future__ import annotations

import msgspec

from facta import Aggregate, Command, DomainError, Event

MAX_NAME = 200
MAX_BIO = 2000
MAX_EMAIL = 254


def check_email(email: str) -> str:
    """``email`` trimmed, if it looks like an address (one ``@``, text on both sides, no
    spaces, at most 254 characters); raises ValueError otherwise."""
    email = email.strip()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or "@" in domain or len(email) > MAX_EMAIL:
        raise ValueError(f"{email[:80]!r} is not a valid email address")
    if any(c.isspace() for c in email):
        raise ValueError("an email address has no spaces")
    return email


def _check_name(name: str) -> None:
    if not name.strip() or len(name) > MAX_NAME:
        raise ValueError(f"name must be 1 to {MAX_NAME} characters, not blank")


class CreateUser(Command, frozen=True):
    email: str
    name: str

    def __post_init__(self) -> None:
        check_email(self.email)
        _check_name(self.name)


class UpdateUserProfile(Command, frozen=True):
    name: str | None = None
    bio: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None:
            _check_name(self.name)
        if self.bio is not None and len(self.bio) > MAX_BIO:
            raise ValueError(f"bio must be at most {MAX_BIO} characters")


class DeactivateUser(Command, frozen=True):
    reason: str


class ReactivateUser(Command, frozen=True):
    pass


UserCommand = CreateUser | UpdateUserProfile | DeactivateUser | ReactivateUser


class UserCreated(Event, frozen=True):
    email: str
    name: str


class UserProfileUpdated(Event, frozen=True):
    name: str | None = None
    bio: str | None = None


class UserDeactivated(Event, frozen=True):
    reason: str


class UserReactivated(Event, frozen=True):
    pass


UserEvent = UserCreated | UserProfileUpdated | UserDeactivated | UserReactivated


class UserState(msgspec.Struct, frozen=True):
    created: bool = False
    email: str = ""
    name: str = ""
    bio: str | None = None
    active: bool = False


class UserError(DomainError):
    """A user command broke a business rule."""


class User(Aggregate[UserState, UserCommand, UserEvent]):
    name = "user"
    initial = UserState()

    def decide(self, state: UserState, command: UserCommand) -> list[UserEvent]:
        match command:
            case CreateUser(email=email, name=name):
                if state.created:
                    raise UserError("User already exists")
                return [UserCreated(check_email(email), name)]
            case _ if not state.created:
                raise UserError("User not found")
            case UpdateUserProfile(name=name, bio=bio):
                if name is None and bio is None:
                    return []
                return [UserProfileUpdated(name, bio)]
            case DeactivateUser(reason=reason):
                if not state.active:
                    raise UserError("User is already deactivated")
                return [UserDeactivated(reason)]
            case ReactivateUser():
                if state.active:
                    raise UserError("User is already active")
                return [UserReactivated()]
        raise UserError(f"unknown command {type(command).__name__}")

    def evolve(self, state: UserState, event: UserEvent) -> UserState:
        match event:
            case UserCreated(email=email, name=name):
                return UserState(True, email, name, None, True)
            case UserProfileUpdated(name=name, bio=bio):
                return msgspec.structs.replace(
                    state,
                    name=state.name if name is None else name,
                    bio=state.bio if bio is None else bio,
                )
            case UserDeactivated():
                return msgspec.structs.replace(state, active=False)
            case UserReactivated():
                return msgspec.structs.replace(state, active=True)
        return state

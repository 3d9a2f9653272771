"""Unique emails under concurrency: one reservation stream per normalised email.

A read-model lookup ("is this email taken?") cannot make emails unique: two requests may
both look before either writes. Here every email has its own stream, and the first
reservation is appended at expected version 0, which is NO_STREAM: of two concurrent
reservations exactly one append succeeds, the other gets WrongExpectedVersion, and the
application's retry then sees the reservation and rejects with EmailTaken.
"""

from __future__ import annotations

import hashlib
import re

import msgspec

from facta import Aggregate, Command, DomainError, Event

_STREAM_SAFE = re.compile(r"[A-Za-z0-9_.:@+=~-]{1,250}")


def normalise_email(email: str) -> str:
    """The form two spellings of one address share: trimmed and lowercased."""
    return email.strip().lower()


def reservation_id(email: str) -> str:
    """The reservation stream's id for ``email``: the normalised address when it is made of
    stream-safe characters, else its SHA-256 (which has no ``@``, so never collides)."""
    normal = normalise_email(email)
    if _STREAM_SAFE.fullmatch(normal):
        return normal
    return "sha256:" + hashlib.sha256(normal.encode()).hexdigest()


class ReserveEmail(Command, frozen=True):
    user_id: str


class ReleaseEmail(Command, frozen=True):
    user_id: str


class EmailReserved(Event, frozen=True):
    user_id: str


class EmailReleased(Event, frozen=True):
    user_id: str


class Reservation(msgspec.Struct, frozen=True):
    holder: str | None = None


class EmailTaken(DomainError):
    """The email belongs to another user."""


class EmailReservation(
    Aggregate[Reservation, ReserveEmail | ReleaseEmail, EmailReserved | EmailReleased]
):
    name = "email"
    initial = Reservation()

    def decide(
        self, state: Reservation, command: ReserveEmail | ReleaseEmail
    ) -> list[EmailReserved | EmailReleased]:
        match command:
            case ReserveEmail(user_id=user_id):
                if state.holder == user_id:
                    return []  # a retry of this user's own reservation
                if state.holder is not None:
                    raise EmailTaken("Email already in use")
                return [EmailReserved(user_id)]
            case ReleaseEmail(user_id=user_id):
                return [EmailReleased(user_id)] if state.holder == user_id else []
        raise EmailTaken(f"unknown command {type(command).__name__}")

    def evolve(self, state: Reservation, event: EmailReserved | EmailReleased) -> Reservation:
        match event:
            case EmailReserved(user_id=user_id):
                return Reservation(user_id)
            case EmailReleased():
                return Reservation(None)
        return state

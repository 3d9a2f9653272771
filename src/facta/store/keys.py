"""The personal-data contract of an engine: data subjects' keys in a table of their own, and
purging the snapshots that hold a forgotten subject's data in clear.

An engine that offers it (the :data:`~facta.store.engine.PersonalData` capability) gets
personal fields encrypted on append and decrypted on every read, written once for all
engines in :mod:`facta.personal`; the engine only stores keys. A key's ``material`` is the
AES key itself, or that key wrapped by the master key (``wrapped``): the engine never sees
which, and never decrypts anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import msgspec


class SubjectKey(msgspec.Struct, frozen=True, gc=False):
    """One data subject's key as stored: its id (what encrypted fields name), the subject,
    the key material (wrapped or not) and when it was made (Unix time)."""

    key_id: str
    subject: str
    material: bytes
    wrapped: bool
    created_at: float


@runtime_checkable
class KeyStore(Protocol):
    """Data subjects' keys, one live key per subject, and the purge that forgetting needs."""

    async def subject_key(self, candidate: SubjectKey) -> SubjectKey:
        """The live key of ``candidate.subject``: the stored one, else ``candidate``, stored
        now. Two processes racing for a new subject both get the one stored first."""
        ...

    async def keys(self, key_ids: Sequence[str]) -> list[SubjectKey]:
        """The stored keys among ``key_ids`` (a deleted key is simply not returned)."""
        ...

    async def subject_key_ids(self, subject: str) -> list[str]:
        """The ids of ``subject``'s stored keys (none if it has none: nothing is made)."""
        ...

    async def delete_keys(self, subject: str) -> list[str]:
        """Delete every key of ``subject`` for good; returns their ids. When there were
        any, :meth:`forgets` grows by one in the same transaction."""
        ...

    async def forgets(self) -> int:
        """How many times keys were deleted (a number that only grows): a process compares
        it with what it read before to learn whether a subject was forgotten elsewhere
        meanwhile, and so whether the states it cached may still hold its fields."""
        ...

    async def streams_containing(self, needles: Sequence[bytes]) -> list[str]:
        """The streams with a stored event whose data holds one of ``needles`` (a scan of
        the stored log: forgetting is rare, and no index is kept for it on every append)."""
        ...

    async def purge_snapshots(self, stream_ids: Sequence[str]) -> int:
        """Delete every snapshot of these streams; returns how many were deleted."""
        ...

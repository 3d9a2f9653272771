"""Data subjects' keys of the in-memory engine: a dict, gone with the process."""

from __future__ import annotations

from collections.abc import Sequence

from facta.store.base import START
from facta.store.keys import SubjectKey
from facta.store.memory.events import MemoryEventStore


class MemoryKeys:
    """The :class:`~facta.store.keys.KeyStore` of a MemoryEventStore."""

    def __init__(self, events: MemoryEventStore) -> None:
        self._events = events
        self._by_subject: dict[str, SubjectKey] = {}
        self._forgets = 0

    async def subject_key(self, candidate: SubjectKey) -> SubjectKey:
        return self._by_subject.setdefault(candidate.subject, candidate)

    async def keys(self, key_ids: Sequence[str]) -> list[SubjectKey]:
        wanted = set(key_ids)
        return [key for key in self._by_subject.values() if key.key_id in wanted]

    async def subject_key_ids(self, subject: str) -> list[str]:
        key = self._by_subject.get(subject)
        return [] if key is None else [key.key_id]

    async def delete_keys(self, subject: str) -> list[str]:
        key = self._by_subject.pop(subject, None)
        if key is None:
            return []
        self._forgets += 1
        return [key.key_id]

    async def forgets(self) -> int:
        return self._forgets

    async def streams_containing(self, needles: Sequence[bytes]) -> list[str]:
        found: set[str] = set()
        after = START
        while needles and (page := await self._events.read_all(after=after, limit=10_000)):
            found.update(r.stream_id for r in page if any(n in r.data for n in needles))
            after = page[-1].position
        return sorted(found)

    async def purge_snapshots(self, stream_ids: Sequence[str]) -> int:
        return await self._events.delete_snapshots(stream_ids)

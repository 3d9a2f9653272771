"""A bounded least-recently-used cache of loaded states, keyed by stream."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any


class StateCache:
    """Holds ``(state, version)`` per stream, evicting the least recently used past ``max_size``.

    A cached state is a guess about the stream's head: the application only uses it together
    with an append that expects its version, so a stale entry costs a retry, never a wrong
    answer. With ``max_age``, an entry is used for that many seconds only: a state may hold
    decrypted personal data, which a subject forgotten in another process must not outlive
    for longer than the keys do (see :mod:`facta.personal.vault`). An entry put as
    ``lasting`` (a state that cannot hold any) is kept until evicted.
    """

    def __init__(self, max_size: int = 10_000, *, max_age: float | None = None) -> None:
        self.max_size = max_size
        self.max_age = max_age
        self._entries: OrderedDict[str, tuple[Any, int, float]] = OrderedDict()

    def get(self, stream_id: str) -> tuple[Any, int] | None:
        """The cached ``(state, version)``, or None."""
        entry = self._entries.get(stream_id)
        if entry is None:
            return None
        if entry[2] and entry[2] < time.monotonic():
            del self._entries[stream_id]
            return None
        self._entries.move_to_end(stream_id)
        return entry[0], entry[1]

    def put(
        self,
        stream_id: str,
        state: Any,
        version: int,
        *,
        derived: bool = False,
        lasting: bool = False,
    ) -> None:
        """Remember ``state`` at ``version``; ``derived``: it was folded from the cached state
        (after an append), so it expires when that one would have, not later; ``lasting``:
        it holds no personal data (its aggregate's events have no personal field), so
        ``max_age`` does not apply to it."""
        if self.max_size <= 0:
            return
        earlier = self._entries.get(stream_id) if derived else None
        if earlier is not None:
            expires = earlier[2]
        elif lasting or self.max_age is None:
            expires = 0.0
        else:
            expires = time.monotonic() + self.max_age
        self._entries[stream_id] = (state, version, expires)
        self._entries.move_to_end(stream_id)
        if len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def discard(self, stream_id: str) -> None:
        """Forget the stream (after a conflict showed the entry is stale)."""
        self._entries.pop(stream_id, None)

    def __len__(self) -> int:
        return len(self._entries)

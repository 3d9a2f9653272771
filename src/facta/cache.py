"""A bounded least-recently-used cache of loaded states, keyed by stream."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class StateCache:
    """Holds ``(state, version)`` per stream, evicting the least recently used past ``max_size``.

    A cached state is a guess about the stream's head: the application only uses it together
    with an append that expects its version, so a stale entry costs a retry, never a wrong
    answer.
    """

    def __init__(self, max_size: int = 10_000) -> None:
        self.max_size = max_size
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()

    def get(self, stream_id: str) -> tuple[Any, int] | None:
        """The cached ``(state, version)``, or None."""
        entry = self._entries.get(stream_id)
        if entry is not None:
            self._entries.move_to_end(stream_id)
        return entry

    def put(self, stream_id: str, state: Any, version: int) -> None:
        """Remember ``state`` at ``version``."""
        if self.max_size <= 0:
            return
        self._entries[stream_id] = (state, version)
        self._entries.move_to_end(stream_id)
        if len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def discard(self, stream_id: str) -> None:
        """Forget the stream (after a conflict showed the entry is stale)."""
        self._entries.pop(stream_id, None)

    def __len__(self) -> int:
        return len(self._entries)

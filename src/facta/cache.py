"""A bounded least-recently-used cache of loaded states, keyed by stream."""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facta.personal.vault import Vault


class StateCache:
    """Holds ``(state, version)`` per stream, evicting the least recently used past ``max_size``.

    A cached state is a guess about the stream's head: the application only uses it together
    with an append that expects its version, so a stale entry costs a retry, never a wrong
    answer.

    With ``max_age``, a state that may hold decrypted personal data (put without
    ``lasting``) is trusted for that many seconds at a time, all such states together: once
    that lapses, :meth:`get` does not return them until :meth:`check_trust` has read
    ``forgets`` (the key store's count of forgotten subjects, which only grows). Unchanged
    since the last check, it trusts them for ``max_age`` more; changed (or at the first
    check), it drops them and calls ``on_forget`` (the vault ages its cached keys out). So no
    state outlives a forget in another process by longer than the keys do (see
    :mod:`facta.personal.vault`), at the price of one read of one row for all the cached
    states, not a load of each. A ``lasting`` state is kept until evicted.
    """

    def __init__(
        self,
        max_size: int = 10_000,
        *,
        max_age: float | None = None,
        forgets: Callable[[], Awaitable[int]] | None = None,
        on_forget: Callable[[], None] | None = None,
    ) -> None:
        self.max_size = max_size
        self.max_age = max_age
        self._entries: OrderedDict[str, tuple[Any, int, bool]] = OrderedDict()
        self._trusted_until = math.inf if max_age is None else -math.inf
        self._forgets = forgets
        self._on_forget = on_forget
        self._forgets_seen: int | None = None
        self._checking = asyncio.Lock()
        self.epoch = 0
        """How many times the personal states were dropped (see :meth:`put`'s ``epoch``)."""

    @classmethod
    def for_vault(cls, max_size: int, vault: Vault | None) -> StateCache:
        """A cache whose states are trusted as long as ``vault``'s keys (without a vault,
        an engine that cannot hold personal data: for good)."""
        if vault is None:
            return cls(max_size)
        return cls(
            max_size,
            max_age=vault.cache_seconds,
            forgets=vault.keys.forgets,
            on_forget=vault.age_cached_keys,
        )

    def trusted(self) -> bool:
        """Whether the states that may hold personal data are trusted now."""
        return time.monotonic() < self._trusted_until

    async def check_trust(self) -> None:
        """Trust the states that may hold personal data for ``max_age`` more, or drop them
        (see the class): one check at a time, however many callers wait for it."""
        assert self.max_age is not None  # else always trusted
        async with self._checking:
            if self.trusted():
                return  # checked by another caller meanwhile
            started = time.monotonic()
            forgets = None if self._forgets is None else await self._forgets()
            if forgets is None or forgets != self._forgets_seen:
                self.drop_personal()
                if self._on_forget is not None:
                    self._on_forget()
                self._forgets_seen = forgets
            self._trusted_until = started + self.max_age

    def drop_personal(self) -> None:
        """Forget every state that may hold personal data (a subject was forgotten)."""
        for stream_id in [s for s, entry in self._entries.items() if entry[2]]:
            del self._entries[stream_id]
        self.epoch += 1

    def get(self, stream_id: str) -> tuple[Any, int] | None:
        """The cached ``(state, version)``, or None."""
        entry = self._entries.get(stream_id)
        if entry is None or (entry[2] and time.monotonic() >= self._trusted_until):
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
        epoch: int | None = None,
    ) -> None:
        """Remember ``state`` at ``version``; ``derived``: it was folded from the cached state
        (after an append), so it is what that one was, personal or lasting; ``lasting``: it
        holds no personal data (its aggregate's events have no personal field); ``epoch``:
        the :attr:`epoch` when its loading began, so that a state that may hold personal data
        is not kept if they were dropped meanwhile (it may have been opened with a key
        forgotten since)."""
        if self.max_size <= 0:
            return
        earlier = self._entries.get(stream_id) if derived else None
        fresh = not lasting and self.max_age is not None
        personal = fresh if earlier is None else earlier[2]
        if personal and epoch is not None and epoch != self.epoch:
            return
        self._entries[stream_id] = (state, version, personal)
        self._entries.move_to_end(stream_id)
        if len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def discard(self, stream_id: str) -> None:
        """Forget the stream (after a conflict showed the entry is stale)."""
        self._entries.pop(stream_id, None)

    def __len__(self) -> int:
        return len(self._entries)

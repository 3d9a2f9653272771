"""Ids: time-ordered (version 7) UUIDs as strings, made without building a uuid.UUID object;
and the ids of lease holders.

Every command makes at least two (a correlation id and an event id). Version 7 rather than
random version 4 because event ids are indexed: ids that grow with time land at the right
edge of the index's B-tree, where a commit dirties one page that is already in memory, where
random ids dirty a random page of an ever larger index on every commit (measured on SQLite
with synchronous=FULL: about 15% of the single-append rate). The time they carry is no
secret: every event also stores when it was recorded.

The random bits come from a generator of facta's own, seeded by the operating system when
the module loads and again in every forked child: ids need to be unique, not secret, and
asking the OS for 8 bytes per id (a system call) costs more than the rest of making one. It
is not the ``random`` module's shared generator, which an application may seed to a fixed
value (tests do) and would then repeat ids from one run to the next.
"""

from __future__ import annotations

import os
import random
import socket
import time

_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)  # a child must not repeat its parent's ids
_random_bits = _random.getrandbits
_VERSION_AND_VARIANT = (7 << 76) | (0b10 << 62)


def new_uuid() -> str:
    """An RFC 9562 version-7 UUID in its canonical 36-character form: 48 bits of Unix
    milliseconds, then 12 bits of the sub-millisecond time (so one process's ids keep their
    order within a millisecond, RFC 9562 method 3), then 62 random bits."""
    ns = time.time_ns()
    value = (
        ((ns // 1_000_000) << 80)
        | ((ns % 1_000_000 * 4096 // 1_000_000) << 64)
        | _VERSION_AND_VARIANT
        | _random_bits(62)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_HOST = socket.gethostname()


def owner_id() -> str:
    """Who holds a lease or a pin, as the catalogs show it: ``host:pid:random``. The random
    part tells apart two holders in one process, and a process from an earlier one that
    had the same pid."""
    return f"{_HOST}:{os.getpid()}:{_random_bits(32):08x}"


def owner_host_and_pid(owner: str) -> tuple[str, int] | None:
    """The host and process id an :func:`owner_id` names (None for another form)."""
    host, _, rest = owner.rpartition(":")[0].rpartition(":")
    try:
        return host, int(rest)
    except ValueError:
        return None

"""The one back-off of facta's retry loops: how long to wait after a run of failures."""

from __future__ import annotations

import random


def backoff(failures: int, *, base: float = 0.1, cap: float = 5.0) -> float:
    """Seconds to wait after ``failures`` consecutive failures (1 for the first): ``base``
    doubling each time, at most ``cap``, and jittered down to half, so that processes that
    failed together do not all try again together."""
    delay: float = min(cap, base * 2 ** min(max(failures, 1) - 1, 16))
    return delay * random.uniform(0.5, 1.0)

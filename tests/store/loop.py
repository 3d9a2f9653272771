"""What tests of work kept off the event loop share."""

from __future__ import annotations

import asyncio
import time
from typing import Any


async def loop_turns_while(pending: asyncio.Future[Any]) -> None:
    """Assert that the event loop keeps turning (20 sleeps of 10 ms take well under a
    second) while ``pending`` waits, and that it still waits after them."""
    started = time.monotonic()
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert time.monotonic() - started < 1.0
    assert not pending.done()

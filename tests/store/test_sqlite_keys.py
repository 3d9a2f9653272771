"""The SQLite engine reads or makes a subject's key on the event loop (no hop to a thread),
on a connection that never waits for a lock: what must hold when another process writes."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from facta import open_store
from facta.store.engine import PersonalData
from facta.store.keys import SubjectKey
from tests.store.loop import loop_turns_while


def candidate(subject: str, key_id: str) -> SubjectKey:
    return SubjectKey(key_id, subject, bytes(32), False, time.time())


async def test_a_new_key_waits_for_another_processs_write_lock_off_the_loop(
    tmp_path: Path,
) -> None:
    engine = await open_store(f"sqlite:///{tmp_path / 'keys.db'}")
    keys = engine.require(PersonalData)
    other = sqlite3.connect(tmp_path / "keys.db", isolation_level=None)
    try:
        stored = await keys.subject_key(candidate("s-1", "a" * 32))  # made on the loop
        assert stored.key_id == "a" * 32
        other.execute("BEGIN IMMEDIATE")  # another process writing
        making = asyncio.ensure_future(keys.subject_key(candidate("s-2", "b" * 32)))
        reading = await keys.subject_key(candidate("s-1", "c" * 32))  # a read takes no lock
        assert reading == stored
        await loop_turns_while(making)  # the new key waits for the lock on a pool thread
        other.execute("ROLLBACK")
        made = await asyncio.wait_for(making, 30)
        assert made.key_id == "b" * 32
        assert await keys.keys(["a" * 32, "b" * 32]) == [stored, made]
        # Made on the loop again once the lock is free, and a repeat keeps the first key.
        assert (await keys.subject_key(candidate("s-3", "d" * 32))).key_id == "d" * 32
        assert (await keys.subject_key(candidate("s-3", "e" * 32))).key_id == "d" * 32
    finally:
        other.close()
        await engine.close()

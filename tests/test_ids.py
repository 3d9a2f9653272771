"""Event ids are canonical version-7 UUIDs: unique, and ordered by the time they were made."""

from __future__ import annotations

import os
import random
import time
import uuid

from facta._ids import new_uuid


def test_new_uuid_is_a_canonical_version_7_uuid() -> None:
    seen = set()
    for _ in range(2000):
        text = new_uuid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        seen.add(text)
    assert len(seen) == 2000


def test_ids_carry_the_time_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    milliseconds = uuid.UUID(new_uuid()).int >> 80
    after = time.time_ns() // 1_000_000
    assert before <= milliseconds <= after


def test_ids_made_later_sort_later() -> None:
    ids = []
    for _ in range(200):
        ids.append(new_uuid())
        time.sleep(0.0003)  # past the 12-bit sub-millisecond resolution (~0.25 µs) by far
    assert ids == sorted(ids)


def test_seeding_the_random_module_does_not_repeat_ids() -> None:
    random.seed(7)
    first = new_uuid()
    random.seed(7)
    assert new_uuid()[14:] != first[14:]  # the random bits differ (the time may not)


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send one id and leave at once
        os.write(write, new_uuid().encode())
        os._exit(0)
    os.close(write)
    mine = new_uuid()
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert child[19:] != mine[19:]  # 62 random bits each: equal only if the seed was shared

"""Event ids are real random version-4 UUIDs."""

from __future__ import annotations

import uuid

from facta._ids import new_uuid


def test_new_uuid_is_a_canonical_version_4_uuid() -> None:
    seen = set()
    for _ in range(2000):
        text = new_uuid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        seen.add(text)
    assert len(seen) == 2000

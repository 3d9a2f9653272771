"""facta's own engines pass the conformance suite it ships (facta.testing.conformance), as
any other engine would: memory, SQLite and PostgreSQL (the ``store`` fixture of
tests/conftest.py is each in turn)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from facta import NO_STREAM
from facta.testing.conformance import EngineContract
from facta.testing.conformance.events import BatchHook, new
from tests.conftest import BACKENDS


class TestFactaEngines(EngineContract):
    """Every storage contract, on every engine of facta's."""


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_sql_engines_give_a_batch_hook_several_appends_at_once(
    engine: str, tmp_path: Path
) -> None:
    """Beyond the contract: SQLite and PostgreSQL group commit concurrent appends, so a hook
    that takes batches is called once for appends to several streams."""
    store = await BACKENDS[engine](tmp_path)
    try:
        hook = BatchHook()
        await asyncio.gather(
            *(store.append(f"b-{i}", new(2), NO_STREAM, hook=hook) for i in range(32)),
            return_exceptions=True,
        )
        assert max(len(set(streams)) for streams in hook.calls) > 1
    finally:
        await store.close()

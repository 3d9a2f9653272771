"""The relay checkpoint contract, as tests an engine runs: one holder per relay name at a
time, a lease that runs out when its holder stops renewing it, and a checkpoint that only
the holder can move."""

from __future__ import annotations

import asyncio
import time

import pytest

from facta.errors import RelayLeaseLost
from facta.store.base import START, Position
from facta.store.engine import Engine


class RelayCheckpointContract:
    """What every engine's relay checkpoint store does. Needs a ``store`` fixture: an open,
    empty engine."""

    async def test_a_new_relay_starts_at_the_beginning_and_holds_its_name(
        self, store: Engine
    ) -> None:
        checkpoints = store.relay_checkpoints
        assert await checkpoints.get("dest") is None
        taken = await checkpoints.acquire("dest", "one", 10)
        assert taken is not None
        assert (taken.position, taken.published, taken.owner) == (START, 0, "one")
        assert await checkpoints.acquire("dest", "two", 10) is None
        assert await checkpoints.acquire("dest", "one", 10) is not None  # its own again
        assert await checkpoints.acquire("other", "two", 10) is not None  # another name

    async def test_the_holder_moves_the_checkpoint_and_others_see_it(self, store: Engine) -> None:
        checkpoints = store.relay_checkpoints
        assert await checkpoints.acquire("dest", "one", 10) is not None
        await checkpoints.save("dest", "one", Position(0, 5), 5, 10)
        await checkpoints.save("dest", "one", Position(0, 9), 4, 10)
        await checkpoints.renew("dest", "one", 10)
        row = await checkpoints.get("dest")
        assert row is not None
        assert (row.position, row.published, row.owner) == (Position(0, 9), 9, "one")

    async def test_released_the_name_goes_to_the_next_relay_from_the_checkpoint(
        self, store: Engine
    ) -> None:
        checkpoints = store.relay_checkpoints
        assert await checkpoints.acquire("dest", "one", 10) is not None
        await checkpoints.save("dest", "one", Position(0, 3), 3, 10)
        await checkpoints.release("dest", "one")
        taken = await checkpoints.acquire("dest", "two", 10)
        assert taken is not None
        assert (taken.position, taken.published) == (Position(0, 3), 3)
        with pytest.raises(RelayLeaseLost):
            await checkpoints.save("dest", "one", Position(0, 7), 4, 10)
        with pytest.raises(RelayLeaseLost):
            await checkpoints.renew("dest", "one", 10)

    async def test_a_lease_runs_out_and_fences_its_old_holder(self, store: Engine) -> None:
        """A relay that stops renewing (dead, paused, cut off) loses its name once its lease
        has run out, and can never write the checkpoint again, whatever it believes."""
        checkpoints = store.relay_checkpoints
        assert await checkpoints.acquire("dest", "one", 0.3) is not None
        assert await checkpoints.acquire("dest", "two", 0.3) is None
        await asyncio.sleep(0.4)
        row = await checkpoints.get("dest")
        assert row is not None
        assert row.owner is None  # nobody holds it any more
        assert await checkpoints.acquire("dest", "two", 10) is not None
        with pytest.raises(RelayLeaseLost):
            await checkpoints.save("dest", "one", Position(0, 5), 5, 10)
        with pytest.raises(RelayLeaseLost):
            await checkpoints.renew("dest", "one", 10)
        await checkpoints.save("dest", "two", Position(0, 3), 3, 10)
        row = await checkpoints.get("dest")
        assert row is not None
        assert (row.position, row.published, row.owner) == (Position(0, 3), 3, "two")

    async def test_a_relays_last_error_is_kept_until_the_next(self, store: Engine) -> None:
        checkpoints = store.relay_checkpoints
        await checkpoints.record_error("never-ran", "ignored")  # no row: nothing to keep
        assert await checkpoints.get("never-ran") is None
        assert await checkpoints.acquire("dest", "one", 10) is not None
        row = await checkpoints.get("dest")
        assert row is not None
        assert (row.error, row.error_at) == (None, None)
        before = time.time()
        await checkpoints.record_error("dest", "cannot connect")
        await checkpoints.save("dest", "one", Position(0, 2), 2, 10)  # recovered: kept
        row = await checkpoints.get("dest")
        assert row is not None
        assert row.error == "cannot connect"
        assert row.error_at is not None
        assert row.error_at >= before - 1
        await checkpoints.record_error("dest", "lost the connection")
        again = await checkpoints.get("dest")
        assert again is not None
        assert again.error == "lost the connection"

"""Personal data (the PersonalData capability), as tests an engine runs: one live key per
subject whatever the race, keys read back and deleted for good (each deletion counted), the
scan for the streams that hold given bytes, snapshots purged, and fields sealed in storage
and redacted once the subject is forgotten."""

from __future__ import annotations

import asyncio
import time

import pytest

from facta.store.base import NewEvent, Seal, Snapshot
from facta.store.engine import Engine, PersonalData, Snapshots
from facta.store.keys import KeyStore, SubjectKey
from facta.testing.conformance.events import owned_by


def _key(subject: str, key_id: str) -> SubjectKey:
    return SubjectKey(key_id, subject, bytes(32), False, time.time())


class PersonalDataContract:
    """The PersonalData capability, for an engine that declares it (skipped otherwise).
    Needs the ``store`` fixture: an open, empty engine."""

    @pytest.fixture(autouse=True)
    def _personal_data_declared(self, request: pytest.FixtureRequest, store: Engine) -> None:
        if owned_by(PersonalDataContract, request) and store.capability(PersonalData) is None:
            pytest.skip(f"the {store.name} engine has no personal data capability")

    @pytest.fixture
    def keys(self, store: Engine) -> KeyStore:
        return store.require(PersonalData)

    async def test_a_subject_has_one_live_key_whoever_makes_it(self, keys: KeyStore) -> None:
        racers = [keys.subject_key(_key("s-1", f"{n:032x}")) for n in range(8)]
        winners = {key.key_id for key in await asyncio.gather(*racers)}
        assert len(winners) == 1
        assert await keys.subject_key_ids("s-1") == list(winners)
        assert await keys.subject_key_ids("nobody") == []

    async def test_keys_are_read_back_and_deleted_for_good(self, keys: KeyStore) -> None:
        first = await keys.subject_key(_key("s-1", "a" * 32))
        other = await keys.subject_key(_key("s-2", "b" * 32))
        found = await keys.keys([first.key_id, other.key_id, "c" * 32])
        assert sorted(found, key=lambda k: k.key_id) == [first, other]
        assert await keys.delete_keys("s-1") == [first.key_id]
        assert await keys.delete_keys("s-1") == []
        assert await keys.keys([first.key_id]) == []
        again = await keys.subject_key(_key("s-1", "d" * 32))
        assert again.key_id == "d" * 32  # a new key for the same subject
        assert await keys.keys([other.key_id]) == [other]

    async def test_each_deletion_of_keys_is_counted(self, keys: KeyStore) -> None:
        """What other processes read to learn that a subject was forgotten since they
        last looked: it grows with every deletion that deleted keys, and only then."""
        start = await keys.forgets()
        await keys.subject_key(_key("s-1", "a" * 32))
        await keys.subject_key(_key("s-2", "b" * 32))
        assert await keys.forgets() == start  # making keys is not forgetting
        await keys.delete_keys("s-1")
        assert await keys.forgets() == start + 1
        await keys.delete_keys("s-1")  # nothing left to delete
        await keys.delete_keys("never-seen")
        assert await keys.forgets() == start + 1
        await keys.delete_keys("s-2")
        assert await keys.forgets() == start + 2

    async def test_the_streams_holding_given_bytes_are_found(
        self, store: Engine, keys: KeyStore
    ) -> None:
        await store.events.append("a-1", [NewEvent("E", b'{"x":"needle-1"}')])
        await store.events.append("b-1", [NewEvent("E", b'{"x":"hay"}')])
        await store.events.append("c-1", [NewEvent("E", b'{"x":"needle-2"}')])
        assert await keys.streams_containing([b"needle-1", b"needle-2"]) == ["a-1", "c-1"]
        assert await keys.streams_containing([b"needle-3"]) == []
        assert await keys.streams_containing([]) == []

    async def test_snapshots_of_the_streams_named_are_purged(
        self, store: Engine, keys: KeyStore
    ) -> None:
        snapshots = store.capability(Snapshots)
        if snapshots is None:
            pytest.skip(f"the {store.name} engine has no snapshots")
        for stream, version in (("a-1", 1), ("a-1", 2), ("b-1", 1)):
            await snapshots.save_snapshot(Snapshot(stream, version, 1, b"{}", time.time()))
        assert await keys.purge_snapshots(["a-1", "x-1"]) == 2
        assert await snapshots.load_snapshot("a-1") is None
        assert await snapshots.load_snapshot("b-1") is not None

    async def test_fields_are_sealed_in_storage_and_redacted_once_forgotten(
        self, store: Engine
    ) -> None:
        seal = Seal("name", "s-9", b'"[redacted]"')
        new = NewEvent("Named", b'{"type":"Named","name":"Ada","n":1}', personal=(seal,))
        appended = await store.append("p-1", [new])
        assert appended.events[0].data == new.data
        [read] = await store.read_stream("p-1")
        assert read.data == new.data
        vault = store.vault
        assert vault is not None
        assert await vault.keys.streams_containing([b"Ada"]) == []  # not in clear
        assert await vault.keys.streams_containing([b'"name":"facta:pd1:']) == ["p-1"]
        await vault.forget("s-9")
        [read] = await store.read_stream("p-1")
        assert read.data == b'{"type":"Named","name":"[redacted]","n":1}'

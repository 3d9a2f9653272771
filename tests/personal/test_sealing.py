"""How personal fields are declared, sealed and opened: the redacted value per type, the
declaration errors, the master key, envelopes that do not open elsewhere, consistency
boundaries, and an engine without keys refusing rather than storing in clear."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar

import msgspec
import pytest

from facta import (
    REDACTED,
    Application,
    Boundaries,
    CapabilityMissing,
    Codec,
    Engine,
    Event,
    NewEvent,
    Personal,
    PersonalData,
    PersonalDataLocked,
    Query,
    Tag,
    forget,
    open_store,
)
from facta.examples.bank.domain import Account, OpenAccount
from facta.personal.envelope import open_sealed
from facta.personal.fields import personal_fields
from facta.personal.vault import Vault, master_key_from, new_master_key
from facta.store.memory import MemoryEventStore
from facta.store.memory.checkpoints import MemoryCheckpoints
from facta.store.memory.read_models import MemoryReadModels


class Profile(Event, frozen=True):
    user_id: str
    email: Annotated[str, Personal(subject="user_id")]
    age: Annotated[int, Personal(subject="user_id")]
    height: Annotated[float | None, Personal(subject="user_id")]
    tags: Annotated[list[str], Personal(subject="user_id")]
    savings: Annotated[Decimal, Personal(subject="user_id")]
    nickname: Annotated[str, Personal(subject="user_id", redacted="someone")]
    city: str


class Declared(Event, frozen=True):
    user_id: Annotated[str, Tag("user")]
    phone: str
    personal_data: ClassVar = {"phone": Personal(subject="user_id")}


PROFILE = Profile("u1", "ada@example.org", 36, 1.65, ["a"], Decimal("12.5"), "ada", "London")


@pytest.fixture
async def memory() -> AsyncIterator[Engine]:
    engine = await open_store("memory://")
    yield engine
    await engine.close()


def test_each_personal_field_knows_its_redacted_value() -> None:
    found = {f.field: (f.subject, f.redacted) for f in personal_fields(Profile)}
    assert found == {
        "email": ("user_id", b'"[redacted]"'),
        "age": ("user_id", b"0"),
        "height": ("user_id", b"null"),
        "tags": ("user_id", b"[]"),
        "savings": ("user_id", b"0"),
        "nickname": ("user_id", b'"someone"'),
    }
    assert [f.field for f in personal_fields(Declared)] == ["phone"]
    assert personal_fields(OpenAccount) == ()


def test_declarations_that_cannot_work_are_refused_when_first_encoded() -> None:
    class NoSubject(Event, frozen=True):
        email: Annotated[str, Personal(subject="user")]

    class NoDefault(Event, frozen=True):
        where: Annotated[tuple[int, int] | Path, Personal()]

    class Unfit(Event, frozen=True):
        code: Annotated[str, msgspec.Meta(pattern="^[0-9]+$"), Personal()]

    class NotAField(Event, frozen=True):
        a: str
        personal_data: ClassVar = {"b": Personal()}

    for kind, message in [
        (NoSubject, "its subject 'user' is not a field"),
        (NoDefault, "no redacted value for its type"),
        (Unfit, "does not fit its type"),
        (NotAField, "not one of its fields"),
    ]:
        with pytest.raises(TypeError, match=message):
            personal_fields(kind)
    with pytest.raises(ValueError, match="subject must name a field"):
        Personal(subject="not an identifier")


def test_a_pydantic_event_with_a_personal_field_is_refused_not_stored_in_clear() -> None:
    from facta.pydantic import PydanticEvent

    class Signed(PydanticEvent):
        email: Annotated[str, Personal()]

    with pytest.raises(TypeError, match="only msgspec events can have personal fields"):
        Codec([Signed]).encode(Signed(email="ada@example.org"))


async def test_every_type_seals_opens_and_redacts(memory: Engine) -> None:
    codec = Codec([Profile])
    await memory.append("profile-1", [codec.encode(PROFILE)])
    [raw] = await memory.events.inner.read_stream("profile-1")  # type: ignore[attr-defined]
    assert b"ada@example.org" not in raw.data
    assert b'"city":"London"' in raw.data  # not personal: in clear
    [record] = await memory.read_stream("profile-1")
    assert codec.decode(record) == PROFILE

    await memory.vault.forget("u1")  # type: ignore[union-attr]
    [record] = await memory.read_stream("profile-1")
    assert codec.decode(record) == Profile(
        "u1", REDACTED, 0, None, [], Decimal(0), "someone", "London"
    )


async def test_an_envelope_copied_into_another_event_does_not_open(memory: Engine) -> None:
    codec = Codec([Profile])
    await memory.append("profile-1", [codec.encode(PROFILE)])
    [raw] = await memory.events.inner.read_stream("profile-1")  # type: ignore[attr-defined]
    stolen = msgspec.json.decode(raw.data)["email"]
    # A writer puts the envelope into a field of its own, in clear (not sealed again).
    forged = NewEvent(
        "Profile", msgspec.json.encode({**msgspec.json.decode(raw.data), "city": stolen})
    )
    await memory.events.inner.append("profile-2", [forged])  # type: ignore[attr-defined]
    [record] = await memory.read_stream("profile-2")
    decoded = msgspec.json.decode(record.data)
    assert decoded["city"] == REDACTED  # the copy does not authenticate here
    assert decoded["email"] == REDACTED  # nor does the whole data under another event id


async def test_the_master_key_wraps_every_key_it_stores(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wrapped.db'}"
    master = new_master_key()
    store = await open_store(url, master_key=master)
    try:
        await Application(store).execute(Account(), "acc-1", OpenAccount("Ada", Decimal(1)))
        keys = store.require(PersonalData)
        [key] = await keys.keys(await keys.subject_key_ids("account-acc-1"))
        assert key.wrapped
        assert len(key.material) == 12 + 32 + 16  # nonce, key, tag: not the key itself
    finally:
        await store.close()

    async def owner(**options: str) -> str:
        opened = await open_store(url, **options)
        try:
            return (await Application(opened).load(Account(), "acc-1")).state.owner
        finally:
            await opened.close()

    assert await owner(master_key=master) == "Ada"
    with pytest.raises(PersonalDataLocked, match="no master key is configured"):
        await owner()
    with pytest.raises(PersonalDataLocked, match="not the one it was wrapped with"):
        await owner(master_key=new_master_key())
    with pytest.raises(ValueError, match="32 bytes in base64"):
        await owner(master_key="c2hvcnQ=")


async def test_the_master_key_comes_from_the_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = new_master_key()
    monkeypatch.setenv("FACTA_MASTER_KEY", master)
    url = f"sqlite:///{tmp_path / 'env.db'}"
    store = await open_store(url)
    try:
        await Application(store).execute(Account(), "acc-1", OpenAccount("Ada", Decimal(1)))
    finally:
        await store.close()
    monkeypatch.delenv("FACTA_MASTER_KEY")
    store = await open_store(url, master_key=master_key_from(master))
    try:
        assert (await Application(store).load(Account(), "acc-1")).state.owner == "Ada"
    finally:
        await store.close()


async def test_consistency_boundaries_seal_and_open(store: Engine) -> None:
    boundaries = store.capability(Boundaries)
    if boundaries is None:
        pytest.skip(f"the {store.name} engine has no consistency boundaries")
    codec = Codec([Declared])
    await boundaries.append([codec.encode(Declared("u7", "+44 1234"))])
    query = Query.of(tags=["user:u7"])
    [record] = (await boundaries.read(query)).events
    assert codec.decode(record) == Declared("u7", "+44 1234")
    await forget(store, "u7")
    [record] = (await boundaries.read(query)).events
    assert codec.decode(record) == Declared("u7", REDACTED)


async def test_an_engine_without_keys_refuses_personal_fields() -> None:
    events = MemoryEventStore()
    bare = Engine(
        "bare://",
        events=events,
        read_models=MemoryReadModels(events),
        relay_checkpoints=MemoryCheckpoints(events),
    )
    app = Application(bare)
    with pytest.raises(CapabilityMissing, match="no personal data capability"):
        await app.execute(Account(), "acc-1", OpenAccount("Ada", Decimal(1)))
    assert await events.read_all() == []
    with pytest.raises(CapabilityMissing):
        await forget(bare, "account-acc-1")
    # Events without personal fields are stored as ever.
    await bare.append("plain-1", [NewEvent("Plain", b'{"a":1}')])
    assert [r.data for r in await bare.read_all()] == [b'{"a":1}']


def test_strings_that_only_look_like_envelopes_are_left_as_they_are() -> None:
    gone = lambda key_id: None  # noqa: E731 - every key forgotten
    for data in [
        b'{"city":"facta:pd1:abc","x":"1:2"}',  # too few parts: the colons are elsewhere
        b'{"a":"x\\"facta:pd1:a:b:c\\""}',  # inside a string, not a field's value
        b'{"city":"facta:pd1:ab:%%%:***"}',  # not base64
        b'["facta:pd1:ab:Zm9v:ImZvbyI="]',  # not a field's value
    ]:
        assert open_sealed(data, "e-1", gone) == data
    forgotten = b'{"city":"facta:pd1:ab:Zm9v:ImZvbyI="}'
    assert open_sealed(forgotten, "e-1", gone) == b'{"city":"foo"}'


async def test_a_read_opens_each_event_once_reading_the_keys_not_cached_in_one_call(
    memory: Engine,
) -> None:
    """A reader whose cache holds one subject's key (of four) reads a log where events of
    all four interleave with clear ones, one subject forgotten: one call reads the missing
    keys, every event opens, the forgotten subject's fields read as redacted."""
    codec = Codec([Profile])
    writer = memory.vault
    assert writer is not None
    for i in range(12):
        user = f"u{i % 4}"
        await memory.append(
            f"profile-{user}", [codec.encode(msgspec.structs.replace(PROFILE, user_id=user, age=i))]
        )
        await memory.append("plain-1", [NewEvent("Plain", b'{"a":1}')])
    await writer.forget("u3")

    class CountingKeys:
        """The engine's own key store, counting the reads of keys by id."""

        def __init__(self, inner: Any) -> None:
            self.inner, self.reads = inner, 0

        async def keys(self, key_ids: Sequence[str]) -> Any:
            self.reads += 1
            return await self.inner.keys(key_ids)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    keys = CountingKeys(writer.keys)
    reader = Vault(keys)  # type: ignore[arg-type]  # a KeyStore by duck typing
    sealed = await memory.events.inner.read_all()  # type: ignore[attr-defined]
    first = [r for r in sealed if r.stream_id == "profile-u0"][:1]
    assert msgspec.json.decode((await reader.open(first))[0].data)["email"] == PROFILE.email
    assert keys.reads == 1  # u0's key, now cached

    opened = await reader.open(sealed)
    assert keys.reads == 2  # u1's, u2's and u3's (gone) in one call
    assert [r.event_id for r in opened] == [r.event_id for r in sealed]
    for record in opened:
        data = msgspec.json.decode(record.data)
        if record.type == "Plain":
            assert data == {"a": 1}
        elif data["user_id"] == "u3":
            assert (data["email"], data["nickname"]) == (REDACTED, "someone")
        else:
            assert (data["email"], data["nickname"]) == (PROFILE.email, PROFILE.nickname)
    assert await reader.open(sealed) == opened  # all cached now: no more reads
    assert keys.reads == 2

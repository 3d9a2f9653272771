"""One stream written by version 1 of a domain, read by versions 2 and 3, on every backend."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar

import msgspec
import pytest

from facta import (
    Aggregate,
    Application,
    Codec,
    Event,
    EventDecodeError,
    EventStore,
    NewEvent,
    UnknownEventType,
)
from facta.codec import Upcaster
from facta.store.base import RecordedEvent, Snapshot
from tests.evolution import wallet_v1 as v1
from tests.evolution import wallet_v2 as v2
from tests.evolution import wallet_v3 as v3


async def write_with_v1(store: EventStore) -> None:
    app = Application(store)
    wallet = v1.Wallet()
    await app.execute(wallet, "w-1", v1.OpenWallet("Ann"))
    await app.execute(wallet, "w-1", v1.AddFunds(1250))
    await app.execute(wallet, "w-1", v1.FreezeWallet("audit"))
    await app.execute(wallet, "w-1", v1.AddFunds(5))


async def test_version_2_upcasts_and_renames(store: EventStore) -> None:
    await write_with_v1(store)
    app = Application(store)
    history = [h.event for h in await app.history(v2.Wallet(), "w-1")]
    assert history == [
        v2.WalletOpened("Ann", "EUR"),
        v2.MoneyDeposited(Decimal("12.5")),
        v2.WalletFrozen("audit"),
        v2.MoneyDeposited(Decimal("0.05")),
    ]
    state = (await app.load(v2.Wallet(), "w-1")).state
    assert state == v2.State("Ann", "EUR", Decimal("12.55"), frozen=True)
    # new events are written in the new shape, next to the old ones
    result = await app.execute(v2.Wallet(), "w-1", v2.Deposit(Decimal("1.00")))
    assert result.state.balance == Decimal("13.55")
    stored = await store.read_stream("wallet-w-1")
    assert [(e.type, e.schema_version) for e in stored] == [
        ("WalletOpened", 1),
        ("FundsAdded", 1),
        ("WalletFrozen", 1),
        ("FundsAdded", 1),
        ("MoneyDeposited", 2),
    ]


async def test_version_3_chains_upcasters_and_drops_a_deprecated_type(store: EventStore) -> None:
    await write_with_v1(store)
    await Application(store).execute(v2.Wallet(), "w-1", v2.Deposit(Decimal(1)))
    app = Application(store)
    history = [h.event for h in await app.history(v3.Wallet(), "w-1")]
    assert history == [
        v3.WalletOpened("Ann", "EUR", "basic"),
        v3.MoneyDeposited(Decimal("12.5")),
        v3.MoneyDeposited(Decimal("0.05")),
        v3.MoneyDeposited(Decimal(1)),
    ]
    loaded = await app.load(v3.Wallet(), "w-1")
    assert (loaded.version, loaded.state) == (5, v3.State("Ann", "basic", Decimal("13.55")))
    # the global log decodes the same way for projections and the relay
    decoded = app.decode_all(await store.read_all())
    assert [type(e.event).__name__ for e in decoded] == [
        "WalletOpened",
        "MoneyDeposited",
        "MoneyDeposited",
        "MoneyDeposited",
    ]


async def test_a_snapshot_of_an_older_state_shape_is_ignored(store: EventStore) -> None:
    await write_with_v1(store)
    old = v1.State("Ann", 1255, True)
    await store.save_snapshot(Snapshot("wallet-w-1", 4, 1, msgspec.json.encode(old), 0.0))

    class SnapshottingWallet(v3.Wallet):
        snapshot_every = 2

    loaded = await Application(store).load(SnapshottingWallet(), "w-1")
    assert loaded.state == v3.State("Ann", "basic", Decimal("12.55"))


def recorded(kind: str, version: int, data: bytes) -> RecordedEvent:
    from facta import Position

    return RecordedEvent("id", "wallet-w-1", 1, Position(0, 1), kind, version, data, b"{}", 0.0)


def test_an_unknown_type_is_a_clear_error() -> None:
    codec = Codec()
    codec.register_aggregate(v3.Wallet())
    with pytest.raises(UnknownEventType, match=r"'Mystery'.*wallet-w-1"):
        codec.decode(recorded("Mystery", 1, b"{}"))


class WalletOpened(Event, frozen=True):
    """Version 3 of WalletOpened that forgot the step from version 1 (and its rename)."""

    schema_version: ClassVar[int] = 3
    upcasters: ClassVar[Mapping[int, Upcaster]] = {2: v3.opened_v2_to_v3}
    owner: str
    currency: str
    tier: str


class MoneyDeposited(Event, frozen=True):
    """Version 2 of MoneyDeposited without its upcaster and its old name."""

    schema_version: ClassVar[int] = 2
    amount: Decimal


def test_a_missing_upcaster_or_a_future_version_is_a_clear_error() -> None:
    codec = Codec([WalletOpened])
    with pytest.raises(EventDecodeError, match="no upcaster from version 1"):
        codec.decode(recorded("WalletOpened", 1, b'{"owner":"A"}'))
    with pytest.raises(EventDecodeError, match="newer than the code's version 3"):
        codec.decode(recorded("WalletOpened", 4, b'{"owner":"A"}'))


def test_the_event_classes_alone_decode_every_old_shape() -> None:
    """No aggregate registered, no command run: the classes carry their evolution."""
    codec = Codec([v3.WalletOpened, v3.MoneyDeposited])
    assert codec.decode(recorded("WalletOpened", 1, b'{"owner":"A"}')) == v3.WalletOpened(
        "A", "EUR", "basic"
    )
    assert codec.decode(recorded("FundsAdded", 1, b'{"cents":250}')) == v3.MoneyDeposited(
        Decimal("2.5")
    )


def test_evolution_declared_on_an_aggregate_is_refused_with_where_it_goes() -> None:
    with pytest.raises(TypeError, match="declared on the event classes"):

        class Old(Aggregate[v3.State, v3.Deposit, v3.MoneyDeposited]):
            name = "old"
            renamed_events: ClassVar[dict[str, type[Event]]] = {"FundsAdded": v3.MoneyDeposited}

    with pytest.raises(TypeError, match="not a version below"):

        class Future(Event, frozen=True):
            schema_version: ClassVar[int] = 2
            upcasters: ClassVar[Mapping[int, Upcaster]] = {2: v3.opened_v2_to_v3}


def test_an_old_name_is_read_as_one_class_only() -> None:
    codec = Codec([v3.MoneyDeposited])

    class Credited(Event, frozen=True):
        renamed_from: ClassVar[tuple[str, ...]] = ("FundsAdded",)

    with pytest.raises(ValueError, match="'FundsAdded' is read as 'MoneyDeposited' already"):
        codec.register(Credited)


def test_data_that_does_not_fit_is_a_clear_error() -> None:
    codec = Codec([v3.MoneyDeposited])
    with pytest.raises(EventDecodeError, match="MoneyDeposited"):
        codec.decode(recorded("MoneyDeposited", 2, b'{"type":"MoneyDeposited","amount":"x"}'))
    with pytest.raises(EventDecodeError, match="not a JSON object"):
        codec.decode(recorded("MoneyDeposited", 1, b"[1]"))


def test_two_classes_cannot_share_a_type_name() -> None:
    codec = Codec([v2.MoneyDeposited])
    with pytest.raises(ValueError, match="registered"):
        codec.register(v3.MoneyDeposited)


def test_encode_gives_the_type_schema_version_and_json() -> None:
    event = Codec().encode(v2.WalletOpened("A", "NOK"), metadata=b'{"k":1}')
    assert isinstance(event, NewEvent)
    assert (event.type, event.schema_version, event.metadata) == ("WalletOpened", 2, b'{"k":1}')
    assert event.data == b'{"type":"WalletOpened","owner":"A","currency":"NOK"}'


async def test_verify_reports_the_first_undecodable_event_of_each_type(store: EventStore) -> None:
    from facta.verification import verify_events

    await write_with_v1(store)
    good = Codec()
    good.register_aggregate(v3.Wallet())
    report = await verify_events(store, good, batch_size=2)
    assert report.ok
    assert report.checked == 4
    assert report.by_type == {"WalletOpened": 1, "FundsAdded": 2, "WalletFrozen": 1}
    assert report.deprecated == {"WalletFrozen": 1}

    # Classes without the rename and the first upcasters: every old type fails, each once.
    bare = Codec([WalletOpened, MoneyDeposited])
    seen: list[int] = []
    report = await verify_events(store, bare, batch_size=3, progress=seen.append)
    assert not report.ok
    assert sum(seen) == 4
    assert set(report.failures) == {"WalletOpened", "FundsAdded", "WalletFrozen"}
    assert report.failure_counts["FundsAdded"] == 2
    first = report.failures["FundsAdded"]
    assert (first.stream_id, first.version) == ("wallet-w-1", 2)
    assert "FundsAdded" in first.error


def test_a_failing_upcaster_is_reported_with_its_step() -> None:
    codec = Codec()
    codec.register_aggregate(v2.Wallet())
    with pytest.raises(EventDecodeError, match="upcaster from version 1 failed: KeyError"):
        codec.decode(recorded("FundsAdded", 1, b'{"type":"FundsAdded","pennies":5}'))

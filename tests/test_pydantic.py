"""pydantic models as events, commands and states (facta.pydantic), on every backend: the same
stored shape, schema evolution, tags, snapshots and command ids as msgspec classes, mixed
with them in one store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar

import msgspec
import pytest
from mypy import api
from pydantic import BaseModel, ConfigDict, Field

from facta import (
    Aggregate,
    Application,
    Boundaries,
    Codec,
    Decision,
    DomainError,
    Engine,
    Event,
    EventDecodeError,
    EventEnvelope,
    Fold,
    Model,
    NewEvent,
    Query,
    QueryItem,
    Tag,
)
from facta.codec import Upcaster
from facta.examples.bank.domain import Account, Deposit, OpenAccount
from facta.projections import InlineProjections, Projection, ReadStore, Session
from facta.pydantic import PydanticCommand, PydanticEvent

# -- a purse, all in pydantic ----------------------------------------------------------------


def opened_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "currency": "EUR"}


def added_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {"amount": str(Decimal(data["cents"]) / 100)}


class OpenPurse(PydanticCommand):
    owner: str = Field(min_length=1)


class AddCoins(PydanticCommand):
    amount: Decimal = Field(gt=0)


class PurseOpened(PydanticEvent):
    schema_version: ClassVar[int] = 2  # version 1 had no currency
    upcasters: ClassVar[Mapping[int, Upcaster]] = {1: opened_v1_to_v2}
    owner: Annotated[str, Tag("owner")]
    currency: str


class CoinsAdded(PydanticEvent):
    schema_version: ClassVar[int] = 2  # version 1 was "MoneyAdded" in cents
    upcasters: ClassVar[Mapping[int, Upcaster]] = {1: added_v1_to_v2}
    renamed_from: ClassVar[tuple[str, ...]] = ("MoneyAdded",)
    amount: Decimal


class PurseState(BaseModel):
    model_config = ConfigDict(frozen=True)
    owner: str = ""
    currency: str = ""
    balance: Decimal = Decimal(0)


class PurseClosed(DomainError):
    """Coins added to a purse that was never opened."""


class Purse(Aggregate[PurseState, OpenPurse | AddCoins, PurseOpened | CoinsAdded]):
    name = "purse"
    initial = PurseState()
    snapshot_every = 3
    deprecated_events = frozenset({"PurseAudited"})

    def decide(self, state: PurseState, command: OpenPurse | AddCoins) -> list[Any]:
        match command:
            case OpenPurse(owner=owner):
                return [PurseOpened(owner=owner, currency="EUR")]
            case AddCoins(amount=amount):
                if not state.owner:
                    raise PurseClosed("open the purse first")
                return [CoinsAdded(amount=amount)]
        return []

    def evolve(self, state: PurseState, event: PurseOpened | CoinsAdded) -> PurseState:
        match event:
            case PurseOpened(owner=owner, currency=currency):
                return PurseState(owner=owner, currency=currency)
            case CoinsAdded(amount=amount):
                return state.model_copy(update={"balance": state.balance + amount})
        return state


async def test_a_pydantic_aggregate_end_to_end(store: Engine) -> None:
    app = Application(store)
    await app.execute(Purse(), "p1", OpenPurse(owner="Ann"))
    for cents in (150, 250, 5):
        result = await app.execute(Purse(), "p1", AddCoins(amount=Decimal(cents) / 100))
    assert result.version == 4
    assert result.state == PurseState(owner="Ann", currency="EUR", balance=Decimal("4.05"))
    assert result.events == (CoinsAdded(amount=Decimal("0.05")),)

    stored = await store.read_stream("purse-p1")
    assert stored[0].data == b'{"type":"PurseOpened","owner":"Ann","currency":"EUR"}'
    assert stored[1].data == b'{"type":"CoinsAdded","amount":"1.5"}'
    assert [(r.type, r.schema_version) for r in stored[:2]] == [
        ("PurseOpened", 2),
        ("CoinsAdded", 2),
    ]

    fresh = Application(store, cache_size=0)
    assert (await fresh.load(Purse(), "p1")).state == result.state
    assert (await fresh.load(Purse(), "p1", version=1)).state.balance == 0
    history = await fresh.history(Purse(), "p1")
    assert [h.event for h in history] == [
        PurseOpened(owner="Ann", currency="EUR"),
        CoinsAdded(amount=Decimal("1.5")),
        CoinsAdded(amount=Decimal("2.5")),
        CoinsAdded(amount=Decimal("0.05")),
    ]
    with pytest.raises(PurseClosed):
        await app.execute(Purse(), "nobody", AddCoins(amount=Decimal(1)))


async def test_snapshots_of_a_pydantic_state(store: Engine) -> None:
    app = Application(store)
    await app.execute(Purse(), "p1", OpenPurse(owner="Ann"))
    for _ in range(3):
        await app.execute(Purse(), "p1", AddCoins(amount=Decimal(1)))
    await app.drain()
    snapshot = await store.load_snapshot("purse-p1")
    assert snapshot is not None
    assert snapshot.version == 3
    assert PurseState.model_validate_json(snapshot.data) == PurseState(
        owner="Ann", currency="EUR", balance=Decimal(2)
    )
    # A load starts from the snapshot: one that says otherwise than the events shows it.
    await store.save_snapshot(
        msgspec.structs.replace(
            snapshot, data=PurseState(owner="Snap", balance=Decimal(100)).model_dump_json().encode()
        )
    )
    loaded = await Application(store).load(Purse(), "p1")
    assert (loaded.version, loaded.state.owner, loaded.state.balance) == (4, "Snap", 101)


async def test_old_versions_and_old_names_are_upcast_on_every_read_path(store: Engine) -> None:
    await store.append(  # what version 1 of the application wrote
        "purse-old",
        [
            NewEvent("PurseOpened", b'{"type":"PurseOpened","owner":"Ida"}', schema_version=1),
            NewEvent("MoneyAdded", b'{"cents":250}', schema_version=1),
            NewEvent("PurseAudited", b"{}"),
        ],
    )
    app = Application(store)
    loaded = await app.load(Purse(), "old")
    assert loaded.version == 3
    assert loaded.state == PurseState(owner="Ida", currency="EUR", balance=Decimal("2.5"))
    assert [h.event for h in await app.history(Purse(), "old")] == [
        PurseOpened(owner="Ida", currency="EUR"),
        CoinsAdded(amount=Decimal("2.5")),
    ]
    # A reader with nothing but the classes (a projection worker, the relay) reads the same.
    codec = Codec([PurseOpened, CoinsAdded])
    first, second = (await store.read_all())[:2]
    assert codec.decode(first) == PurseOpened(owner="Ida", currency="EUR")
    assert codec.decode(second) == CoinsAdded(amount=Decimal("2.5"))
    # New events are written in the new shape, next to the old ones.
    await app.execute(Purse(), "old", AddCoins(amount=Decimal(1)))
    assert (await app.load(Purse(), "old")).state.balance == Decimal("3.5")


class MsgspecCoinsAdded(Event, frozen=True, tag="CoinsAdded"):
    """The msgspec twin of CoinsAdded: the same stored type and shape."""

    schema_version: ClassVar[int] = 2
    amount: Decimal


async def test_pydantic_and_msgspec_events_share_one_store(store: Engine) -> None:
    app = Application(store)
    await app.execute(Account(), "a1", OpenAccount("Bo", Decimal(0)))
    await app.execute(Purse(), "p1", OpenPurse(owner="Ann"))
    await app.execute(Account(), "a1", Deposit(Decimal("2.50")))
    await app.execute(Purse(), "p1", AddCoins(amount=Decimal("2.50")))

    both = Application(store)
    both.codec.register_aggregate(Account())
    both.codec.register_aggregate(Purse())
    decoded = both.decode_all(await store.read_all())
    assert [type(e.event).__name__ for e in decoded] == [
        "AccountOpened",
        "PurseOpened",
        "MoneyDeposited",
        "CoinsAdded",
    ]
    assert (await both.load(Account(), "a1")).state.balance == Decimal("2.50")
    assert (await both.load(Purse(), "p1")).state.balance == Decimal("2.50")

    # The stored JSON is one shape: a msgspec class reads what a pydantic one wrote, and back.
    pydantic_written = (await store.read_stream("purse-p1"))[1]
    assert Codec([MsgspecCoinsAdded]).decode(pydantic_written) == MsgspecCoinsAdded(Decimal("2.50"))
    msgspec_written = Codec().encode(MsgspecCoinsAdded(Decimal("2.50")))
    assert msgspec_written.data == b'{"type":"CoinsAdded","amount":2.50}'
    await store.append("purse-p2", [msgspec_written])
    (record,) = await store.read_stream("purse-p2")
    assert Codec([CoinsAdded]).decode(record) == CoinsAdded(amount=Decimal("2.50"))


async def test_a_command_id_makes_a_pydantic_command_idempotent(store: Engine) -> None:
    app = Application(store)
    await app.execute(Purse(), "p1", OpenPurse(owner="Ann"))
    first = await app.execute(Purse(), "p1", AddCoins(amount=Decimal(1)), command_id="c-1")
    again = await app.execute(Purse(), "p1", AddCoins(amount=Decimal(1)), command_id="c-1")
    assert again.version == first.version == 2
    assert again.events == first.events
    from facta import CommandIdReused

    with pytest.raises(CommandIdReused):
        await app.execute(Purse(), "p1", AddCoins(amount=Decimal(2)), command_id="c-1")


# -- tags and decisions ------------------------------------------------------------------------


class SeatBooked(PydanticEvent):
    show: Annotated[str, Tag("show")]
    guest: Annotated[str | None, Tag("guest")] = None


class BookSeat(PydanticCommand):
    show: str
    guest: str


class ShowFull(DomainError):
    pass


class Book(Decision[int, BookSeat, SeatBooked]):
    name = "book"

    def model(self, command: BookSeat) -> Model[int]:
        taken = Fold(0, lambda n, _: n + 1, (SeatBooked,), (f"show:{command.show}",))
        return Model(lambda taken: taken, taken=taken)

    def decide(self, state: int, command: BookSeat) -> list[SeatBooked]:
        if state >= 2:
            raise ShowFull(command.show)
        return [SeatBooked(show=command.show, guest=command.guest)]


def test_marked_fields_of_a_pydantic_event_tag_it() -> None:
    assert SeatBooked(show="s1", guest="g").event_tags() == ("show:s1", "guest:g")
    assert SeatBooked(show="s1").event_tags() == ("show:s1",)
    assert Codec().encode(SeatBooked(show="s1")).tags == ("show:s1",)


async def test_a_decision_over_pydantic_events(store: Engine) -> None:
    if store.capability(Boundaries) is None:
        pytest.skip(f"the {store.name} engine has no consistency boundaries")
    app = Application(store)
    await app.decide(Book(), BookSeat(show="s1", guest="a"))
    result = await app.decide(Book(), BookSeat(show="s1", guest="b"), command_id="k")
    assert result.events == (SeatBooked(show="s1", guest="b"),)
    again = await app.decide(Book(), BookSeat(show="s1", guest="b"), command_id="k")
    assert again.events == result.events
    with pytest.raises(ShowFull):
        await app.decide(Book(), BookSeat(show="s1", guest="c"))
    await app.decide(Book(), BookSeat(show="s2", guest="c"))
    read = await store.require(Boundaries).read(Query((QueryItem((), ("show:s1",)),)))
    assert [set(r.tags) for r in read.events] == [{"show:s1", "guest:a"}, {"show:s1", "guest:b"}]


# -- what is refused, and what facta needs without pydantic ------------------------------------


def test_data_that_does_not_fit_is_a_clear_error() -> None:
    from facta import Position, RecordedEvent

    def recorded(kind: str, version: int, data: bytes) -> RecordedEvent:
        return RecordedEvent("id", "purse-p", 1, Position(0, 1), kind, version, data, b"{}", 0.0)

    codec = Codec([CoinsAdded, PurseOpened])
    with pytest.raises(EventDecodeError, match=r"(?s)'CoinsAdded'.*amount"):
        codec.decode(recorded("CoinsAdded", 2, b'{"type":"CoinsAdded","amount":"x"}'))
    with pytest.raises(EventDecodeError, match=r"(?s)'PurseOpened' \(schema version 1\).*owner"):
        codec.decode(recorded("PurseOpened", 1, b"{}"))  # upcast, then without its owner


def test_a_model_that_forbids_extra_keys_still_reads_its_type_tag() -> None:
    class Strict(PydanticEvent):
        model_config = ConfigDict(frozen=True, extra="forbid")
        n: int

    codec = Codec([Strict])
    encoded = codec.encode(Strict(n=1))
    assert encoded.data == b'{"type":"Strict","n":1}'
    from facta import Position, RecordedEvent

    record = RecordedEvent("id", "s-1", 1, Position(0, 1), "Strict", 1, encoded.data, b"{}", 0.0)
    assert codec.decode(record) == Strict(n=1)


def test_a_field_named_type_and_a_wrong_class_are_refused() -> None:
    with pytest.raises(TypeError, match="'type' would clash"):

        class Typed(PydanticEvent):
            type: str

    with pytest.raises(TypeError, match="not a subclass of Event or PydanticEvent"):

        class Wrong(Aggregate[PurseState, OpenPurse, PurseState]):  # type: ignore[type-var]
            name = "wrong"

    with pytest.raises(TypeError, match="not a version below"):

        class Future(PydanticEvent):
            schema_version: ClassVar[int] = 2
            upcasters: ClassVar[Mapping[int, Upcaster]] = {2: added_v1_to_v2}


def test_http_routes_refuse_pydantic_commands_clearly() -> None:
    from facta.http.resource import AggregateResource

    class View(msgspec.Struct):
        owner: str

    # Refused where the resource is described, for the Litestar and FastAPI edges alike.
    with pytest.raises(TypeError, match="serve msgspec commands and events"):
        AggregateResource(Purse(), "/purses", lambda i, v, s: View(s.owner), View)


def test_facta_imports_and_runs_without_pydantic() -> None:
    script = """
import sys
sys.modules["pydantic"] = None  # importing it now fails, as when it is not installed
import asyncio
from decimal import Decimal
import facta, facta.application, facta.codec, facta.decisions, facta.http
from facta.examples.bank.domain import Account, Deposit, OpenAccount

async def main():
    app = facta.Application(await facta.open_store("memory://"))
    await app.execute(Account(), "a", OpenAccount("A", Decimal(0)))
    result = await app.execute(Account(), "a", Deposit(Decimal(1)), command_id="c")
    assert result.state.balance == 1
asyncio.run(main())
try:
    import facta.pydantic
except ImportError:
    print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


TYPED = """
from decimal import Decimal
from facta import Aggregate, Application
from facta.pydantic import PydanticCommand, PydanticEvent
from pydantic import BaseModel


class Open(PydanticCommand):
    owner: str


class Close(PydanticCommand):
    reason: str


class Opened(PydanticEvent):
    owner: str


class State(BaseModel):
    owner: str = ""


class Thing(Aggregate[State, Open, Opened]):
    name = "thing"
    initial = State()


async def commands(app: Application) -> None:
    result = await app.execute(Thing(), "t", Open(owner="A"))
    owner: str = result.state.owner
    events: tuple[Opened, ...] = result.events
    await app.execute(Thing(), "t", Close(reason="no"))  # not Thing's: refused
"""


def test_execute_of_a_pydantic_aggregate_type_checks(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(TYPED)
    out, err, _ = api.run(
        ["--strict", "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", str(sample)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out + err
    refused = next(i for i, line in enumerate(TYPED.splitlines(), 1) if "refused" in line)
    assert errors[0].startswith(f"{sample}:{refused}:"), out


def test_given_when_then_takes_pydantic_models() -> None:
    from facta.testing import given

    given(Purse(), [PurseOpened(owner="Ann", currency="EUR")]).when(
        AddCoins(amount=Decimal(1))
    ).then([CoinsAdded(amount=Decimal(1))])
    given(Purse()).when(AddCoins(amount=Decimal(1))).then_raises(PurseClosed, "open the purse")


class Balance(msgspec.Struct, frozen=True):
    purse: str
    balance: Decimal


class Balances(Projection[Balance]):
    """A read model fed by pydantic events, written in the append's transaction."""

    name = "purse_balances"
    event_types = (PurseOpened, CoinsAdded)
    document = Balance

    async def handle(self, envelope: EventEnvelope[Any], session: Session[Balance]) -> None:
        key = envelope.recorded.stream_id
        match envelope.event:
            case PurseOpened():
                session.put(key, Balance(key, Decimal(0)))
            case CoinsAdded(amount=amount):
                before = await session.get(key)
                assert before is not None
                session.put(key, Balance(key, before.balance + amount))


async def test_an_inline_projection_of_pydantic_events(store: Engine) -> None:
    inline = InlineProjections(store, [Balances()])
    await inline.setup()
    app = Application(store, transaction_hook=inline)
    await app.execute(Purse(), "p1", OpenPurse(owner="Ann"))
    await app.execute(Purse(), "p1", AddCoins(amount=Decimal("1.25")))
    read_store = ReadStore(store)
    try:
        found = await read_store.documents(Balances).get("purse-p1")
    finally:
        await read_store.close()
    assert found == Balance("purse-p1", Decimal("1.25"))

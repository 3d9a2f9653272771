"""Forgetting a data subject, on every engine (the ``store`` fixture: memory, SQLite,
PostgreSQL): every read path of the store shows the redacted value, the bank account still
loads and takes commands, snapshots and read models hold no personal data, and no key left
in the database opens what was sealed."""

from __future__ import annotations

import asyncio
import base64
from decimal import Decimal

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facta import (
    REDACTED,
    Application,
    Engine,
    PersonalData,
    SubjectForgotten,
    forget,
)
from facta.examples.bank.domain import Account, AccountOpened, Deposit, OpenAccount
from facta.examples.bank.read_model import Accounts, AccountsProjection
from facta.personal.envelope import MARKER
from facta.projections import ProjectionRunner, ReadStore
from facta.store.base import RecordedEvent

NAME = b"Ada Lovelace"
SUBJECT = "account-acc-1"  # the bank's holder name has the account's stream as its subject


async def bank(store: Engine) -> Application:
    """Two accounts; the first is the one to forget. Returns once the log shows them."""
    app = Application(store)
    await app.execute(Account(), "acc-1", OpenAccount(NAME.decode(), Decimal(100)))
    await app.execute(Account(), "acc-1", Deposit(Decimal(5)))
    await app.execute(Account(), "acc-2", OpenAccount("Grace Hopper", Decimal(1)))
    await whole_log(store, 3)
    return app


async def stored(store: Engine, stream_id: str = SUBJECT) -> list[RecordedEvent]:
    """A stream as the engine stores it, below the sealing wrapper."""
    return await store.events.inner.read_stream(stream_id)  # type: ignore[attr-defined]


async def whole_log(store: Engine, count: int) -> list[RecordedEvent]:
    """The global log once it shows ``count`` events: on PostgreSQL, a transaction running
    elsewhere in the cluster may hold just-committed events back for a while."""
    async with asyncio.timeout(60):
        while len(log := await store.read_all()) < count:  # noqa: ASYNC110 - nothing to wait on
            await asyncio.sleep(0.05)
    return log


def envelope_of(record: RecordedEvent, field: str) -> tuple[bytes, bytes, bytes]:
    """(key id, nonce, ciphertext) of a sealed field of a stored record."""
    value = record.data.split(f'"{field}":"'.encode(), 1)[1].split(b'"', 1)[0]
    _, _, key_id, box, _ = value.split(b":")
    raw = base64.b64decode(box)
    return key_id, raw[:12], raw[12:]


async def test_the_name_is_stored_sealed_and_read_in_clear(store: Engine) -> None:
    app = await bank(store)
    raw = await stored(store)
    assert all(NAME not in r.data for r in raw)
    assert MARKER in raw[0].data
    assert (await app.load(Account(), "acc-1")).state.owner == NAME.decode()
    [first] = await store.read_stream(SUBJECT, limit=1)
    assert first.data == b'{"type":"AccountOpened","owner":"Ada Lovelace","initial_balance":100.0}'


async def test_forget_redacts_every_read_path_and_the_account_still_works(store: Engine) -> None:
    app = await bank(store)
    runner = ProjectionRunner(store, [AccountsProjection()], codec=app.codec)
    await runner.catch_up()
    await runner.close()
    read_store = ReadStore(store)
    accounts = Accounts(read_store)
    try:
        before = await accounts.get("acc-1")
        assert before is not None
        assert before.owner == NAME.decode()

        done = await forget(store, SUBJECT, projections=[AccountsProjection()], app=app)
        assert done.streams == [SUBJECT]
        assert len(done.key_ids) == 1
        assert done.rebuilt == ["accounts"]

        # load (the app that cached the state, and a new one), and the account takes commands
        for application in (app, Application(store)):
            state = (await application.load(Account(), "acc-1")).state
            assert (state.owner, state.balance) == (REDACTED, Decimal(105))
        result = await app.execute(Account(), "acc-1", Deposit(Decimal(1)))
        assert (result.state.owner, result.state.balance) == (REDACTED, Decimal(106))
        # history
        [opened, *_] = await app.history(Account(), "acc-1")
        assert opened.event == AccountOpened(REDACTED, Decimal(100))
        # the global log, a stream, one event, a subscription: no name anywhere
        log = await whole_log(store, 5)
        assert all(NAME not in r.data for r in log)
        assert b'"owner":"[redacted]"' in log[0].data
        assert b"Grace Hopper" in log[2].data  # the other subject is untouched
        assert await store.read_stream(SUBJECT) == [r for r in log if r.stream_id == SUBJECT]
        assert await store.find_event(log[0].event_id) == log[0]
        followed = []
        async for record in store.subscribe(batch_size=2):
            followed.append(record)
            if len(followed) == len(log):
                break
        assert followed == log
        # the read model, rebuilt from the redacted log
        after = await accounts.get("acc-1")
        assert after is not None
        assert (after.owner, after.balance) == (REDACTED, Decimal(105))
        page = await accounts.list(limit=10)
        assert NAME.decode() not in [a.owner for a in page.items]
        # the forgetting is recorded
        [record] = await store.read_stream(f"forgotten-{SUBJECT}")
        assert msgspec.json.decode(record.data, type=SubjectForgotten) == SubjectForgotten(
            SUBJECT, done.key_ids, [SUBJECT], 0
        )
    finally:
        await read_store.close()


async def test_no_key_left_in_the_database_opens_the_sealed_name(store: Engine) -> None:
    await bank(store)
    await forget(store, SUBJECT)
    keys = store.require(PersonalData)
    assert await keys.subject_key_ids(SUBJECT) == []
    left = await keys.keys(await keys.subject_key_ids("account-acc-2"))
    assert len(left) == 1
    assert not left[0].wrapped
    sealed = (await stored(store))[0]
    key_id, nonce, box = envelope_of(sealed, "owner")
    assert key_id.decode() not in [k.key_id for k in left]
    for key in left:
        try:
            AESGCM(key.material).decrypt(nonce, box, f"{sealed.event_id}/owner".encode())
        except InvalidTag:
            continue
        raise AssertionError("another subject's key opened the forgotten name")


async def test_snapshots_holding_the_name_are_purged(store: Engine) -> None:
    class Snapped(Account):
        snapshot_every = 2

    app = Application(store)
    await app.execute(Snapped(), "acc-1", OpenAccount(NAME.decode(), Decimal(1)))
    await app.execute(Snapped(), "acc-1", Deposit(Decimal(2)))
    await app.drain()
    snapshot = await store.load_snapshot(SUBJECT)
    assert snapshot is not None
    assert NAME in snapshot.data

    done = await forget(store, SUBJECT, app=app)
    assert done.snapshots_purged == 1
    assert await store.load_snapshot(SUBJECT) is None
    state = (await Application(store).load(Snapped(), "acc-1")).state
    assert (state.owner, state.balance) == (REDACTED, Decimal(3))


async def test_a_forgotten_subject_gets_a_new_key_for_new_data(store: Engine) -> None:
    app = await bank(store)
    await forget(store, SUBJECT)
    # New data of the same subject: a key is made anew on its first append, and the old
    # data stays forgotten.
    await store.append(
        SUBJECT, [app.codec.encode(AccountOpened("Ada again", Decimal(0)))], expected_version=2
    )
    history = await app.history(Account(), "acc-1")
    owners = [e.event.owner for e in history if isinstance(e.event, AccountOpened)]
    assert owners == [REDACTED, "Ada again"]
    assert len(await store.require(PersonalData).subject_key_ids(SUBJECT)) == 1

"""The user directory (seed 003) on every backend: commands, the three queries, and unique
emails that hold when two CreateUser race for one address."""

from __future__ import annotations

import asyncio

import pytest

from facta import NO_STREAM, EventStore, NewEvent, WrongExpectedVersion
from facta.examples.users.domain import UserError
from facta.examples.users.emails import EmailTaken, reservation_id
from facta.examples.users.service import UserDirectory


@pytest.fixture
async def users(store: EventStore):  # type: ignore[no-untyped-def]
    directory = await UserDirectory.open(store)
    yield directory
    await directory.close()


async def test_create_update_deactivate_reactivate_and_query(users: UserDirectory) -> None:
    await users.create_user("u1", "Alice@Example.com", "Alice")
    view = await users.get("u1")
    assert view is not None
    assert (view.email, view.name, view.bio, view.is_active) == (
        "Alice@Example.com",
        "Alice",
        None,
        True,
    )
    await users.update_profile("u1", bio="Writes Rust")
    await users.update_profile("u1", name="Alice B.")
    assert await users.get_by_email(" alice@example.COM ") == await users.get("u1")
    view = await users.get("u1")
    assert view is not None
    assert (view.name, view.bio) == ("Alice B.", "Writes Rust")
    assert view.updated_at >= view.created_at

    await users.deactivate("u1", "left the company")
    view = await users.get("u1")
    assert view is not None
    assert not view.is_active
    with pytest.raises(UserError, match="already deactivated"):
        await users.deactivate("u1", "twice")
    await users.reactivate("u1")
    view = await users.get("u1")
    assert view is not None
    assert view.is_active
    assert await users.get("nobody") is None
    assert await users.get_by_email("nobody@example.com") is None
    with pytest.raises(UserError, match="not found"):
        await users.update_profile("nobody", name="X")


async def test_list_active_users_pages_through_the_active_ones_oldest_first(
    users: UserDirectory,
) -> None:
    for i in range(7):
        await users.create_user(f"u{i}", f"user{i}@example.com", f"User {i}")
    await users.deactivate("u2", "spam")
    await users.deactivate("u5", "spam")
    seen: list[str] = []
    after = None
    while True:
        page = await users.list_active(after=after, limit=2)
        seen.extend(v.user_id for v in page.items)
        if page.next is None:
            break
        after = page.next
    assert seen == ["u0", "u1", "u3", "u4", "u6"]


async def test_an_email_belongs_to_one_user(users: UserDirectory) -> None:
    await users.create_user("u1", "bob@example.com", "Bob")
    with pytest.raises(EmailTaken):
        await users.create_user("u2", "BOB@example.com", "Other Bob")
    assert await users.get("u2") is None
    # The same user again: the reservation is theirs, the user exists.
    with pytest.raises(UserError, match="already exists"):
        await users.create_user("u1", "bob@example.com", "Bob")
    # A user that exists cannot take a second email; the reservation is given back.
    with pytest.raises(UserError, match="already exists"):
        await users.create_user("u1", "bob2@example.com", "Bob")
    await users.create_user("u3", "bob2@example.com", "Bob Two")


async def test_bad_input_is_refused_before_anything_is_written(
    users: UserDirectory, store: EventStore
) -> None:
    for email, name in [("no-at-sign", "X"), ("a@b", "X"), ("ok@example.com", "  ")]:
        with pytest.raises(ValueError, match=r"email|name"):
            await users.create_user("u9", email, name)
    assert await store.read_all() == []


async def test_two_concurrent_creates_with_one_email_exactly_one_wins(
    store: EventStore,
) -> None:
    """Two directories (two applications: separate locks and caches, as two processes would
    have) race on twenty emails, each spelled differently by the two sides."""
    first, second = await UserDirectory.open(store), await UserDirectory.open(store)
    emails = [f"racer{i}@example.com" for i in range(20)]

    async def create(directory: UserDirectory, user_id: str, email: str) -> str | None:
        try:
            await directory.create_user(user_id, email, "Racer")
            return user_id
        except EmailTaken:
            return None

    outcomes = await asyncio.gather(
        *(create(first, f"a{i}", e) for i, e in enumerate(emails)),
        *(create(second, f"b{i}", e.upper()) for i, e in enumerate(emails)),
    )
    for i, email in enumerate(emails):
        winners = [w for w in (outcomes[i], outcomes[20 + i]) if w is not None]
        assert len(winners) == 1, email
        [winner] = winners
        loser = f"b{i}" if winner == f"a{i}" else f"a{i}"
        assert await store.stream_version(f"user-{loser}") == 0
        view = await first.get_by_email(email)
        assert view is not None
        assert view.user_id == winner
        stream = await store.read_stream(f"email-{reservation_id(email)}")
        assert [e.type for e in stream] == ["EmailReserved"]
    await first.close()
    await second.close()


async def test_the_reservation_stream_is_appended_only_once(store: EventStore) -> None:
    """What makes the race safe: a second first reservation of an email is refused by the
    store itself (expected version NO_STREAM), whoever tries it."""
    directory = await UserDirectory.open(store)
    await directory.create_user("u1", "carol@example.com", "Carol")
    await directory.close()
    [event] = await store.read_stream("email-carol@example.com")
    assert event.type == "EmailReserved"
    with pytest.raises(WrongExpectedVersion):
        await store.append(
            "email-carol@example.com",
            [NewEvent("EmailReserved", b'{"user_id":"u2"}')],
            NO_STREAM,
        )
    assert reservation_id("odd!#$%@example.com").startswith("sha256:")

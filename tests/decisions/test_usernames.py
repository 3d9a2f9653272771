"""Unique usernames as a decision: given/when/then, and racing claims on every engine with
consistency boundaries (exactly one wins)."""

from __future__ import annotations

import asyncio

import pytest

from facta import Application, Boundaries, Engine
from facta.examples.users.usernames import (
    ClaimUsername,
    ClaimUsernameDecision,
    ReleaseUsername,
    ReleaseUsernameDecision,
    UsernameClaimed,
    UsernameReleased,
    UsernameTaken,
)
from facta.testing import given

claim = ClaimUsernameDecision()


def test_a_free_username_is_claimed_once_and_spellings_share_it() -> None:
    given(claim).when(ClaimUsername("u1", " Ada ")).then([UsernameClaimed("u1", "ada")])
    given(claim, [UsernameClaimed("u1", "ada")]).when(ClaimUsername("u2", "ADA")).then_raises(
        UsernameTaken, "taken"
    )
    given(claim, [UsernameClaimed("u1", "ada")]).when(ClaimUsername("u1", "ada")).then([])
    given(claim, [UsernameClaimed("u1", "bob")]).when(ClaimUsername("u2", "ada")).then(
        [UsernameClaimed("u2", "ada")]
    )


def test_a_released_username_is_free_again() -> None:
    held = [UsernameClaimed("u1", "ada")]
    given(ReleaseUsernameDecision(), held).when(ReleaseUsername("u1", "ada")).then(
        [UsernameReleased("u1", "ada")]
    )
    given(ReleaseUsernameDecision(), held).when(ReleaseUsername("u2", "ada")).then([])
    given(claim, [*held, UsernameReleased("u1", "ada")]).when(ClaimUsername("u2", "ada")).then(
        [UsernameClaimed("u2", "ada")]
    )


def test_a_username_is_checked() -> None:
    for bad in ("", "a b", "x" * 65):
        with pytest.raises(ValueError, match="username"):
            ClaimUsername("u1", bad)


async def test_of_racing_claims_for_one_name_exactly_one_wins(store: Engine) -> None:
    if store.capability(Boundaries) is None:
        pytest.skip(f"the {store.name} engine has no consistency boundaries")
    app = Application(store)
    outcomes = await asyncio.gather(
        *(app.decide(claim, ClaimUsername(f"u{i}", "ada")) for i in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, UsernameTaken) for o in outcomes if isinstance(o, BaseException))
    # Other names are not held back by it.
    await app.decide(claim, ClaimUsername("u9", "bob"))

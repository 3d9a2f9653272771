"""Random command sequences against the bank decider and through the Application."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from facta import Application
from facta.examples.bank.domain import (
    Account,
    AccountCommand,
    AccountError,
    AccountState,
    Deposit,
    OpenAccount,
    Withdraw,
)
from facta.store.memory import MemoryEngine

account = Account()
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10_000), places=2)
commands = st.lists(
    st.one_of(
        st.builds(OpenAccount, owner=st.sampled_from(["Ann", "Bo"]), initial_balance=amounts),
        st.builds(Deposit, amount=amounts),
        st.builds(Withdraw, amount=amounts),
    ),
    max_size=40,
)


@given(commands)
def test_the_balance_never_goes_negative_and_history_folds_to_the_state(
    sequence: list[AccountCommand],
) -> None:
    state, history = account.initial, []
    for command in sequence:
        try:
            events = account.decide(state, command)
        except AccountError:
            continue  # a rejection changes nothing
        history.extend(events)
        state = account.fold(events, state)
        assert state.balance >= 0
    assert account.fold(history) == state
    if history:
        assert state.opened


@settings(max_examples=40, deadline=None)
@given(commands)
def test_the_application_agrees_with_the_decider(sequence: list[AccountCommand]) -> None:
    async def scenario() -> tuple[AccountState, AccountState, int]:
        app = Application(MemoryEngine())
        expected, accepted = account.initial, 0
        for command in sequence:
            try:
                result = await app.execute(account, "acc-1", command)
            except AccountError:
                continue
            accepted += len(result.events)
            expected = result.state
        loaded = await Application(app.store).load(account, "acc-1")
        assert loaded.version == accepted
        return expected, loaded.state, accepted

    expected, loaded, _ = asyncio.run(scenario())
    assert loaded == expected

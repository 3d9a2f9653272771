"""Given/when/then for deciders: test a domain with no store at all.

    given(Account(), [AccountOpened("Alice", Decimal("10.0"))]) \\
        .when(Withdraw(Decimal("20"))) \\
        .then_raises(AccountError, "Insufficient funds")
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from facta.domain import Aggregate, Command, Event

S = TypeVar("S")


class Scenario(Generic[S]):
    """An aggregate with a history, waiting for a command."""

    def __init__(self, aggregate: Aggregate[S, Any, Any], events: Sequence[Event]) -> None:
        self.aggregate = aggregate
        self.state: S = aggregate.fold(events)

    def when(self, command: Command) -> Outcome[S]:
        """Decide ``command`` against the history."""
        try:
            return Outcome(
                self.aggregate, self.state, self.aggregate.decide(self.state, command), None
            )
        except Exception as exc:
            return Outcome(self.aggregate, self.state, None, exc)


class Outcome(Generic[S]):
    """What a command did: the events it caused, or the error it raised."""

    def __init__(
        self,
        aggregate: Aggregate[S, Any, Any],
        state: S,
        events: list[Any] | None,
        error: Exception | None,
    ) -> None:
        self.aggregate = aggregate
        self._state = state
        self.events = events
        self.error = error

    def then(self, expected: Sequence[Event]) -> S:
        """Assert the command caused exactly ``expected``; returns the state after them."""
        if self.error is not None:
            raise AssertionError(
                f"expected events {list(expected)!r}, but it raised {self.error!r}"
            )
        assert self.events is not None
        if list(self.events) != list(expected):
            raise AssertionError(f"expected events {list(expected)!r}, got {self.events!r}")
        return self.aggregate.fold(self.events, self._state)

    def then_raises(self, error: type[Exception], match: str | None = None) -> Exception:
        """Assert the command raised ``error`` (whose message matches ``match``, a regex)."""
        if self.error is None:
            raise AssertionError(f"expected {error.__name__}, but it caused {self.events!r}")
        if not isinstance(self.error, error):
            raise AssertionError(f"expected {error.__name__}, but it raised {self.error!r}")
        if match is not None and not re.search(match, str(self.error)):
            raise AssertionError(f"{self.error!r} does not match {match!r}")
        return self.error


def given(aggregate: Aggregate[S, Any, Any], events: Sequence[Event] = ()) -> Scenario[S]:
    """Start a scenario: ``aggregate`` after ``events``."""
    return Scenario(aggregate, events)

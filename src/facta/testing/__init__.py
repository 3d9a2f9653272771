"""Given/when/then for deciders: test a domain with no store at all.

    given(Account(), [AccountOpened("Alice", Decimal("10.0"))]) \\
        .when(Withdraw(Decimal("20"))) \\
        .then_raises(AccountError, "Insufficient funds")

A decision is tested the same way: ``given(Subscribe(), [CourseDefined("c1", 10)])`` folds
the events its model selects for the command (by their types and tags), as the store would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, overload

from facta.decisions import Decision
from facta.domain import Aggregate, AnyEvent

S = TypeVar("S")


class Scenario(Generic[S]):
    """An aggregate with a history, waiting for a command."""

    def __init__(self, aggregate: Aggregate[S, Any, Any], events: Sequence[AnyEvent]) -> None:
        self.aggregate = aggregate
        self.state: S = aggregate.fold(events)

    def when(self, command: Any) -> Outcome[S]:
        """Decide ``command`` against the history."""
        after = self.aggregate.fold
        try:
            decided = self.aggregate.decide(self.state, command)
        except Exception as exc:
            return Outcome(lambda events: after(events, self.state), None, exc)
        return Outcome(lambda events: after(events, self.state), decided, None)


class DecisionScenario:
    """A decision with the events in the store, waiting for a command."""

    def __init__(self, decision: Decision[Any, Any, Any], events: Sequence[AnyEvent]) -> None:
        self.decision = decision
        self.events = list(events)

    def when(self, command: Any) -> Outcome[list[AnyEvent]]:
        """Decide ``command`` on the state its model folds from the events."""
        try:
            state = self.decision.model(command).fold(self.events)
            decided = self.decision.decide(state, command)
        except Exception as exc:
            return Outcome(list, None, exc)
        return Outcome(list, decided, None)


class Outcome(Generic[S]):
    """What a command did: the events it caused, or the error it raised."""

    def __init__(
        self,
        after: Callable[[list[Any]], S],
        events: list[Any] | None,
        error: Exception | None,
    ) -> None:
        self._after = after
        self.events = events
        self.error = error

    def then(self, expected: Sequence[AnyEvent]) -> S:
        """Assert the command caused exactly ``expected``; returns the state after them (of
        a decision: the events)."""
        if self.error is not None:
            raise AssertionError(
                f"expected events {list(expected)!r}, but it raised {self.error!r}"
            )
        assert self.events is not None
        if list(self.events) != list(expected):
            raise AssertionError(f"expected events {list(expected)!r}, got {self.events!r}")
        return self._after(self.events)

    def then_raises(self, error: type[Exception], match: str | None = None) -> Exception:
        """Assert the command raised ``error`` (whose message matches ``match``, a regex)."""
        if self.error is None:
            raise AssertionError(f"expected {error.__name__}, but it caused {self.events!r}")
        if not isinstance(self.error, error):
            raise AssertionError(f"expected {error.__name__}, but it raised {self.error!r}")
        if match is not None and not re.search(match, str(self.error)):
            raise AssertionError(f"{self.error!r} does not match {match!r}")
        return self.error


@overload
def given(aggregate: Aggregate[S, Any, Any], events: Sequence[AnyEvent] = ()) -> Scenario[S]: ...


@overload
def given(
    aggregate: Decision[Any, Any, Any], events: Sequence[AnyEvent] = ()
) -> DecisionScenario: ...


def given(
    aggregate: Aggregate[S, Any, Any] | Decision[Any, Any, Any], events: Sequence[AnyEvent] = ()
) -> Scenario[S] | DecisionScenario:
    """Start a scenario: ``aggregate`` after ``events``, or a decision with ``events`` stored."""
    if isinstance(aggregate, Decision):
        return DecisionScenario(aggregate, events)
    return Scenario(aggregate, events)

"""The command side for synchronous code: :class:`facta.Application` on a sync engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from facta.application import Application as AsyncApplication
from facta.codec import Codec
from facta.decisions import Decision, DecisionResult, Model
from facta.domain import Aggregate, Command, Event
from facta.projections.inline import InlineProjections
from facta.projections.projection import Projection
from facta.results import CommandResult, EventEnvelope, StateAt
from facta.sync.engine import Engine

S = TypeVar("S")
C = TypeVar("C", bound=Command)
E = TypeVar("E", bound=Event)


class Application:
    """Executes commands against aggregates stored in a synchronous ``engine``: the async
    :class:`facta.Application`, with the same arguments, guarantees and errors, called
    from synchronous code.

    ``inline``: projections kept in each append's transaction (built from the log and pinned
    here; the engine must have the InlineTransactions capability, else CapabilityMissing).
    Thread-safe: commands from many threads run concurrently on the engine's loop; those on
    one stream are serialised, and conflicts with other processes are retried. Closing the
    engine closes it; :meth:`close` does so earlier.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        codec: Codec | None = None,
        max_retries: int = 10,
        cache_size: int = 10_000,
        inline: Sequence[Projection[Any]] = (),
    ) -> None:
        self.engine = engine
        # The engine's loop's own run, one frame fewer than engine.run per call: on the
        # memory engine a whole command costs only some 15 of those.
        self._run = engine._loop.run

        async def build() -> tuple[AsyncApplication, InlineProjections | None]:
            hook = None if not inline else InlineProjections(engine.engine, inline)
            try:
                if hook is not None:
                    await hook.setup()
                application = AsyncApplication(
                    engine.engine,
                    codec=codec,
                    max_retries=max_retries,
                    cache_size=cache_size,
                    transaction_hook=hook,
                )
            except BaseException:
                if hook is not None:
                    await hook.close()
                raise
            return application, hook

        # Built on the loop: everything of the async side is only touched from its thread.
        application, self._inline = engine.run(build())
        self.application = application
        """The async Application: touch it only on the engine's loop, through its ``run``."""
        self._closed = False
        engine.add_cleanup(self._close)

    @property
    def codec(self) -> Codec:
        """The codec events are encoded and decoded with."""
        return self.application.codec

    @staticmethod
    def stream_id(aggregate: Aggregate[Any, Any, Any], entity_id: str) -> str:
        """The stream of one aggregate instance: ``{aggregate.name}-{entity_id}`` (raises
        InvalidStreamId for an empty or malformed id)."""
        return AsyncApplication.stream_id(aggregate, entity_id)

    def execute(
        self,
        aggregate: Aggregate[S, C, E],
        entity_id: str,
        command: C,
        *,
        expected_version: int | None = None,
        command_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> CommandResult[S, E]:
        """Decide ``command`` against the current state and append the events
        (:meth:`facta.Application.execute`).

        Raises the aggregate's DomainError unchanged when it rejects the command (nothing is
        written); WrongExpectedVersion when ``expected_version`` is given and the stream is
        elsewhere, or when conflicts outlast the retries; CommandIdReused for a
        ``command_id`` used by another command; EngineClosed once the engine is closed.
        """
        return self._run(
            self.application.execute(
                aggregate,
                entity_id,
                command,
                expected_version=expected_version,
                command_id=command_id,
                metadata=metadata,
            )
        )

    def decide(
        self,
        decision: Decision[Any, C, E],
        command: C,
        *,
        command_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> DecisionResult[E]:
        """Decide ``command`` over the decision's consistency boundary and append its events
        under the model's condition (:meth:`facta.Application.decide`).

        Raises the decision's DomainError unchanged; AppendConditionFailed when racing
        appends outlast the retries; CapabilityMissing on an engine without Boundaries.
        """
        return self._run(
            self.application.decide(decision, command, command_id=command_id, metadata=metadata)
        )

    def state_of(self, model: Model[S]) -> S:
        """The state ``model`` folds from the store now (CapabilityMissing on an engine
        without Boundaries)."""
        return self._run(self.application.state_of(model))

    def load(
        self,
        aggregate: Aggregate[S, Any, Any],
        entity_id: str,
        *,
        version: int | None = None,
        at: float | None = None,
    ) -> StateAt[S]:
        """The state now, at ``version``, or as it was at Unix time ``at``; a stream with no
        events loads as the initial state at version 0. Raises StreamNotFound when
        ``version`` is past the stream's end."""
        return self._run(self.application.load(aggregate, entity_id, version=version, at=at))

    def history(
        self,
        aggregate: Aggregate[Any, Any, E],
        entity_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[EventEnvelope[E]]:
        """The stream's decoded events in version order (deprecated types left out)."""
        return self._run(
            self.application.history(
                aggregate,
                entity_id,
                from_version=from_version,
                to_version=to_version,
                limit=limit,
                backwards=backwards,
            )
        )

    def close(self) -> None:
        """Wait for background work (snapshots) and release the inline projections' pins.
        Idempotent; the engine stays open (closing it closes this too)."""
        if not self._closed and not self.engine.closed:
            self.engine.run(self._close())

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.application.drain()
        if self._inline is not None:
            await self._inline.close()

    def __enter__(self) -> Application:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

"""Projections and policies run for synchronous code: the runner on the engine's loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from facta.codec import Codec
from facta.projections.policy import Policy
from facta.projections.progress import ProgressCallback
from facta.projections.projection import Projection
from facta.projections.runner import ProjectionRunner as AsyncRunner
from facta.store.base import Position
from facta.sync.application import Application
from facta.sync.engine import Engine


class ProjectionRunner:
    """Runs projections and policies against a synchronous ``engine``
    (:class:`facta.projections.ProjectionRunner`, same arguments).

    :meth:`start` runs them in the background, on the engine's loop, until :meth:`stop` (or
    the end of a ``with`` block, or closing the engine); :meth:`catch_up`, :meth:`rebuild`
    and :meth:`build_inline` run once and return. ``app`` (a facta.sync.Application on the
    same engine) is needed for policies. ``progress`` callbacks are called on the engine's
    thread: keep them short, and do not call facta.sync from them (RuntimeError).
    """

    def __init__(
        self,
        engine: Engine,
        handlers: Sequence[Projection[Any] | Policy],
        *,
        app: Application | None = None,
        codec: Codec | None = None,
        batch_size: int = 1000,
        lease_ttl: float = 10.0,
        poll_interval: float = 1.0,
        owner: str | None = None,
    ) -> None:
        if app is not None and app.engine is not engine:
            raise ValueError("the runner's app must be an Application on the same engine")
        self.engine = engine

        async def build() -> AsyncRunner:
            return AsyncRunner(
                engine.engine,
                handlers,
                app=None if app is None else app.application,
                codec=codec,
                batch_size=batch_size,
                lease_ttl=lease_ttl,
                poll_interval=poll_interval,
                owner=owner,
            )

        # Built on the loop: registering event types in a codec the loop may be using.
        self.runner = engine.run(build())
        """The async runner: touch it only on the engine's loop, through its ``run``."""
        self._task: asyncio.Task[None] | None = None
        engine.add_cleanup(self._stop)

    @property
    def owner(self) -> str:
        """What this runner is called in the projections' status."""
        return self.runner.owner

    @property
    def running(self) -> bool:
        """Whether :meth:`start` runs the projections in the background now."""
        return self._task is not None and not self._task.done()

    @property
    def waiting(self) -> dict[str, str]:
        """Why a projection is not being worked on by this runner (held elsewhere, failed)."""
        return dict(self.runner.waiting)

    def start(self) -> None:
        """Run every projection and policy in the background until :meth:`stop`. Returns at
        once. Raises RuntimeError if it runs already."""

        async def started() -> None:
            if self.running:
                raise RuntimeError("the runner runs already")
            self._task = asyncio.get_running_loop().create_task(self.runner.run())

        self.engine.run(started())

    def stop(self) -> None:
        """Stop the background run (releasing the leases) and wait for it. Idempotent."""
        if not self.engine.closed:
            self.engine.run(self._stop())

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def catch_up(self, *, until: Position | None = None) -> None:
        """Bring every projection and policy this runner can hold up to the log's head once
        (with ``until``, to at least that position), then return."""
        self.engine.run(self.runner.catch_up(until=until))

    def rebuild(self, name: str, *, progress: ProgressCallback | None = None) -> None:
        """Rebuild projection ``name`` into new storage and switch to it (see the async
        runner's ``rebuild``): ProjectionNotFound, ValueError for a policy, RuntimeError
        when a handler fails."""
        self.engine.run(self.runner.rebuild(name, progress=progress))

    def build_inline(self, name: str, *, progress: ProgressCallback | None = None) -> str:
        """Bring projection ``name``'s storage up to the head and hand it to inline
        maintenance; "" when done, else why not now (see the async runner's)."""
        return self.engine.run(self.runner.build_inline(name, progress=progress))

    def __enter__(self) -> ProjectionRunner:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

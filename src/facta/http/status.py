"""``GET /status``: where each projection and policy on the service's store stands, and the
summary of it that ``GET /ready`` gives.

The projection catalog lives in the store, so every instance on one store sees the same
stopped projections and parked events. Readiness therefore stays 200 when one is found —
each instance can still serve its commands and queries, and failing readiness would take
them all out of the load balancer for a fault none of them can mend — but it says
``degraded`` and names them; this route has the details (error, position, lag, parked
count) behind the service's API keys, as the error texts may quote stored data.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from facta._edge.runtime import Runtime
from facta.application import Application
from facta.http._json import encode, json_response, timestamp
from facta.http.errors import documented_errors
from facta.projections import ProjectionStatus, ReadStore
from facta.store.base import Position

STATUS_PATH = "/status"


class ProjectionView(msgspec.Struct):
    """One storage slot of a projection or policy: its state (``running``, ``rebuilding``,
    ``stopped`` (no runner holds it), ``paused`` (by an operator), ``failed`` (stopped at
    ``error_position`` by ``error`` until restarted), ``inline``), checkpoint, lag and parked
    events. A partitioned projection has one view per partition (``partition`` of
    ``partitions``), each with its own state, checkpoint, lag and owner; ``parked`` counts the
    slot's in each."""

    name: str
    version: int
    slot: int
    active: bool
    state: str
    position: str
    head: str
    lag_events: int
    lag_seconds: float
    handled: int
    parked: int
    owner: str | None
    error: str | None
    error_event_id: str | None
    error_position: str | None
    failed_at: str | None
    partition: int = 0
    partitions: int = 1


class ServiceStatus(msgspec.Struct):
    """``ok``, or ``degraded`` while a projection is failed or has parked events."""

    status: Literal["ok", "degraded"]
    head: str
    projections: list[ProjectionView]


class Trouble(msgspec.Struct):
    """What readiness reports about the projections: the failed ones, the parked counts."""

    failed: list[str] = msgspec.field(default_factory=list)
    parked: dict[str, int] = msgspec.field(default_factory=dict)

    @property
    def any(self) -> bool:
        """Whether there is something for an operator to look at."""
        return bool(self.failed or self.parked)


def trouble(statuses: list[ProjectionStatus]) -> Trouble:
    """The failed projections and the parked counts among ``statuses``."""
    found = Trouble()
    for s in statuses:
        if s.state == "failed" and s.name not in found.failed:
            found.failed.append(s.name)
        if s.parked and s.partition == 0:  # counted per slot, shown on each partition
            found.parked[s.name] = found.parked.get(s.name, 0) + s.parked
    return found


def status_view(s: ProjectionStatus) -> ProjectionView:
    """``s`` as the status routes show it."""
    return ProjectionView(
        s.name,
        s.version,
        s.slot,
        s.active,
        s.state,
        str(s.position),
        str(s.head),
        s.lag_events,
        s.lag_seconds,
        s.handled,
        s.parked,
        s.owner,
        s.error,
        s.error_event_id,
        s.error_position,
        None if s.failed_at is None else timestamp(s.failed_at),
        s.partition,
        s.partitions,
    )


class ProjectionCatalog:
    """The service's window on its store's projection catalog: one ReadStore per opened
    Application, closed with the rest at shutdown; none for an engine without read models."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._application: Application | None = None
        self._read_store: ReadStore | None = None

    def read_store(self) -> ReadStore | None:
        """The ReadStore of the open Application (StoreUnavailable before startup)."""
        application = self.runtime.application
        if application is not self._application:
            self._application, self._read_store = application, None
            try:
                opened = ReadStore(application.store)
            except TypeError:  # an engine with no read-model backend: nothing to report
                return None
            self.runtime.cleanup.push_async_callback(opened.close)
            self._read_store = opened
        return self._read_store

    async def head_and_statuses(self) -> tuple[Position, list[ProjectionStatus]]:
        """The log's head and every projection slot's status (none without a catalog)."""
        read_store = self.read_store()
        statuses = [] if read_store is None else await read_store.status()
        if statuses:
            return statuses[0].head, statuses
        return await self.runtime.application.store.head(), statuses


def status_routes(catalog: ProjectionCatalog) -> list[HTTPRouteHandler]:
    """The handler of ``GET /status``."""

    @get(
        STATUS_PATH,
        summary="Where each projection and policy stands",
        description="State, checkpoint, lag, the error a failed one stopped at, and how many"
        " events each has parked in the dead-letter table. `status` is `degraded` while one"
        " is failed or has parked events (`GET /ready` then says so too).",
        tags=["operations"],
        responses=documented_errors(503),
    )
    async def service_status() -> Response[ServiceStatus]:
        head, statuses = await catalog.head_and_statuses()
        body = ServiceStatus(
            "degraded" if trouble(statuses).any else "ok",
            str(head),
            [status_view(s) for s in statuses],
        )
        return json_response(encode(body))  # type: ignore[no-any-return]

    return [service_status]

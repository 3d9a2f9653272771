"""The console's JSON endpoints on the read side and the relay: projections (and their
partitions) with their parked events, the actions on them (pause, resume, rebuild, retry or
skip a parked event; each confirmed, and recorded in the log), the relays, the audit trail.

An action's body is ``{"operator": "who", "confirm": "NAME"}``: the operator's name, and the
projection's name typed back, so that no script or click acts by accident (400
``not_confirmed`` when it is another name). Rebuild and retry
run the projection's code, which the console has when it was started with it
(``--projection MODULE:CLASS``); pause, resume and skip need none.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter

from facta.console.audit import Action, recent, record
from facta.console.reads import API, TAGS, RelayLag, relay_lags
from facta.console.service import ConsoleService, Rebuild
from facta.http._body import typed_body
from facta.http._json import encode, json_response, timestamp
from facta.http.auth import presented_key_id
from facta.http.errors import ApiError, documented_errors
from facta.http.status import ProjectionView, status_view
from facta.projections import Policy, ProjectionRunner, RebuildProgress
from facta.projections.operations import NotRetryable, ParkedEventNotFound, retry_parked
from facta.store.read_models import DeadLetter

_NAME = r"^[A-Za-z0-9_.:@+=~-]{1,200}$"


class Confirmation(msgspec.Struct, forbid_unknown_fields=True):
    """Who acts, and the projection's name typed back to confirm."""

    operator: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    confirm: Annotated[str, msgspec.Meta(max_length=200)]


class ParkedView(msgspec.Struct):
    """An event a projection parked, with its error."""

    event_id: str
    position: str
    stream_id: str
    type: str
    error: str
    parked_at: str
    slot: int


class RebuildView(msgspec.Struct):
    """A rebuild this console started."""

    started_at: str
    events: int
    running: bool
    error: str | None


class ProjectionsPage(msgspec.Struct):
    """Every projection slot (one per partition), the parked events of each projection,
    whose code this console holds (``retry`` needs it), which of those it can rebuild (the
    projections: policies are not rebuilt), its rebuilds, and the recent actions."""

    projections: list[ProjectionView]
    parked: dict[str, list[ParkedView]]
    code: list[str]
    rebuildable: list[str]
    rebuilds: dict[str, RebuildView]
    actions: list[Action]


class ActionResult(msgspec.Struct):
    """What an action did."""

    action: str
    projection: str
    result: str
    event_id: str | None = None


class RelaysPage(msgspec.Struct):
    """Every relay that has run on this store: destination, checkpoint, lag, and the last
    error it met (kept after it recovered, until the next)."""

    head: str
    relays: list[RelayLag]


def _parked(d: DeadLetter) -> ParkedView:
    return ParkedView(
        d.event_id, d.position, d.stream_id, d.type, d.error, timestamp(d.parked_at), d.slot
    )


def operation_routes(service: ConsoleService) -> list[HTTPRouteHandler]:
    """The console's endpoints on projections and relays."""

    async def known(name: str) -> None:
        if not await (await service.read_store()).status(name):
            raise ApiError(404, f"no projection named {name!r} in this store")

    def confirmed(body: Confirmation, name: str) -> Confirmation:
        if body.confirm != name:
            raise ApiError(
                400,
                f"not confirmed: send the projection's name, {name!r}, as confirm",
                error="not_confirmed",
            )
        return body

    async def audit(
        request: Request[Any, Any, Any],
        body: Confirmation,
        action: str,
        name: str,
        result: str,
        event_id: str | None = None,
    ) -> Response[ActionResult]:
        key = presented_key_id(request.scope)
        await record(
            await service.open(), Action(action, name, body.operator, key, event_id, result)
        )
        return json_response(encode(ActionResult(action, name, result, event_id)))  # type: ignore[no-any-return]

    def code_of(name: str, action: str) -> object:
        handler = service.handlers.get(name)
        if handler is None:
            raise ApiError(
                409,
                f"this console does not hold projection {name!r}'s code, which {action} runs:"
                " start it with --projection MODULE:CLASS",
                error="conflict",
            )
        return handler

    @get(
        f"{API}/projections",
        summary="Projections, partitions and parked events",
        tags=TAGS,
        responses=documented_errors(503),
    )
    async def projections() -> Response[ProjectionsPage]:
        read_store = await service.read_store()
        statuses = await read_store.status()
        parked: dict[str, list[ParkedView]] = {}
        for name in sorted({s.name for s in statuses if s.parked}):
            parked[name] = [_parked(d) for d in await read_store.dead_letters(name, 200)]
        rebuilds = {
            name: RebuildView(timestamp(r.started_at), r.events, not r.task.done(), r.error)
            for name, r in service.rebuilds.items()
        }
        page = ProjectionsPage(
            [status_view(s) for s in statuses],
            parked,
            sorted(service.handlers),
            sorted(n for n, h in service.handlers.items() if not isinstance(h, Policy)),
            rebuilds,
            await recent(await service.open(), 20),
        )
        return json_response(encode(page))  # type: ignore[no-any-return]

    @post(
        f"{API}/projections/{{name:str}}/{{action:str}}",
        summary="Pause, resume or rebuild a projection (confirmed, recorded)",
        description="`action`: `pause` (its runner lets go within a third of its lease;"
        " none takes it until resumed), `resume`, or `rebuild` (blue/green, in the"
        " background: `GET .../projections` shows its progress). Body:"
        ' `{"operator": "who", "confirm": "NAME"}`.',
        tags=TAGS,
        status_code=200,
        dto=typed_body(Confirmation),
        return_dto=None,
        responses=documented_errors(400, 404, 409, 422, 503),
    )
    async def projection_action(
        request: Request[Any, Any, Any],
        name: Annotated[str, Parameter(pattern=_NAME)],
        action: Literal["pause", "resume", "rebuild"],
        data: Confirmation,
    ) -> Response[ActionResult]:
        body = confirmed(data, name)
        await known(name)
        read_store = await service.read_store()
        if action == "pause":
            if any(s.active and s.state == "paused" for s in await read_store.status(name)):
                raise ApiError(409, f"{name!r} is paused already", error="conflict")
            count = await read_store.pause(name)
            if not count:
                raise ApiError(409, f"{name!r} is not running (failed or inline)", error="conflict")
            return await audit(request, body, action, name, f"paused {count} partition(s)")
        if action == "resume":
            count = await read_store.resume(name)
            if not count:
                raise ApiError(409, f"{name!r} is not paused", error="conflict")
            return await audit(request, body, action, name, f"resumed {count} partition(s)")
        handler = code_of(name, "a rebuild")
        if isinstance(handler, Policy):
            raise ApiError(409, f"{name!r} is a policy: policies are not rebuilt", error="conflict")
        if any(s.state == "inline" for s in await read_store.status(name) if s.active):
            raise ApiError(
                409, f"{name!r} is maintained inline: the service rebuilds it", error="conflict"
            )
        running = service.rebuilds.get(name)
        if running is not None and not running.task.done():
            raise ApiError(409, f"{name!r} is being rebuilt already", error="conflict")
        service.rebuilds[name] = start_rebuild(service, name, handler)
        return await audit(request, body, action, name, "started")

    @post(
        f"{API}/projections/{{name:str}}/parked/{{event_id:str}}/{{action:str}}",
        summary="Retry or skip a parked event (confirmed, recorded)",
        description="`retry`: handle it again now (the projection is paused meanwhile);"
        " on success its dead letter is cleared, else it stays parked with the new error in"
        " the answer. `skip`: forget it (it is never handled). Body as for the other actions.",
        tags=TAGS,
        status_code=200,
        dto=typed_body(Confirmation),
        return_dto=None,
        responses=documented_errors(400, 404, 409, 422, 503),
    )
    async def parked_action(
        request: Request[Any, Any, Any],
        name: Annotated[str, Parameter(pattern=_NAME)],
        event_id: Annotated[str, Parameter(min_length=1, max_length=200)],
        action: Literal["retry", "skip"],
        data: Confirmation,
    ) -> Response[ActionResult]:
        body = confirmed(data, name)
        await known(name)
        read_store = await service.read_store()
        if action == "skip":
            if not await read_store.clear_dead_letters(name, [event_id]):
                raise ApiError(404, f"{name!r} has no parked event {event_id!r}")
            return await audit(request, body, action, name, "skipped", event_id)
        handler = code_of(name, "a retry")
        try:
            error = await retry_parked(
                await service.open(),
                handler,  # type: ignore[arg-type]
                event_id,
                app=await service.application(),
            )
        except ParkedEventNotFound as exc:
            raise ApiError(404, str(exc)) from None
        except NotRetryable as exc:
            raise ApiError(409, str(exc), error="conflict") from None
        result = "handled" if error is None else f"failed again: {error}"
        return await audit(request, body, action, name, result, event_id)

    @get(
        f"{API}/relays",
        summary="Relays: destination, checkpoint, lag",
        tags=TAGS,
        responses=documented_errors(503),
    )
    async def relays() -> Response[RelaysPage]:
        store = await service.open()
        browser = await service.browser()
        head = await store.head()
        rows = await browser.relays() if browser else []
        page = RelaysPage(str(head), relay_lags(service, head.sequence, rows))
        return json_response(encode(page))  # type: ignore[no-any-return]

    return [projections, projection_action, parked_action, relays]


def start_rebuild(service: ConsoleService, name: str, handler: object) -> Rebuild:
    """Rebuild ``name`` in the background, blue/green, keeping its progress."""

    async def work() -> None:
        store = await service.open()
        runner = ProjectionRunner(store, [handler], app=await service.application())  # type: ignore[list-item]

        def progress(step: RebuildProgress) -> None:
            rebuild.events = step.events

        try:
            await runner.rebuild(name, progress=progress)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            rebuild.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        finally:
            await runner.close()

    rebuild = Rebuild(asyncio.get_running_loop().create_task(work()), time.time())
    return rebuild

"""The console's JSON endpoints on the log: overview, streams, a stream's events, one event,
an aggregate's state at a version, the causation graph, the tail. All under
``/console/api``, behind the service's API keys, documented in its OpenAPI document."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter

from facta.console.causation import Graph, causation
from facta.console.service import ConsoleService, series
from facta.errors import InvalidStreamId, StreamNotFound
from facta.http._json import encode, json_response, timestamp
from facta.http._params import MAX_VERSION, POSITION_PATTERN, parse_position
from facta.http.errors import ApiError, documented_errors
from facta.http.feed import Categories, FeedEvent, FeedPage, Types, checked_names, raw_event
from facta.store.base import validate_stream_id
from facta.store.browse import MAX_STREAMS_PAGE, Browser, StreamSummary

API = "/console/api"
_KEY = r"^[A-Za-z0-9_.:@+=~-]{1,300}$"
_PREFIX = r"^[A-Za-z0-9_.:@+=~-]{0,300}$"
_NAME = r"^[A-Za-z0-9_.:@+=~]{1,200}$"
MAX_EVENTS_PAGE = 500
TAGS = ["console"]

StreamId = Annotated[str, Parameter(pattern=_KEY, max_length=300, description="A stream id.")]


class StoreHealth(msgspec.Struct):
    """Whether the store answered, how fast, and its engine."""

    ok: bool
    engine: str
    latency_ms: float
    error: str | None = None


class ChartSeries(msgspec.Struct):
    """The overview's charts: sample times (Unix seconds), events per second between
    samples, and each projection's lag (events) at each."""

    at: list[float]
    events_per_second: list[float]
    lags: dict[str, list[int]]


class RelayLag(msgspec.Struct):
    """A relay's checkpoint and how far behind the head it is."""

    name: str
    position: str
    lag_events: int
    published: int
    updated_at: str | None
    owner: str | None
    holding: bool
    last_error: str | None = None
    last_error_at: str | None = None


class Overview(msgspec.Struct):
    """The store at a glance (``events`` and ``streams`` are counted every few seconds, less
    often on a large store)."""

    events: int
    streams: int
    head: str
    store: StoreHealth
    series: ChartSeries
    projections: dict[str, int]
    relays: list[RelayLag]


class StreamList(msgspec.Struct):
    """A page of streams; ask with ``after=next`` for the following one (null: last)."""

    streams: list[StreamSummary]
    next: str | None


class EventRow(msgspec.Struct):
    """One event in a stream's table."""

    version: int
    type: str
    recorded_at: str
    event_id: str
    position: str


class StreamEvents(msgspec.Struct):
    """A page of a stream's events; ``next_version`` the ``from_version`` of the next page
    (null: last). ``aggregate`` the registered aggregate whose state the console can show."""

    stream_id: str
    version: int
    events: list[EventRow]
    next_version: int | None
    aggregate: str | None


class StateAtVersion(msgspec.Struct):
    """An aggregate's state at one version of its stream."""

    stream_id: str
    aggregate: str
    version: int
    state: Any


def _stream_id(text: str) -> str:
    try:
        return validate_stream_id(text)
    except InvalidStreamId as exc:
        raise ApiError(422, str(exc)) from None


async def _browser(service: ConsoleService) -> Browser:
    browser = await service.browser()
    if browser is None:
        engine = (await service.open()).name
        raise ApiError(501, f"the {engine} engine offers no stream browsing", error="unsupported")
    return browser


def relay_lags(service: ConsoleService, head: int, rows: list[Any]) -> list[RelayLag]:
    """The relays' rows with their lag behind ``head``."""
    now = time.time()
    return [
        RelayLag(
            r.name,
            str(r.position),
            max(0, head - r.position.sequence),
            r.published,
            None if r.updated_at is None else timestamp(r.updated_at),
            r.owner,
            r.owner is not None and r.lease_until > now,
            r.error,
            None if r.error_at is None else timestamp(r.error_at),
        )
        for r in rows
    ]


def read_routes(service: ConsoleService) -> list[HTTPRouteHandler]:
    """The console's read endpoints."""

    @get(
        f"{API}/overview",
        summary="The store at a glance",
        tags=TAGS,
        responses=documented_errors(503),
    )
    async def overview() -> Response[Overview]:
        store = await service.open()
        started = time.perf_counter()
        try:
            sample = await service.take_sample()
            browser = await service.browser()
            totals = await service.totals()
            relays = relay_lags(service, sample.head, await browser.relays() if browser else [])
            health = StoreHealth(True, store.name, round(1000 * (time.perf_counter() - started), 1))
        except Exception as exc:  # the page says the store is down rather than failing
            return json_response(encode({"store": StoreHealth(False, store.name, 0, str(exc))}))  # type: ignore[no-any-return]
        head = await store.head()
        chart = series(list(service.samples))
        body = Overview(
            totals.events if totals else head.sequence,
            totals.streams if totals else 0,
            str(head),
            health,
            ChartSeries(chart.at, chart.events_per_second, chart.lags),
            sample.lags,
            relays,
        )
        return json_response(encode(body))  # type: ignore[no-any-return]

    @get(
        f"{API}/streams",
        summary="Streams by id prefix and category, paginated",
        description="`category` lists the streams `category-*`; `prefix` narrows them to ids"
        " starting with it (after `category-` when both are given).",
        tags=TAGS,
        responses=documented_errors(422, 503),
    )
    async def streams(
        prefix: Annotated[str, Parameter(pattern=_PREFIX, max_length=300)] = "",
        category: Annotated[str | None, Parameter(pattern=_NAME, required=False)] = None,
        after: Annotated[str | None, Parameter(pattern=_KEY, required=False)] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_STREAMS_PAGE)] = 50,
    ) -> Response[StreamList]:
        full = prefix if category is None else f"{category}-{prefix}"
        found = await (await _browser(service)).streams(full, after, limit + 1)
        more = len(found) > limit
        page = StreamList(found[:limit], found[limit - 1].stream_id if more else None)
        return json_response(encode(page))  # type: ignore[no-any-return]

    @get(
        f"{API}/streams/{{stream_id:str}}/events",
        summary="A page of one stream's events (version, type, time)",
        tags=TAGS,
        responses=documented_errors(404, 422, 503),
    )
    async def stream_events(
        stream_id: StreamId,
        from_version: Annotated[int, Parameter(ge=1, le=MAX_VERSION)] = 1,
        limit: Annotated[int, Parameter(ge=1, le=MAX_EVENTS_PAGE)] = 50,
    ) -> Response[StreamEvents]:
        stream_id = _stream_id(stream_id)
        store = await service.open()
        version = await store.stream_version(stream_id)
        if version == 0:
            raise ApiError(404, f"stream {stream_id!r} has no events")
        records = await store.read_stream(stream_id, from_version=from_version, limit=limit + 1)
        rows = [
            EventRow(r.version, r.type, timestamp(r.recorded_at), r.event_id, str(r.position))
            for r in records[:limit]
        ]
        following = records[limit].version if len(records) > limit else None
        aggregate = service.aggregate_of(stream_id)
        body = StreamEvents(
            stream_id, version, rows, following, aggregate.name if aggregate else None
        )
        return json_response(encode(body))  # type: ignore[no-any-return]

    @get(
        f"{API}/streams/{{stream_id:str}}/state",
        summary="The aggregate's state at a version of its stream (time travel)",
        tags=TAGS,
        responses=documented_errors(404, 422, 503),
    )
    async def stream_state(
        stream_id: StreamId,
        # gt=-1, not ge=0: Litestar leaves a bound of 0 out of the OpenAPI document.
        version: Annotated[int | None, Parameter(gt=-1, le=MAX_VERSION, required=False)] = None,
    ) -> Response[StateAtVersion]:
        stream_id = _stream_id(stream_id)
        aggregate = service.aggregate_of(stream_id)
        if aggregate is None:
            raise ApiError(
                404,
                f"no aggregate is registered for the streams of {stream_id.partition('-')[0]!r}"
                " (start the console with --aggregate MODULE:NAME)",
            )
        app = await service.application()
        entity = stream_id.partition("-")[2]
        try:
            loaded = await app.load(aggregate, entity, version=version)
        except StreamNotFound as exc:
            raise ApiError(404, str(exc)) from None
        body = StateAtVersion(stream_id, aggregate.name, loaded.version, loaded.state)
        try:
            encoded = encode(body)  # money as JSON numbers, as the service writes it
        except (TypeError, msgspec.EncodeError):  # a state msgspec cannot encode as it is
            body.state = msgspec.to_builtins(loaded.state, enc_hook=str)
            encoded = encode(body)
        return json_response(encoded)  # type: ignore[no-any-return]

    @get(
        f"{API}/events/{{event_id:str}}",
        summary="One event: data and metadata",
        tags=TAGS,
        responses=documented_errors(404, 422, 503),
    )
    async def one_event(
        event_id: Annotated[str, Parameter(min_length=1, max_length=200)],
    ) -> Response[FeedEvent]:
        record = await (await service.open()).find_event(event_id)
        if record is None:
            raise ApiError(404, f"no event {event_id[:80]!r}")
        return json_response(encode(raw_event(record)))  # type: ignore[no-any-return]

    @get(
        f"{API}/causation",
        summary="The commands and events a request caused, across streams and sagas",
        description="`key`: an event id, a command id or a correlation id.",
        tags=TAGS,
        responses=documented_errors(422, 503),
    )
    async def causation_graph(
        key: Annotated[str, Parameter(pattern=_KEY, max_length=300)],
    ) -> Response[Graph]:
        graph = await causation(await _browser(service), key)
        return json_response(encode(graph))  # type: ignore[no-any-return]

    @get(
        f"{API}/tail",
        summary="The log's newest events after a position, filtered by category and type",
        description="Without `after`, no events and `next` the head: poll with `after=next`.",
        tags=TAGS,
        responses=documented_errors(422, 503),
    )
    async def tail(
        after: Annotated[
            str | None, Parameter(required=False, max_length=41, pattern=POSITION_PATTERN)
        ] = None,
        category: Categories = None,
        type: Types = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_EVENTS_PAGE)] = 50,
    ) -> Response[FeedPage]:
        store = await service.open()
        categories, types = checked_names(category, "category"), checked_names(type, "type")
        if after is None:  # from now on: the head is where the tail starts
            head = str(await store.head())
            return json_response(encode({"events": [], "next": head}))  # type: ignore[no-any-return]
        start = parse_position(after)
        records = await store.read_all(
            after=start, limit=limit, categories=categories, types=types, wait_for_held_back=False
        )
        following = str(records[-1].position) if records else str(start)
        page = {"events": [raw_event(r) for r in records], "next": following}
        return json_response(encode(page))  # type: ignore[no-any-return]

    return [overview, streams, stream_events, stream_state, one_event, causation_graph, tail]

"""The global event feed: every stored event in log order, paged or live as Server-Sent Events.

- ``GET /events?after=POSITION&limit=N&category=&type=`` a page of the log after a position;
  ``next`` in the answer is the position to ask after next time (polling from it never misses
  or repeats an event).
- ``GET /events/live?after=POSITION`` the same events as an endless ``text/event-stream``, from
  ``after`` (or the ``Last-Event-ID`` a reconnecting browser sends; by default from now on).
  Each message has the position as ``id``, the event type as ``event`` and the feed JSON as
  ``data``; a comment line every 15 s keeps proxies from closing an idle stream.

Event data are passed through as stored, whatever aggregate wrote them: the feed needs no
event classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import HeaderParameter, Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from facta.http._json import encode, json_response, timestamp
from facta.http._params import POSITION_PATTERN, parse_position
from facta.http.errors import ApiError, documented_errors
from facta.http.runtime import Runtime
from facta.store.base import RecordedEvent

MAX_PAGE = 1000
MAX_NAMES = 20
KEEPALIVE_SECONDS = 15.0
MAX_LIVE_FEEDS = 100
"""Live feeds one server holds open at once; past it, 503 (each one is a subscription)."""
_NAME_PATTERN = r"^[A-Za-z0-9_.:@+=~]{1,200}$"
_NAME = re.compile(_NAME_PATTERN)
_NAMES_SCHEMA = {"items": Schema(type=OpenAPIType.STRING, pattern=_NAME_PATTERN)}


class FeedEvent(msgspec.Struct):
    """One stored event in the feed (``data`` and ``metadata`` are the stored JSON)."""

    position: str
    stream_id: str
    version: int
    type: str
    schema_version: int
    event_id: str
    recorded_at: str
    data: dict[str, Any]
    metadata: dict[str, Any]


class FeedPage(msgspec.Struct):
    """A page of the log: the events, and the position to read after for the next page."""

    events: list[FeedEvent]
    next: str


class _RawFeedEvent(msgspec.Struct):
    # FeedEvent as it is sent: the stored JSON passed through without decoding it.
    position: str
    stream_id: str
    version: int
    type: str
    schema_version: int
    event_id: str
    recorded_at: str
    data: msgspec.Raw
    metadata: msgspec.Raw


class _RawFeedPage(msgspec.Struct):
    events: list[_RawFeedEvent]
    next: str


def _raw(record: RecordedEvent) -> _RawFeedEvent:
    return _RawFeedEvent(
        str(record.position),
        record.stream_id,
        record.version,
        record.type,
        record.schema_version,
        record.event_id,
        timestamp(record.recorded_at),
        msgspec.Raw(record.data),
        msgspec.Raw(record.metadata),
    )


def feed_routes(runtime: Runtime, *, max_live: int = MAX_LIVE_FEEDS) -> list[HTTPRouteHandler]:
    """The handlers of ``GET /events`` and ``GET /events/live``."""

    @get(
        "/events",
        summary="A page of the global event log, in log order",
        tags=["events"],
        operation_id="get_events",
        responses=documented_errors(422, 503),
    )
    async def read_feed(
        after: Annotated[
            str,
            Parameter(
                max_length=41,
                pattern=POSITION_PATTERN,
                description="Read the events after this position.",
            ),
        ] = "0",
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 100,
        category: Annotated[
            list[str] | None,
            Parameter(
                required=False,
                max_items=MAX_NAMES,
                description="Only these stream categories.",
                schema_extra=_NAMES_SCHEMA,
            ),
        ] = None,
        type: Annotated[
            list[str] | None,
            Parameter(
                required=False,
                max_items=MAX_NAMES,
                description="Only these event types.",
                schema_extra=_NAMES_SCHEMA,
            ),
        ] = None,
    ) -> Response[FeedPage]:
        start = parse_position(after)
        records = await runtime.application.store.read_all(
            after=start,
            limit=limit,
            categories=_names(category, "category"),
            types=_names(type, "type"),
        )
        following = str(records[-1].position) if records else str(start)
        page = _RawFeedPage([_raw(r) for r in records], following)
        return json_response(encode(page))  # type: ignore[no-any-return]

    live = [0]  # open live feeds (a cell the streams update)

    @get(
        "/events/live",
        summary="The global event log, live, as Server-Sent Events",
        description="Each message: `id` the position, `event` the type, `data` a feed event.",
        tags=["events"],
        operation_id="follow_events",
        responses=documented_errors(422, 503),
    )
    async def follow_feed(
        after: Annotated[
            str | None,
            Parameter(
                required=False,
                max_length=41,
                pattern=POSITION_PATTERN,
                description="Start after this position (default: from now on).",
            ),
        ] = None,
        last_event_id: Annotated[
            str | None,
            HeaderParameter(
                name="Last-Event-ID", required=False, max_length=41, pattern=POSITION_PATTERN
            ),
        ] = None,
        category: Annotated[
            list[str] | None,
            Parameter(
                required=False,
                max_items=MAX_NAMES,
                description="Only these stream categories.",
                schema_extra=_NAMES_SCHEMA,
            ),
        ] = None,
        type: Annotated[
            list[str] | None,
            Parameter(
                required=False,
                max_items=MAX_NAMES,
                description="Only these event types.",
                schema_extra=_NAMES_SCHEMA,
            ),
        ] = None,
    ) -> ServerSentEvent:
        if live[0] >= max_live:
            raise ApiError(
                503,
                f"{max_live} live feeds are open on this server; retry shortly",
                headers={"Retry-After": "5"},
            )
        store = runtime.application.store
        if last_event_id is not None:
            start = parse_position(last_event_id, "Last-Event-ID")
        elif after is not None:
            start = parse_position(after)
        else:
            start = await store.head()
        records = store.subscribe(
            after=start, categories=_names(category, "category"), types=_names(type, "type")
        )
        return ServerSentEvent(_messages(records, live))

    return [read_feed, follow_feed]


def _names(values: list[str] | None, what: str) -> Sequence[str] | None:
    if values is not None and len(values) > MAX_NAMES:
        raise ApiError(422, f"at most {MAX_NAMES} {what} values")
    for value in values or ():
        if not _NAME.fullmatch(value):
            raise ApiError(
                422, f"{what} must be 1-200 letters, digits or _.:@+=~, not {value[:60]!r}"
            )
    return values or None


async def _messages(
    records: AsyncIterator[RecordedEvent], live: list[int]
) -> AsyncIterator[ServerSentEventMessage]:
    """Feed messages from a subscription, with a keep-alive comment when it is quiet.

    The subscription runs in its own task feeding a small queue, so that waiting for the
    keep-alive never cancels it in the middle of a read.
    """
    queue: asyncio.Queue[RecordedEvent | BaseException] = asyncio.Queue(maxsize=256)

    async def pump() -> None:
        try:
            async for record in records:
                await queue.put(record)
        except Exception as exc:  # the store failed: end the stream, the client reconnects
            await queue.put(exc)

    task = asyncio.get_running_loop().create_task(pump())
    live[0] += 1  # counted while the stream is open: see max_live in feed_routes
    try:
        yield ServerSentEventMessage(data=None, comment="facta live feed", retry=1000)
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ServerSentEventMessage(data=None, comment="keep-alive")
                continue
            if isinstance(item, BaseException):
                return
            yield ServerSentEventMessage(
                data=encode(_raw(item)).decode(), event=item.type, id=str(item.position)
            )
    finally:
        live[0] -= 1
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(Exception):
            await records.aclose()  # type: ignore[attr-defined]


__all__ = ["FeedEvent", "FeedPage", "feed_routes"]

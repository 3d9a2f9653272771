"""The global event feed: every stored event in log order, paged or live as Server-Sent Events.

- ``GET /events?after=POSITION&limit=N&category=&type=`` a page of the log after a position;
  ``next`` in the answer is the position to ask after next time (polling from it never misses
  or repeats an event).
- ``GET /events/live?after=POSITION`` the same events as an endless ``text/event-stream``, from
  ``after`` (or the ``Last-Event-ID`` a reconnecting browser sends; by default from now on).
  Each message has the position as ``id`` and the feed JSON as ``data`` (its ``type`` is the
  event type); a comment line every 15 s keeps proxies from closing an idle stream.

The live feed comes in two forms:

- named (the default): each message also carries the event type as ``event``
  (``event: MoneyDeposited``), so that a browser listens per type with
  ``source.addEventListener("MoneyDeposited", ...)``. ``EventSource.onmessage`` sees none of
  these: it only receives messages without an ``event`` field.
- ``?format=message``: no ``event`` field, so every message is a plain ``message`` and
  ``source.onmessage = (e) => JSON.parse(e.data).type`` sees them all.

One server holds at most ``max_live`` feeds open at once (100 by default; each is a
subscription to the store): a feed is counted when it is admitted, so no burst of clients can
open more, and past the limit the answer is 503 with ``Retry-After``.

Event data are passed through as stored, whatever aggregate wrote them: the feed needs no
event classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Literal

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import HeaderParameter, Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from facta._edge.runtime import Runtime
from facta.http._json import encode, json_response, timestamp
from facta.http._params import POSITION_PATTERN, parse_position
from facta.http.errors import ApiError, ErrorsAsSent, documented_errors
from facta.store.base import RecordedEvent

MAX_PAGE = 1000
MAX_NAMES = 20
KEEPALIVE_SECONDS = 15.0
MAX_LIVE_FEEDS = 100
"""Live feeds one server holds open at once; past it, 503 (each one is a subscription)."""
_NAME_PATTERN = r"^[A-Za-z0-9_.:@+=~]{1,200}$"
_NAME = re.compile(_NAME_PATTERN)
EVENT_STREAM = "text/event-stream"

_NAMES_SCHEMA = {"items": Schema(type=OpenAPIType.STRING, pattern=_NAME_PATTERN)}

Categories = Annotated[
    list[str] | None,
    Parameter(
        required=False,
        max_items=MAX_NAMES,
        description="Only these stream categories.",
        schema_extra=_NAMES_SCHEMA,
    ),
]
"""The ``category`` filter of both feeds (repeat it for several)."""

Types = Annotated[
    list[str] | None,
    Parameter(
        required=False,
        max_items=MAX_NAMES,
        description="Only these event types.",
        schema_extra=_NAMES_SCHEMA,
    ),
]
"""The ``type`` filter of both feeds (repeat it for several)."""

LiveFormat = Literal["named", "message"]
"""How live messages are sent: ``named`` with an ``event`` field, ``message`` without one."""


class FeedEvent(msgspec.Struct):
    """One stored event in the feed (``data`` and ``metadata`` are the stored JSON, ``tags``
    what consistency-boundary queries select it by)."""

    position: str
    stream_id: str
    version: int
    type: str
    schema_version: int
    event_id: str
    recorded_at: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    tags: list[str] = msgspec.field(default_factory=list)


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
    tags: tuple[str, ...] = ()


class _RawFeedPage(msgspec.Struct):
    events: list[_RawFeedEvent]
    next: str


class _LiveFeeds:
    """The live feeds open on one server, counted the moment each is admitted.

    Admission checks and counts in one step with no await between them, so that requests
    arriving together cannot all pass the check before any of them is counted.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def admit(self) -> _Place | None:
        """A place for one more feed, or None when all are taken."""
        if self.open >= self.limit:
            return None
        self.open += 1
        return _Place(self)


class _Place:
    """One admitted feed's place; released once, by whoever lets go of it first."""

    __slots__ = ("_feeds",)

    def __init__(self, feeds: _LiveFeeds) -> None:
        self._feeds: _LiveFeeds | None = feeds

    def release(self) -> None:
        """Give the place back (again is a no-op)."""
        if self._feeds is not None:
            self._feeds.open -= 1
            self._feeds = None


def raw_event(record: RecordedEvent) -> _RawFeedEvent:
    """``record`` as the feed sends it (its stored JSON passed through, not decoded)."""
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
        record.tags,
    )


def feed_routes(runtime: Runtime, *, max_live: int = MAX_LIVE_FEEDS) -> list[HTTPRouteHandler]:
    """The handlers of ``GET /events`` and ``GET /events/live``."""

    @get(
        "/events",
        summary="A page of the global event log, in log order",
        tags=["events"],
        operation_id="get_events",
        responses=documented_errors(422, 503),
        operation_class=ErrorsAsSent,
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
        category: Categories = None,
        type: Types = None,
    ) -> Response[FeedPage]:
        start = parse_position(after)
        records = await runtime.application.store.read_all(
            after=start,
            limit=limit,
            categories=checked_names(category, "category"),
            types=checked_names(type, "type"),
        )
        following = str(records[-1].position) if records else str(start)
        page = _RawFeedPage([raw_event(r) for r in records], following)
        return json_response(encode(page))  # type: ignore[no-any-return]

    feeds = _LiveFeeds(max_live)

    @get(
        "/events/live",
        summary="The global event log, live, as Server-Sent Events",
        description="Each message: `id` the position, `data` a feed event (its `type` the event"
        " type), and by default `event` the type too. With `format=message` there is no `event`"
        " field, so a browser's `EventSource.onmessage` receives every message.",
        tags=["events"],
        operation_id="follow_events",
        media_type=EVENT_STREAM,
        responses={
            200: ResponseSpec(
                str,
                description="An endless stream of Server-Sent Events, one per stored event.",
                media_type=EVENT_STREAM,
                generate_examples=False,
            ),
            **documented_errors(422, 503),
        },
        operation_class=ErrorsAsSent,
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
        category: Categories = None,
        type: Types = None,
        format: Annotated[
            LiveFormat,
            Parameter(
                description="`named`: each message has the event type as `event`;"
                " `message`: plain messages, for `EventSource.onmessage`."
            ),
        ] = "named",
    ) -> ServerSentEvent:
        start = None
        if last_event_id is not None:
            start = parse_position(last_event_id, "Last-Event-ID")
        elif after is not None:
            start = parse_position(after)
        categories, types = checked_names(category, "category"), checked_names(type, "type")
        place = feeds.admit()
        if place is None:
            raise ApiError(
                503,
                f"{max_live} live feeds are open on this server; retry shortly",
                headers={"Retry-After": "5"},
            )
        try:
            store = runtime.application.store
            if start is None:
                start = await store.head()
            records = store.subscribe(after=start, categories=categories, types=types)
        except BaseException:
            place.release()
            raise
        messages = _messages(records, place, named=format == "named")
        # A client that hangs up before its stream starts leaves the generator unstarted, so
        # its finally never runs: the place goes back when the generator is dropped.
        weakref.finalize(messages, place.release)
        return ServerSentEvent(messages)

    return [read_feed, follow_feed]


def checked_names(values: list[str] | None, what: str) -> Sequence[str] | None:
    """``values`` of a ``category`` or ``type`` filter (None when empty); ApiError(422) for
    too many, or one that is not a name."""
    if values is not None and len(values) > MAX_NAMES:
        raise ApiError(422, f"at most {MAX_NAMES} {what} values")
    for value in values or ():
        if not _NAME.fullmatch(value):
            raise ApiError(
                422, f"{what} must be 1-200 letters, digits or _.:@+=~, not {value[:60]!r}"
            )
    return values or None


async def _messages(
    records: AsyncIterator[RecordedEvent], place: _Place, *, named: bool
) -> AsyncIterator[ServerSentEventMessage]:
    """Feed messages from a subscription, with a keep-alive comment when it is quiet; the
    feed's place is released when the stream ends.

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
    try:
        yield ServerSentEventMessage(data=None, comment="facta live feed", retry=1000)
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    item = await queue.get()
            except TimeoutError:
                yield ServerSentEventMessage(data=None, comment="keep-alive")
                continue
            if isinstance(item, BaseException):
                return
            yield ServerSentEventMessage(
                data=encode(raw_event(item)).decode(),
                event=item.type if named else None,
                id=str(item.position),
            )
    finally:
        place.release()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(Exception):
            await records.aclose()  # type: ignore[attr-defined]


__all__ = ["FeedEvent", "FeedPage", "checked_names", "feed_routes", "raw_event"]

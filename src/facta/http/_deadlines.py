"""Time bounds on receiving a request, against slow clients (slowloris).

uvicorn bounds only the idle time between requests (``timeout_keep_alive``), and resets that
on every byte, so a client trickling a byte every few seconds, or one that connects and says
nothing, holds a connection for ever. An ASGI middleware cannot help: the app is called only
once the headers are in. So this bounds it one layer down, at uvicorn's public seam for
the HTTP protocol (``uvicorn.run(http=...)``): a protocol that wraps uvicorn's own,
forwards every call to it unchanged, and reads a copy of the bytes with httptools (the
parser uvicorn uses) only to see where each request begins, where its head ends and where
its body ends. A connection is closed when

- the request line and headers have not all arrived ``header_timeout`` seconds after the
  connection opened or the request's first byte came (:data:`HEADER_TIMEOUT`);
- the body has not all arrived ``body_timeout`` seconds after the headers
  (:data:`BODY_TIMEOUT`).

Nothing is bounded once a request is in: a long answer (the live feed) is unaffected.
Between requests, uvicorn's keep-alive timeout applies as before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

log = logging.getLogger("facta.http")

HEADER_TIMEOUT = 10.0
"""Seconds a client has to send a request's line and headers."""

BODY_TIMEOUT = 30.0
"""Seconds a client has to send a request's body once its headers are in (64 KB at most)."""


def deadline_protocol(
    header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT
) -> type[asyncio.Protocol] | None:
    """A protocol class for ``uvicorn.run(http=...)`` that enforces the two bounds around
    uvicorn's default HTTP protocol; None without httptools (uvicorn[standard] brings it),
    when the server runs unbounded."""
    try:
        import httptools
        from uvicorn.protocols.http.auto import AutoHTTPProtocol
    except ImportError:  # pragma: no cover - uvicorn without its standard extras
        log.warning("httptools is not installed: request header and body times are unbounded")
        return None

    class RequestDeadlines(asyncio.Protocol):
        """uvicorn's HTTP protocol, and a clock on each request until it is all in."""

        def __init__(self, **options: Any) -> None:
            self._inner: asyncio.Protocol = AutoHTTPProtocol(**options)
            self._loop = options.get("_loop") or asyncio.get_event_loop()
            self._parser: Any = httptools.HttpRequestParser(self)
            self._transport: asyncio.Transport | None = None
            # One timer per connection, re-armed lazily: moving the deadline costs nothing.
            self._deadline: float | None = None
            self._timer: asyncio.TimerHandle | None = None

        # -- the clock --------------------------------------------------------------------

        def _until(self, seconds: float) -> None:
            self._deadline = self._loop.time() + seconds
            if self._timer is None:
                self._timer = self._loop.call_at(self._deadline, self._check)

        def _check(self) -> None:
            self._timer = None
            if self._deadline is None or self._transport is None:
                return
            if self._loop.time() < self._deadline:
                self._timer = self._loop.call_at(self._deadline, self._check)
                return
            # Too slow: there is no request to answer, only a connection to free.
            self._deadline = None
            self._transport.abort()

        def _stop(self) -> None:
            self._deadline = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        # -- what httptools reports about the copy it parses ------------------------------

        def on_message_begin(self) -> None:
            self._until(header_timeout)

        def on_headers_complete(self) -> None:
            self._until(body_timeout)

        def on_message_complete(self) -> None:
            self._deadline = None  # in: the timer, if it fires, finds nothing to do

        # -- asyncio.Protocol, forwarded ---------------------------------------------------

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass
            self._until(header_timeout)  # a connection that says nothing is let go too
            self._inner.connection_made(transport)

        def data_received(self, data: bytes) -> None:
            if self._parser is not None:
                try:
                    self._parser.feed_data(data)
                except httptools.HttpParserUpgrade:
                    self._parser = None  # a WebSocket: no longer HTTP requests
                    self._stop()
                except httptools.HttpParserError:
                    self._parser = None  # uvicorn answers 400 and closes
                    self._stop()
            self._inner.data_received(data)

        def eof_received(self) -> bool | None:
            return self._inner.eof_received()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop()
            self._transport = None
            self._inner.connection_lost(exc)

        def pause_writing(self) -> None:
            self._inner.pause_writing()

        def resume_writing(self) -> None:
            self._inner.resume_writing()

    return RequestDeadlines

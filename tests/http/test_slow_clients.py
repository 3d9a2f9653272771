"""Slow clients (slowloris) are disconnected once they overrun the time to send a request's
headers or body, while ordinary requests, and long answers such as the live feed, go on."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.http.conftest import Server, start_server

BOUND = 1.0  # the header and body timeouts of the server under test
SLACK = 6.0  # how much later than the bound a loaded machine may close them
HEAD = b"POST /accounts/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("slow")
    with pytest.MonkeyPatch.context() as patch:  # the same as --header-timeout, --body-timeout
        patch.setenv("FACTA_HEADER_TIMEOUT", str(BOUND))
        patch.setenv("FACTA_BODY_TIMEOUT", str(BOUND))
        server = start_server(f"sqlite:///{workdir / 'facta.db'}", workdir)
    yield server
    server.stop()


async def slow_client(port: int, first: bytes, trickle: bytes, stop_at: float) -> float | None:
    """Send ``first``, then a byte of ``trickle`` every 0.2 s; the seconds until the server
    closed the connection, or None if it was still open at ``stop_at``."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(first)
        for byte in trickle * 100:
            if reader.at_eof() or time.monotonic() > stop_at:
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
                # A closed connection shows as EOF (or a reset) on the next read.
                if await asyncio.wait_for(reader.read(1024), 0.2) == b"":
                    break
            except TimeoutError:
                continue
            except (ConnectionError, OSError):
                break
        else:
            return None
        if time.monotonic() > stop_at:
            return None
        return time.monotonic() - started
    finally:
        writer.close()


async def test_slow_clients_are_disconnected_and_others_served(bounded: Server) -> None:
    port = int(bounded.url.rsplit(":", 1)[1])
    stop_at = time.monotonic() + BOUND + SLACK + 2
    trickling = [
        (HEAD, b"X-Slow: " + b"a" * 40 + b"\r\n"),  # headers, a byte at a time
        (HEAD + b"Content-Length: 500\r\n\r\n{", b'"a":1,' * 100),  # a body, likewise
    ]
    # 20 connections that say nothing, 20 slow heads, 20 slow bodies.
    silent = [asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
    connections = await asyncio.gather(*silent)
    slow = [
        asyncio.create_task(slow_client(port, first, trickle, stop_at))
        for first, trickle in trickling
        for _ in range(20)
    ]
    async with httpx.AsyncClient(base_url=bounded.url, timeout=10) as http:
        opened = await http.post(
            "/accounts/fast", json={"type": "OpenAccount", "owner": "F", "initial_balance": 1}
        )
        assert opened.status_code == 200, opened.text
        for _ in range(5):
            assert (await http.get("/accounts/fast")).status_code == 200
            await asyncio.sleep(0.2)
    closed_after = await asyncio.gather(*slow)
    silent_closed = []
    for reader, writer in connections:
        try:
            silent_closed.append(await asyncio.wait_for(reader.read(), 1.0) == b"")
        except (TimeoutError, ConnectionError):
            silent_closed.append(False)
        writer.close()
    assert all(silent_closed), silent_closed
    assert None not in closed_after, closed_after
    assert all(BOUND - 0.2 <= seconds <= BOUND + SLACK for seconds in closed_after), closed_after
    # A client cut off is no server error.
    assert "HTTP 500" not in bounded.output()
    assert "Traceback" not in bounded.output()


async def test_a_slow_but_timely_request_and_a_long_answer_are_not_cut(bounded: Server) -> None:
    port = int(bounded.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"type":"OpenAccount","owner":"Slow","initial_balance":2}'
    writer.write(HEAD + b"Content-Length: %d\r\n" % len(body))
    await asyncio.sleep(BOUND / 3)
    writer.write(b"\r\n" + body[:10])
    await asyncio.sleep(BOUND / 3)
    writer.write(body[10:])
    answer = await asyncio.wait_for(reader.read(4096), 5)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    writer.close()
    # The live feed answers for longer than the bounds: once a request is in, no clock runs.
    async with (
        httpx.AsyncClient(base_url=bounded.url, timeout=10) as http,
        http.stream("GET", "/events/live") as live,
    ):
        assert live.status_code == 200

        async def read_all() -> None:
            async for _ in live.aiter_lines():
                pass

        reading = asyncio.create_task(read_all())
        await asyncio.sleep(BOUND * 3)
        assert not reading.done(), reading  # the stream is still open
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading

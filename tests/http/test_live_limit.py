"""One client cannot exhaust the server with live feeds: past the cap, 503 and Retry-After;
the rest of the API keeps serving, and a closed feed frees its place. The cap is exact however
many clients ask at once, and a client that hangs up before its stream starts frees its place
too.

Plain sockets speak HTTP/1.1 here: a client pool that queues its own connections would hide
what the server does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from facta.http.feed import MAX_LIVE_FEEDS
from tests.http.conftest import start_server


async def open_feed(port: int) -> tuple[bytes, asyncio.StreamWriter]:
    """Send GET /events/live; the status line and headers, and the open connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events/live HTTP/1.1\r\nHost: facta\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if head.startswith(b"HTTP/1.1 200"):
        # The stream has started when its opening comment arrives.
        await asyncio.wait_for(reader.readuntil(b"facta live feed"), 10)
    return head, writer


async def hold_feeds(url: str, port: int) -> None:
    feeds = []
    for _ in range(MAX_LIVE_FEEDS):
        head, writer = await open_feed(port)
        assert head.startswith(b"HTTP/1.1 200"), head
        feeds.append(writer)
    head, refused = await open_feed(port)
    assert head.startswith(b"HTTP/1.1 503"), head
    assert b"retry-after: 5" in head.lower()
    refused.close()
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
        assert (await http.get("/events")).status_code == 200  # the rest still serves
    feeds.pop().close()
    for _ in range(50):  # the server notices the closed feed and frees its place
        head, writer = await open_feed(port)
        writer.close()
        if head.startswith(b"HTTP/1.1 200"):
            break
        await asyncio.sleep(0.1)
    assert head.startswith(b"HTTP/1.1 200"), head
    for writer in feeds:
        writer.close()


async def request_feed(port: int, *, hang_up: bool = False) -> tuple[bytes, asyncio.StreamWriter]:
    """Send GET /events/live and read the status line and headers (or, with ``hang_up``,
    close the connection at once without reading anything)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events/live HTTP/1.1\r\nHost: facta\r\n\r\n")
    await writer.drain()
    if hang_up:
        writer.close()
        return b"", writer
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60), writer


async def storm(port: int, clients: int) -> list[bytes]:
    """``clients`` feeds asked for at once; the status lines, every connection held open
    until all have answered."""
    answers = await asyncio.gather(*(request_feed(port) for _ in range(clients)))
    for _, writer in answers:
        writer.close()
    return [head.split(b"\r\n", 1)[0] for head, _ in answers]


async def admitted_after_hang_ups(port: int, clients: int) -> int:
    """How many of ``clients`` feeds asked for at once are admitted once ``clients`` others
    have hung up right after asking: their places must all come back."""
    await asyncio.gather(*(request_feed(port, hang_up=True) for _ in range(clients)))
    admitted = 0
    for _ in range(100):  # until the server has noticed every hang-up (and closed storm)
        heads = await storm(port, clients)
        admitted = sum(h.startswith(b"HTTP/1.1 200") for h in heads)
        if admitted >= MAX_LIVE_FEEDS:
            break
        await asyncio.sleep(0.1)
    return admitted


def test_live_feed_limit_is_exact_under_concurrency(tmp_path: Path) -> None:
    # 500 clients at once against a limit of 100: each admission is counted before the
    # next one is judged, so exactly 100 streams open and the other 400 get 503.
    server = start_server(f"sqlite:///{tmp_path / 'facta.db'}", tmp_path)
    port = int(server.url.rsplit(":", 1)[1])
    try:
        heads = asyncio.run(storm(port, 500))
        assert sum(h.startswith(b"HTTP/1.1 200") for h in heads) == MAX_LIVE_FEEDS, set(heads)
        assert sum(h.startswith(b"HTTP/1.1 503") for h in heads) == 500 - MAX_LIVE_FEEDS
        assert asyncio.run(admitted_after_hang_ups(port, 500)) == MAX_LIVE_FEEDS
    finally:
        server.stop()


def test_live_feeds_are_capped(tmp_path: Path) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'facta.db'}", tmp_path)
    try:
        asyncio.run(hold_feeds(server.url, int(server.url.rsplit(":", 1)[1])))
    finally:
        server.stop()

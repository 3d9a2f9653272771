"""One client cannot exhaust the server with live feeds: past the cap, 503 and Retry-After;
the rest of the API keeps serving, and a closed feed frees its place.

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
        # The server counts a feed once its stream has started, which is when the opening
        # comment is sent (the headers may arrive first): wait for it.
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


def test_live_feeds_are_capped(tmp_path: Path) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'facta.db'}", tmp_path)
    try:
        asyncio.run(hold_feeds(server.url, int(server.url.rsplit(":", 1)[1])))
    finally:
        server.stop()

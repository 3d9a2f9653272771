"""The causation graph of a correlation: the commands and events one request caused, across
streams and through the sagas that reacted to them, from the metadata facta records on each
event (``correlation_id`` kept along a chain, ``causation_id`` the command or event that
caused it, ``command_id`` for a command with an id, such as every command a policy executes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from facta.http._json import timestamp
from facta.store.base import RecordedEvent
from facta.store.browse import Browser

MAX_NODES = 500
"""The most events one graph holds (a correlation larger than this is cut, and says so)."""


class Node(msgspec.Struct):
    """An event or a command. A command's ``id`` is ``command:`` and its command id (or,
    for the request that began a chain without one, its causation id)."""

    id: str
    kind: str  # "event" | "command"
    stream_id: str
    label: str
    version: int | None = None
    position: str | None = None
    recorded_at: str | None = None


class Edge(msgspec.Struct):
    """``source`` caused ``target``."""

    source: str
    target: str


class Graph(msgspec.Struct):
    """What a key led to: its correlation's commands and events, and who caused whom."""

    key: str
    correlation_id: str | None
    nodes: list[Node]
    edges: list[Edge]
    truncated: bool = False


def build(key: str, events: Sequence[RecordedEvent], truncated: bool) -> Graph:
    """The graph of ``events`` (one correlation, in log order)."""
    ids = {e.event_id for e in events}
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    correlation: str | None = None
    for e in events:
        meta: dict[str, Any] = e.meta
        correlation = correlation or meta.get("correlation_id")
        nodes[e.event_id] = Node(
            e.event_id,
            "event",
            e.stream_id,
            e.type,
            e.version,
            str(e.position),
            timestamp(e.recorded_at),
        )
        command, cause = meta.get("command_id"), meta.get("causation_id")
        if command or (cause and cause not in ids):
            node = f"command:{command or cause}"
            if node not in nodes:
                by = "policy" if cause in ids else "request"
                nodes[node] = Node(node, "command", e.stream_id, f"command ({by})")
                if cause in ids:
                    edges.append(Edge(cause, node))
            edges.append(Edge(node, e.event_id))
        elif cause in ids:
            edges.append(Edge(cause, e.event_id))
    return Graph(key, correlation, list(nodes.values()), edges, truncated)


async def causation(browser: Browser, key: str) -> Graph:
    """The graph of the correlation ``key`` names: an event id, a command id or a
    correlation id (an empty graph when none matches)."""
    found = await browser.correlated(key, MAX_NODES + 1)
    correlations = {c for e in found if (c := e.meta.get("correlation_id"))}
    if correlations and key not in correlations:  # an event or command id: its correlation
        found = await browser.correlated(sorted(correlations)[0], MAX_NODES + 1)
    return build(key, found[:MAX_NODES], len(found) > MAX_NODES)

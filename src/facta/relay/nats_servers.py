"""The NATS servers a relay or consumer URL names: one (``nats://host:port``) or a cluster's
several (``nats://h1:4222,h2:4222,h3:4222``), which the client tries in turn and fails over
between."""

from __future__ import annotations

from urllib.parse import urlsplit


def servers(url: str) -> list[str]:
    """One URL per server named in ``url`` (credentials, when given, on each); its query is
    left out. A server without a port gets 4222."""
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    prefix = f"{parts.scheme}://{credentials + '@' if credentials else ''}"
    return [prefix + _with_port(host) for host in (hosts or "127.0.0.1").split(",")]


def where(url: str) -> str:
    """``nats://host:port[,host:port...]`` for messages: never the credentials."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2] or "127.0.0.1"
    return f"{parts.scheme}://" + ",".join(_with_port(host) for host in hosts.split(","))


def _with_port(host: str) -> str:
    bracketed = host.startswith("[")
    has_port = (bracketed and "]:" in host) or (not bracketed and ":" in host)
    return host if has_port else f"{host}:4222"

"""Optional API-key authentication for a facta service (off unless keys are given).

A request must carry one of the keys as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``;
otherwise it gets 401 (a WebSocket is closed before it opens) and nothing behind it runs.
``/health`` and ``/ready`` stay open for probes, the console's page and assets too (they
hold no data; its JSON endpoints need a key), and so do CORS preflights (a browser never
sends credentials on one; the app's CORS settings answer it, and the request it precedes
still needs its key). Only SHA-256 digests of the keys are kept,
compared in constant time, and no key is ever logged.

``facta serve`` wraps whatever app its factory returns in :meth:`ApiKeys.middleware`, the
outermost ASGI layer: the key is checked before routing (an unknown route or a wrong method
is 401 too, not 404 or 405) and whatever the factory did with the keys. An app served some
other way should be wrapped the same way (``keys.middleware(app)``); ``create_app(api_keys=)``
alone checks keys after routing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

OPEN_PATHS = frozenset({"/health", "/ready", "/console", "/console/"})
OPEN_PREFIXES = ("/console/assets/",)
"""The console's page and its scripts: files of the package that hold no data (a browser
cannot send a key when it opens a page); its JSON endpoints need a key like the rest."""
_BODY = (
    b'{"status":401,"error":"unauthorized",'
    b'"message":"a valid API key is required (Authorization: Bearer KEY or X-API-Key: KEY)"}'
)


class ApiKeys:
    """The keys a service accepts. Raises ValueError for an empty set or a key under 16
    characters (too guessable to protect anything)."""

    def __init__(self, keys: Iterable[str]) -> None:
        cleaned = [key.strip() for key in keys if key.strip()]
        if not cleaned:
            raise ValueError("no API keys given")
        if any(len(key) < 16 for key in cleaned):
            raise ValueError("API keys must be at least 16 characters long")
        self._digests = [hashlib.sha256(key.encode()).digest() for key in cleaned]

    @classmethod
    def parse(cls, text: str) -> ApiKeys:
        """Keys separated by commas or newlines (an environment variable, or a key file)."""
        return cls(text.replace(",", "\n").splitlines())

    def accepts(self, presented: str) -> bool:
        """True when ``presented`` is one of the keys."""
        digest = hashlib.sha256(presented.encode()).digest()
        found = False
        for known in self._digests:  # no early exit: the time taken tells nothing
            found |= hmac.compare_digest(digest, known)
        return found

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap ``app`` so that every HTTP request and WebSocket but the probes must present
        a key (lifespan events pass)."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            kind = scope["type"]
            if (
                kind not in (ScopeType.HTTP, ScopeType.WEBSOCKET)  # lifespan
                or scope["path"] in OPEN_PATHS
                or (scope["path"].startswith(OPEN_PREFIXES) and ".." not in scope["path"])
                or _preflight(scope)
                or self.accepts(_presented_key(scope))
            ):
                await app(scope, receive, send)
                return
            if kind == ScopeType.WEBSOCKET:  # closing before accepting answers 403
                await send({"type": "websocket.close", "code": 1008, "reason": ""})
                return
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_BODY)).encode()),
                    (b"www-authenticate", b'Bearer realm="facta"'),
                ],
            }
            body: HTTPResponseBodyEvent = {
                "type": "http.response.body",
                "body": _BODY,
                "more_body": False,
            }
            await send(start)
            await send(body)

        return guarded


def _preflight(scope: Scope) -> bool:
    """Whether ``scope`` is a CORS preflight: OPTIONS with an Origin and the method asked."""
    if scope.get("method") != "OPTIONS":
        return False
    names = {name for name, _ in scope["headers"]}
    return b"origin" in names and b"access-control-request-method" in names


def presented_key_id(scope: Scope) -> str | None:
    """A short id of the key a request presented, safe to record (the first 8 hex digits of
    its SHA-256: it names the key without revealing it); None when it presented none."""
    key = _presented_key(scope)
    return hashlib.sha256(key.encode()).hexdigest()[:8] if key else None


def _presented_key(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
        elif name == b"x-api-key":
            return value.decode("latin-1").strip()
    return ""

"""JsonAnswer, the command route's answer: headers encoded up front, still a Litestar response
to hooks that look at its headers."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, post
from litestar.testing import TestClient

from facta.http._json import JsonAnswer


def app(**options: Any) -> Litestar:
    # A handler per app: Litestar keeps what it resolved for a handler (its hooks) on it.
    @post("/answer", status_code=200)
    async def answer() -> JsonAnswer:
        return JsonAnswer(b'{"balance":1300.0}', [(b"etag", b'"3"')])

    return Litestar([answer], **options)


async def stamp(response: JsonAnswer) -> JsonAnswer:
    response.headers.add("x-stamped", "yes")
    return response


def test_the_answer_carries_its_body_type_length_and_headers() -> None:
    with TestClient(app()) as client:
        reply = client.post("/answer")
    assert reply.status_code == 200
    assert reply.json() == {"balance": 1300.0}
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["content-length"] == str(len(b'{"balance":1300.0}'))
    assert reply.headers["etag"] == '"3"'


def test_a_hook_that_adds_a_header_has_it_sent() -> None:
    with TestClient(app(after_request=stamp)) as client:
        reply = client.post("/answer")
    assert reply.headers["x-stamped"] == "yes"
    assert reply.headers["etag"] == '"3"'

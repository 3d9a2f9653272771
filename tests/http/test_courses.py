"""The courses service (decisions over consistency boundaries) as a real ``facta serve``
process, driven over real HTTP: the rules, idempotency keys and the error statuses."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from facta import Boundaries, open_store
from tests.http.conftest import Server, drop_schema, start_server, store_url_for

APP = "facta.examples.courses.service:create_app"


def _has_boundaries(url: str) -> bool:
    async def check() -> bool:
        store = await open_store(url)
        try:
            return store.capability(Boundaries) is not None
        finally:
            await store.close()

    return asyncio.run(check())


@pytest.fixture(scope="module", params=["memory", "sqlite", "postgresql"])
def courses_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp(f"courses-{request.param}")
    url = "memory://" if request.param == "memory" else store_url_for(request.param, workdir)
    if url != "memory://" and not _has_boundaries(url):
        drop_schema(url)
        pytest.skip(f"the {request.param} engine has no consistency boundaries yet")
    running = start_server(url, workdir, "--app", APP)
    yield running
    running.stop()
    drop_schema(running.store_url)


@pytest.fixture
def http(courses_server: Server) -> Iterator[httpx.Client]:
    with courses_server.client() as client:
        yield client


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_define_subscribe_and_the_rules(http: httpx.Client) -> None:
    course = _id("c")
    answer = http.post("/courses", json={"course_id": course, "capacity": 1})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"course_id": course, "capacity": 1, "subscribed": 0}
    again = http.post("/courses", json={"course_id": course, "capacity": 1})
    assert again.status_code == 400
    assert again.json()["error"] == "command_rejected"
    assert "already exists" in again.json()["message"]

    joined = http.post(f"/courses/{course}/subscriptions", json={"student_id": "s1"})
    assert joined.json() == {"course_id": course, "capacity": 1, "subscribed": 1}
    full = http.post(f"/courses/{course}/subscriptions", json={"student_id": "s2"})
    assert full.status_code == 400
    assert "full" in full.json()["message"]
    assert http.post(f"/courses/{course}/capacity", json={"capacity": 2}).status_code == 200
    assert (
        http.post(f"/courses/{course}/subscriptions", json={"student_id": "s2"}).json()[
            "subscribed"
        ]
        == 2
    )
    assert http.get(f"/courses/{course}").json()["subscribed"] == 2


def test_unknown_courses_and_bad_input(http: httpx.Client) -> None:
    assert http.get(f"/courses/{_id('none')}").status_code == 404
    missing = http.post(f"/courses/{_id('none')}/subscriptions", json={"student_id": "s1"})
    assert missing.status_code == 400
    for body in ({"course_id": "c 1", "capacity": 1}, {"course_id": "c", "capacity": 0}, {}):
        assert http.post("/courses", json=body).status_code == 422, body
    assert (
        http.post(f"/courses/{_id('c')}/subscriptions", json={"student_id": "s1", "x": 1})
    ).status_code == 422


def test_an_idempotency_key_applies_a_subscription_once(http: httpx.Client) -> None:
    course = _id("c")
    http.post("/courses", json={"course_id": course, "capacity": 5})
    key = {"Idempotency-Key": _id("k")}
    for _ in range(3):
        answer = http.post(
            f"/courses/{course}/subscriptions", json={"student_id": "s1"}, headers=key
        )
        assert answer.status_code == 200
    assert http.get(f"/courses/{course}").json()["subscribed"] == 1
    other = http.post(f"/courses/{course}/subscriptions", json={"student_id": "s2"}, headers=key)
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"


def test_racers_for_the_last_seats_never_overfill_a_course(courses_server: Server) -> None:
    course = _id("c")
    with courses_server.client() as client:
        client.post("/courses", json={"course_id": course, "capacity": 3})

    def join(n: int) -> int:
        with courses_server.client() as client:
            return client.post(
                f"/courses/{course}/subscriptions", json={"student_id": f"s{n}"}
            ).status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(join, range(10)))
    assert statuses.count(200) == 3, statuses
    assert set(statuses) <= {200, 400, 409}, statuses
    with courses_server.client() as client:
        assert client.get(f"/courses/{course}").json()["subscribed"] == 3


def test_the_routes_are_documented(http: httpx.Client) -> None:
    paths = http.get("/docs/openapi.json").json()["paths"]
    assert {"/courses", "/courses/{course_id}/subscriptions"} <= set(paths)

"""Course subscriptions over HTTP: each route decides one command with ``Application.decide``.

- ``POST /courses`` ``{"course_id": "c1", "capacity": 10}`` defines a course;
- ``POST /courses/{id}/capacity`` ``{"capacity": 12}`` changes its capacity;
- ``POST /courses/{id}/subscriptions`` ``{"student_id": "s1"}`` subscribes a student;
- ``GET /courses/{id}`` the course as the decisions see it (no read model: a query by tag).

Every POST answers with the course after it and takes an ``Idempotency-Key`` (scoped to the
decision). A rejected command is 400, as for aggregates; a key reused for another request
is 422; racing appends that outlast the retries are 409. Serve it with ``facta serve --app
facta.examples.courses.service:create_app --store memory://`` (any engine with consistency
boundaries).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, get, post

from facta import Application, Command, CommandIdReused, Decision, Model, open_store
from facta.examples.courses.domain import (
    Capacity,
    ChangeCapacityDecision,
    ChangeCourseCapacity,
    DefineCourse,
    DefineCourseDecision,
    Id,
    SubscribeDecision,
    SubscribeStudentToCourse,
    course_capacity,
    course_exists,
    course_subscriptions,
)
from facta.http import ApiError, ApiKeys, Runtime
from facta.http import create_app as create_http_app
from facta.http.errors import documented_errors

DEFAULT_STORE = "memory://"


class NewCourse(msgspec.Struct, forbid_unknown_fields=True):
    """A course to define."""

    course_id: Id
    capacity: Capacity


class NewCapacity(msgspec.Struct, forbid_unknown_fields=True):
    """A course's new capacity."""

    capacity: Capacity


class NewSubscription(msgspec.Struct, forbid_unknown_fields=True):
    """A student to subscribe."""

    student_id: Id


class CourseView(msgspec.Struct):
    """A course: its capacity and how many students it has."""

    course_id: str
    capacity: int
    subscribed: int


class _Course(msgspec.Struct, frozen=True):
    exists: bool
    capacity: int
    subscribed: int


def course_model(course_id: str) -> Model[_Course]:
    """What ``GET /courses/{id}`` shows: the folds the decisions use, read without deciding."""
    return Model(
        _Course,
        exists=course_exists(course_id),
        capacity=course_capacity(course_id),
        subscribed=course_subscriptions(course_id),
    )


CourseId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


def create_app(
    store_url: str | None = None,
    *,
    projections: bool = True,
    api_keys: ApiKeys | None = None,
    cors_origins: Sequence[str] = (),
) -> Litestar:
    """The courses service on the store at ``store_url`` (default: ``FACTA_STORE``, else an
    in-memory store); it has no projections to run (``projections`` is accepted for
    ``facta serve``)."""
    url = store_url or os.environ.get("FACTA_STORE") or DEFAULT_STORE

    async def open_application() -> Application:
        return Application(await open_store(url))

    runtime = Runtime(open_application)

    async def view(course_id: str) -> CourseView:
        state = await runtime.application.state_of(course_model(course_id))
        if not state.exists:
            raise ApiError(404, f"course {course_id!r} not found")
        return CourseView(course_id, state.capacity, state.subscribed)

    async def run(
        request: Request[Any, Any, Any],
        decision: Decision[Any, Any, Any],
        build: Any,
        course_id: str,
    ) -> CourseView:
        try:
            command: Command = build()
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        key = request.headers.get("idempotency-key")
        if key is not None and not 0 < len(key) <= 200:
            raise ApiError(422, "Idempotency-Key must be 1 to 200 characters")
        try:
            await runtime.application.decide(decision, command, command_id=key)
        except CommandIdReused:
            raise ApiError(
                422,
                f"Idempotency-Key {key!r} was used for a different request",
                error="idempotency_key_reused",
            ) from None
        return await view(course_id)

    errors = documented_errors(400, 404, 409, 413, 415, 422, 503)

    @post("/courses", status_code=200, tags=["courses"], responses=errors)
    async def define_course(request: Request[Any, Any, Any], data: NewCourse) -> CourseView:
        """Define a course (400 when it exists)."""
        return await run(
            request,
            DefineCourseDecision(),
            lambda: DefineCourse(data.course_id, data.capacity),
            data.course_id,
        )

    @post("/courses/{course_id:str}/capacity", status_code=200, tags=["courses"], responses=errors)
    async def change_capacity(
        request: Request[Any, Any, Any], course_id: CourseId, data: NewCapacity
    ) -> CourseView:
        """Change a course's capacity (400 when the course does not exist)."""
        return await run(
            request,
            ChangeCapacityDecision(),
            lambda: ChangeCourseCapacity(course_id, data.capacity),
            course_id,
        )

    @post(
        "/courses/{course_id:str}/subscriptions",
        status_code=200,
        tags=["courses"],
        responses=errors,
    )
    async def subscribe(
        request: Request[Any, Any, Any], course_id: CourseId, data: NewSubscription
    ) -> CourseView:
        """Subscribe a student (400: no such course, full, already subscribed, or the
        student has five courses)."""
        return await run(
            request,
            SubscribeDecision(),
            lambda: SubscribeStudentToCourse(course_id, data.student_id),
            course_id,
        )

    @get("/courses/{course_id:str}", tags=["courses"], responses=documented_errors(404, 503))
    async def get_course(course_id: CourseId) -> CourseView:
        """The course now."""
        return await view(course_id)

    return create_http_app(
        runtime,
        [],
        route_handlers=[define_course, change_capacity, subscribe, get_course],
        api_keys=api_keys,
        cors_origins=cors_origins,
        title="facta courses",
        description="Course subscriptions decided over dynamic consistency boundaries.",
    )

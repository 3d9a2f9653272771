"""Courses and subscriptions as decisions (the dcb.events example).

No aggregate owns the rule "a student takes at most five courses" together with "a course
is never over capacity": a course aggregate cannot see the student's other courses, a
student aggregate cannot see the course's seats. Each command is decided instead on just
the events it needs, selected by tags (``course:<id>``, ``student:<id>``), and appended on
the condition that none of them changed meanwhile.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from facta import Command, Decision, DomainError, Event, Fold, Model, Tag

MAX_COURSES_PER_STUDENT = 5
MAX_CAPACITY = 10_000

Capacity = Annotated[int, msgspec.Meta(ge=1, le=MAX_CAPACITY)]
"""How many students a course takes: 1 to 10,000."""


Id = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@+=~-]+$")]
"""A course or student id: 1-100 letters, digits or _.@+=~- (so that its tag fits in 200)."""

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@+=~-")


def _check_id(value: str, what: str) -> None:
    if not 1 <= len(value) <= 100 or not set(value) <= _ID_CHARS:
        raise ValueError(f"{what} must be 1-100 letters, digits or _.@+=~-: {value[:40]!r}")


def _check_capacity(capacity: int) -> None:
    if not 1 <= capacity <= MAX_CAPACITY:
        raise ValueError(f"capacity must be 1 to {MAX_CAPACITY}, not {capacity}")


# -- commands -------------------------------------------------------------------------------


class DefineCourse(Command, frozen=True):
    course_id: Id
    capacity: Capacity

    def __post_init__(self) -> None:
        _check_id(self.course_id, "course_id")
        _check_capacity(self.capacity)


class ChangeCourseCapacity(Command, frozen=True):
    course_id: Id
    capacity: Capacity

    def __post_init__(self) -> None:
        _check_id(self.course_id, "course_id")
        _check_capacity(self.capacity)


class SubscribeStudentToCourse(Command, frozen=True):
    course_id: Id
    student_id: Id

    def __post_init__(self) -> None:
        _check_id(self.course_id, "course_id")
        _check_id(self.student_id, "student_id")


# -- events ---------------------------------------------------------------------------------


class CourseDefined(Event, frozen=True):
    course_id: Annotated[str, Tag("course")]
    capacity: int


class CourseCapacityChanged(Event, frozen=True):
    course_id: Annotated[str, Tag("course")]
    capacity: int


class StudentSubscribedToCourse(Event, frozen=True):
    course_id: Annotated[str, Tag("course")]
    student_id: Annotated[str, Tag("student")]


CourseEvent = CourseDefined | CourseCapacityChanged | StudentSubscribedToCourse


class CourseError(DomainError):
    """A course command broke a business rule."""


# -- the folds: one small state each, over the events of one tag ---------------------------


def course_exists(course_id: str) -> Fold[bool]:
    """Whether the course was defined."""
    return Fold(False, lambda _, event: True, (CourseDefined,), (f"course:{course_id}",))


def course_capacity(course_id: str) -> Fold[int]:
    """The course's capacity now (0 before it is defined)."""

    def evolve(capacity: int, event: CourseDefined | CourseCapacityChanged) -> int:
        return event.capacity

    return Fold(0, evolve, (CourseDefined, CourseCapacityChanged), (f"course:{course_id}",))


def course_subscriptions(course_id: str) -> Fold[int]:
    """How many students the course has."""
    return Fold(0, lambda n, _: n + 1, (StudentSubscribedToCourse,), (f"course:{course_id}",))


def student_subscriptions(student_id: str) -> Fold[frozenset[str]]:
    """The courses the student is subscribed to."""

    def evolve(courses: frozenset[str], event: StudentSubscribedToCourse) -> frozenset[str]:
        return courses | {event.course_id}

    return Fold(frozenset(), evolve, (StudentSubscribedToCourse,), (f"student:{student_id}",))


# -- the decisions --------------------------------------------------------------------------


class CourseState(msgspec.Struct, frozen=True):
    exists: bool
    capacity: int


class DefineCourseDecision(Decision[CourseState, DefineCourse, CourseDefined]):
    name = "define_course"

    def model(self, command: DefineCourse) -> Model[CourseState]:
        return Model(
            CourseState,
            exists=course_exists(command.course_id),
            capacity=course_capacity(command.course_id),
        )

    def decide(self, state: CourseState, command: DefineCourse) -> list[CourseDefined]:
        if state.exists:
            raise CourseError(f"course {command.course_id!r} already exists")
        return [CourseDefined(command.course_id, command.capacity)]


class ChangeCapacityDecision(Decision[CourseState, ChangeCourseCapacity, CourseCapacityChanged]):
    name = "change_course_capacity"

    def model(self, command: ChangeCourseCapacity) -> Model[CourseState]:
        return Model(
            CourseState,
            exists=course_exists(command.course_id),
            capacity=course_capacity(command.course_id),
        )

    def decide(
        self, state: CourseState, command: ChangeCourseCapacity
    ) -> list[CourseCapacityChanged]:
        if not state.exists:
            raise CourseError(f"course {command.course_id!r} does not exist")
        if state.capacity == command.capacity:
            return []  # already so: nothing to record
        return [CourseCapacityChanged(command.course_id, command.capacity)]


class SubscriptionState(msgspec.Struct, frozen=True):
    exists: bool
    capacity: int
    subscribed: int
    students_courses: frozenset[str]


class SubscribeDecision(
    Decision[SubscriptionState, SubscribeStudentToCourse, StudentSubscribedToCourse]
):
    name = "subscribe_student_to_course"

    def model(self, command: SubscribeStudentToCourse) -> Model[SubscriptionState]:
        return Model(
            SubscriptionState,
            exists=course_exists(command.course_id),
            capacity=course_capacity(command.course_id),
            subscribed=course_subscriptions(command.course_id),
            students_courses=student_subscriptions(command.student_id),
        )

    def decide(
        self, state: SubscriptionState, command: SubscribeStudentToCourse
    ) -> list[StudentSubscribedToCourse]:
        course, student = command.course_id, command.student_id
        if not state.exists:
            raise CourseError(f"course {course!r} does not exist")
        if course in state.students_courses:
            raise CourseError(f"student {student!r} is already subscribed to course {course!r}")
        if state.subscribed >= state.capacity:
            raise CourseError(f"course {course!r} is full")
        if len(state.students_courses) >= MAX_COURSES_PER_STUDENT:
            raise CourseError(
                f"student {student!r} is subscribed to {MAX_COURSES_PER_STUDENT} courses already"
            )
        return [StudentSubscribedToCourse(course, student)]

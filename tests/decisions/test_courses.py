"""Course subscriptions (dcb.events) as decisions: given/when/then with no store, then the
same rules through the Application on every engine that has consistency boundaries."""

from __future__ import annotations

import pytest

from facta import Application, Boundaries, Engine
from facta.examples.courses.domain import (
    ChangeCapacityDecision,
    ChangeCourseCapacity,
    CourseCapacityChanged,
    CourseDefined,
    CourseError,
    DefineCourse,
    DefineCourseDecision,
    StudentSubscribedToCourse,
    SubscribeDecision,
    SubscribeStudentToCourse,
)
from facta.testing import given

subscribe = SubscribeDecision()


def test_a_course_is_defined_once() -> None:
    given(DefineCourseDecision()).when(DefineCourse("c1", 10)).then([CourseDefined("c1", 10)])
    given(DefineCourseDecision(), [CourseDefined("c1", 10)]).when(
        DefineCourse("c1", 5)
    ).then_raises(CourseError, "already exists")
    given(DefineCourseDecision(), [CourseDefined("c2", 10)]).when(DefineCourse("c1", 5)).then(
        [CourseDefined("c1", 5)]
    )


def test_the_capacity_of_an_existing_course_changes() -> None:
    decision = ChangeCapacityDecision()
    given(decision).when(ChangeCourseCapacity("c1", 3)).then_raises(CourseError, "not exist")
    given(decision, [CourseDefined("c1", 10)]).when(ChangeCourseCapacity("c1", 3)).then(
        [CourseCapacityChanged("c1", 3)]
    )
    given(decision, [CourseDefined("c1", 10)]).when(ChangeCourseCapacity("c1", 10)).then([])


def test_a_student_subscribes_to_a_course_that_exists() -> None:
    given(subscribe).when(SubscribeStudentToCourse("c1", "s1")).then_raises(
        CourseError, "does not exist"
    )
    given(subscribe, [CourseDefined("c1", 10)]).when(SubscribeStudentToCourse("c1", "s1")).then(
        [StudentSubscribedToCourse("c1", "s1")]
    )


def test_a_full_course_takes_no_one_and_its_capacity_counts_as_changed() -> None:
    full = [
        CourseDefined("c1", 2),
        StudentSubscribedToCourse("c1", "s1"),
        StudentSubscribedToCourse("c1", "s2"),
    ]
    given(subscribe, full).when(SubscribeStudentToCourse("c1", "s3")).then_raises(
        CourseError, "full"
    )
    given(subscribe, [*full, CourseCapacityChanged("c1", 3)]).when(
        SubscribeStudentToCourse("c1", "s3")
    ).then([StudentSubscribedToCourse("c1", "s3")])
    # Other courses' subscriptions are not counted.
    given(subscribe, [*full, CourseDefined("c2", 1)]).when(
        SubscribeStudentToCourse("c2", "s3")
    ).then([StudentSubscribedToCourse("c2", "s3")])


def test_a_student_subscribes_once_and_to_at_most_five_courses() -> None:
    courses = [CourseDefined(f"c{i}", 10) for i in range(7)]
    five = [StudentSubscribedToCourse(f"c{i}", "s1") for i in range(5)]
    given(subscribe, [*courses, *five]).when(SubscribeStudentToCourse("c6", "s1")).then_raises(
        CourseError, "5 courses"
    )
    given(subscribe, [*courses, *five]).when(SubscribeStudentToCourse("c0", "s1")).then_raises(
        CourseError, "already subscribed"
    )
    given(subscribe, [*courses, *five[:4]]).when(SubscribeStudentToCourse("c6", "s1")).then(
        [StudentSubscribedToCourse("c6", "s1")]
    )
    # Another student's five do not count.
    given(subscribe, [*courses, *five]).when(SubscribeStudentToCourse("c6", "s2")).then(
        [StudentSubscribedToCourse("c6", "s2")]
    )


def test_commands_check_their_ids_and_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        DefineCourse("c1", 0)
    with pytest.raises(ValueError, match="course_id"):
        DefineCourse("c 1", 3)
    with pytest.raises(ValueError, match="student_id"):
        SubscribeStudentToCourse("c1", "x" * 101)


@pytest.fixture
def app(store: Engine) -> Application:
    if store.capability(Boundaries) is None:
        pytest.skip(f"the {store.name} engine has no consistency boundaries")
    return Application(store)


async def test_the_rules_hold_through_the_application(app: Application) -> None:
    await app.decide(DefineCourseDecision(), DefineCourse("c1", 1))
    await app.decide(DefineCourseDecision(), DefineCourse("c2", 5))
    result = await app.decide(subscribe, SubscribeStudentToCourse("c1", "s1"))
    assert result.events == (StudentSubscribedToCourse("c1", "s1"),)
    with pytest.raises(CourseError, match="full"):
        await app.decide(subscribe, SubscribeStudentToCourse("c1", "s2"))
    await app.decide(ChangeCapacityDecision(), ChangeCourseCapacity("c1", 2))
    await app.decide(subscribe, SubscribeStudentToCourse("c1", "s2"))
    with pytest.raises(CourseError, match="already subscribed"):
        await app.decide(subscribe, SubscribeStudentToCourse("c1", "s2"))
    state = await app.state_of(subscribe.model(SubscribeStudentToCourse("c1", "s3")))
    assert (state.exists, state.capacity, state.subscribed) == (True, 2, 2)

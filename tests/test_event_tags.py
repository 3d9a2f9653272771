"""Tags declared on domain events: by marked fields, or by an overridden ``event_tags``, and
carried by the codec into what is appended (and, on an engine with boundaries, stored)."""

from __future__ import annotations

from typing import Annotated

import pytest

from facta import Boundaries, Codec, Engine, Event, Query, Tag


class Enrolled(Event, frozen=True):
    course_id: Annotated[str, Tag("course")]
    student_id: Annotated[str, Tag("student")]
    note: str = ""


class Moved(Event, frozen=True):
    source: Annotated[str, Tag("account")]
    target: Annotated[str | None, Tag("account")] = None


class Flagged(Enrolled, frozen=True):
    def event_tags(self) -> tuple[str, ...]:
        return (*super().event_tags(), "flagged")


class Untagged(Event, frozen=True):
    n: int


def test_marked_fields_tag_the_event_as_prefix_and_value() -> None:
    assert Enrolled("c1", "s1").event_tags() == ("course:c1", "student:s1")
    assert Moved("a", "b").event_tags() == ("account:a", "account:b")


def test_a_field_that_is_none_gives_no_tag() -> None:
    assert Moved("a").event_tags() == ("account:a",)


def test_event_tags_may_be_overridden_and_untagged_events_have_none() -> None:
    assert Flagged("c1", "s1").event_tags() == ("course:c1", "student:s1", "flagged")
    assert Untagged(1).event_tags() == ()


def test_a_tag_prefix_is_checked() -> None:
    for bad in ("", "a:b", "tab\t"):
        with pytest.raises(ValueError, match="prefix"):
            Tag(bad)


def test_the_codec_encodes_the_tags_with_the_event() -> None:
    codec = Codec()
    assert codec.encode(Enrolled("c1", "s1")).tags == ("course:c1", "student:s1")
    assert codec.encode(Moved("a"), event_id="e-1").tags == ("account:a",)
    assert codec.encode(Untagged(1)).tags == ()


async def test_the_store_keeps_the_tags_the_codec_gave(store: Engine) -> None:
    boundaries = store.capability(Boundaries)
    if boundaries is None:
        pytest.skip(f"the {store.name} engine has no consistency boundaries")
    codec = Codec([Enrolled])
    await boundaries.append([codec.encode(Enrolled("c1", "s1")), codec.encode(Untagged(2))])
    read = await boundaries.read(Query.of(tags=["student:s1"]))
    assert [r.tags for r in read.events] == [("course:c1", "student:s1")]
    assert codec.decode(read.events[0]) == Enrolled("c1", "s1")

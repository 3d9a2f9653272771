"""One aggregate over HTTP, whatever the web framework: what its three routes do.

A framework's layer (Litestar's :mod:`facta.http.resource`, FastAPI's :mod:`facta.fastapi`)
parses the path, query and headers its own way and calls :class:`AggregateEndpoints`, which
answers with JSON bytes and headers, or raises an exception that
:func:`facta._edge.errors.error_for` turns into the error answer. So both layers answer the
same requests the same way: the same statuses, messages, headers and bodies.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from facta._edge.body import StrictBody
from facta._edge.errors import ApiError
from facta._edge.json import encode, timestamp
from facta._edge.params import etag, if_match_versions, parse_time
from facta._edge.runtime import Runtime
from facta.domain import Aggregate, Command, DomainError
from facta.errors import CommandIdReused, StreamGone, StreamNotFound, WrongExpectedVersion

S = TypeVar("S")

MAX_PAGE = 1000
"""The most events one page of history may ask for."""

ENVELOPE_KEYS = ("version", "position", "event_id", "recorded_at", "metadata")
"""What the history adds to each event's own JSON (an event's field of the same name wins)."""


@dataclass(frozen=True)
class AggregateResource(Generic[S]):
    """One aggregate exposed over HTTP at ``path`` (``/accounts``).

    ``view(id, version, state)`` renders a state as the JSON the API promises (a msgspec
    Struct of type ``view_type``, which also documents it in OpenAPI). A stream with no events
    is answered with 404. ``commands`` limits the commands clients may send (default: all of
    the aggregate's; leave out those only a saga sends). ``creation_commands`` lists the
    commands that may act on an entity that does not exist yet: when the domain rejects any
    other command on such an entity, the client gets 404 instead of 400.

    The commands and events must be msgspec classes (:class:`facta.Command`,
    :class:`facta.Event`): the routes decode and document them with msgspec. A pydantic
    state is fine, the view renders it. Raises TypeError on a pydantic command or event.
    """

    aggregate: Aggregate[S, Any, Any]
    path: str
    view: Callable[[str, int, S], msgspec.Struct]
    view_type: type[msgspec.Struct]
    commands: tuple[type[Command], ...] = ()
    creation_commands: tuple[type[Command], ...] = ()
    tag: str = ""
    noun: str = field(default="")

    @property
    def label(self) -> str:
        """What one entity is called in messages (``account``)."""
        return self.noun or self.aggregate.name

    def __post_init__(self) -> None:
        kind = type(self.aggregate)
        for cls in (*(self.commands or kind.command_types), *kind.event_types):
            if not issubclass(cls, msgspec.Struct):
                raise TypeError(
                    f"{cls.__name__}: the HTTP routes of {self.aggregate.name!r} serve msgspec"
                    " commands and events (facta.Command, facta.Event), not pydantic models"
                )

    @property
    def command_type(self) -> Any:
        """The type a command body decodes to: one command, or a tagged union of them."""
        return union(self.commands or type(self.aggregate).command_types)

    @property
    def event_type(self) -> Any:
        """The type of the aggregate's events: one event, or a tagged union of them."""
        return union(type(self.aggregate).event_types)


def union(types: Sequence[type[Any]]) -> Any:
    """``types[0]`` alone, or the union of ``types``."""
    return types[0] if len(types) == 1 else typing.Union[tuple(types)]  # noqa: UP007


def check_command_headers(if_match: str | None, idempotency_key: str | None) -> None:
    """Raise ApiError(422) for an ``If-Match`` or ``Idempotency-Key`` out of bounds."""
    if if_match is not None and len(if_match) > 1000:
        raise ApiError(422, "If-Match must be at most 1000 characters")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 200:
        raise ApiError(422, "Idempotency-Key must be 1 to 200 characters")


class Executed(msgspec.Struct, frozen=True):
    """A command's answer: the view of the state after it, as JSON, and where it stands."""

    body: bytes
    version: int
    position: str


class AggregateEndpoints(Generic[S]):
    """What the routes of ``resource`` do, with the Application that ``runtime`` holds.

    ``count(command, outcome)``, when given, is told each command's outcome (accepted,
    rejected, conflict, precondition_failed): the metrics of a layer that has them.
    """

    def __init__(
        self,
        resource: AggregateResource[S],
        runtime: Runtime,
        count: Callable[[Command, str], None] | None = None,
    ) -> None:
        self.resource = resource
        self.runtime = runtime
        self.body = StrictBody(resource.command_type)
        self._count = count or _nothing
        self._label = resource.label
        self._creators = resource.creation_commands
        self._path = resource.path.rstrip("/")
        self._envelope_keys = {
            cls: tuple(k for k in ENVELOPE_KEYS if k not in getattr(cls, "__struct_fields__", ()))
            for cls in type(resource.aggregate).event_types
        }

    def not_found(self, entity_id: str) -> ApiError:
        """The 404 of an entity with no events."""
        return ApiError(404, f"{self._label} {entity_id!r} not found")

    async def _pinned_version(self, entity_id: str, header: str) -> int:
        versions = if_match_versions(header)
        if versions is not None and len(versions) == 1:
            return next(iter(versions))
        application = self.runtime.application
        current = await application.store.stream_version(
            application.stream_id(self.resource.aggregate, entity_id)
        )
        if (versions is None and current > 0) or (versions and current in versions):
            return current
        raise ApiError(
            412,
            f"If-Match {header[:60]!r} does not match {self._label} {entity_id!r}"
            f" at version {current}",
            headers={"ETag": etag(current)},
            current_version=current,
        )

    async def execute(
        self,
        entity_id: str,
        command: Command,
        if_match: str | None,
        idempotency_key: str | None,
    ) -> Executed:
        """Execute ``command``: ``If-Match`` pins the expected version (412 when stale, 428
        never: it is optional), ``Idempotency-Key`` is the command id. Raises ApiError, or
        the domain's error (400; 404 for a non-creating command on a missing entity), or
        WrongExpectedVersion (409) when writers outlasted the retries."""
        check_command_headers(if_match, idempotency_key)
        application = self.runtime.application
        aggregate, label, count = self.resource.aggregate, self._label, self._count
        expected = None if if_match is None else await self._pinned_version(entity_id, if_match)
        try:
            result = await application.execute(
                aggregate, entity_id, command, expected_version=expected, command_id=idempotency_key
            )
        except WrongExpectedVersion as exc:
            if expected is None:
                count(command, "conflict")
                raise
            count(command, "precondition_failed")
            raise ApiError(
                412,
                f"{label} {entity_id!r} is at version {exc.actual}, not {expected} (If-Match)",
                headers={"ETag": etag(exc.actual)},
                current_version=exc.actual,
            ) from None
        except CommandIdReused:
            count(command, "rejected")
            raise ApiError(
                422,
                f"Idempotency-Key {idempotency_key!r} was used for a different request on"
                f" {label} {entity_id!r}; send a new key for a new request",
                error="idempotency_key_reused",
            ) from None
        except DomainError:
            count(command, "rejected")
            if self._creators and not isinstance(command, self._creators):
                stream = application.stream_id(aggregate, entity_id)
                if await application.store.stream_version(stream) == 0:
                    raise self.not_found(entity_id) from None
            raise
        count(command, "accepted")
        return Executed(
            encode(self.resource.view(entity_id, result.version, result.state)),
            result.version,
            str(result.position),
        )

    async def state(
        self,
        entity_id: str,
        version: int | None = None,
        at: str | None = None,
        if_none_match: str | None = None,
    ) -> tuple[bytes | None, str]:
        """The entity's view now, at ``version`` or at time ``at``, and its ETag; None for
        the body when ``If-None-Match`` holds that ETag (a 304). Raises ApiError 404 for an
        entity, version or time with no state, 422 for a time that does not parse."""
        label = self._label
        moment = None if at is None else parse_time(at)
        try:
            loaded = await self.runtime.application.load(
                self.resource.aggregate, entity_id, version=version, at=moment
            )
        except StreamGone as exc:
            raise ApiError(410, f"{label} {entity_id!r}: {exc}") from None
        except StreamNotFound:
            when = "" if at is None else f" at {at}"
            raise ApiError(404, f"{label} {entity_id!r} had no version {version}{when}") from None
        if loaded.version == 0:
            if moment is not None:
                raise ApiError(404, f"{label} {entity_id!r} did not exist at {at}")
            raise self.not_found(entity_id)
        tag = etag(loaded.version)
        if if_none_match is not None and tag in if_none_match:
            return None, tag
        return encode(self.resource.view(entity_id, loaded.version, loaded.state)), tag

    async def history(
        self, entity_id: str, from_version: int = 1, limit: int = 100
    ) -> tuple[bytes, str | None]:
        """A page of the entity's events as a JSON array, and the ``Link`` header to the
        next page (None when this page is not full). Raises ApiError 404 for an entity with
        no events."""
        application = self.runtime.application
        aggregate = self.resource.aggregate
        application.codec.register_aggregate(aggregate)
        stream = application.stream_id(aggregate, entity_id)
        records = await application.store.read_stream(
            stream, from_version=from_version, limit=limit
        )
        if not records and (
            from_version == 1 or await application.store.stream_version(stream) == 0
        ):
            raise self.not_found(entity_id)
        parts = []
        envelope_keys = self._envelope_keys
        for envelope in application.decode_all(records):
            event, recorded = envelope.event, envelope.recorded
            body = encode(event)
            extra = []
            for key in envelope_keys.get(type(event), ()):
                if key == "version":
                    extra.append(b'"version":%d' % recorded.version)
                elif key == "position":
                    extra.append(b'"position":"%s"' % str(recorded.position).encode())
                elif key == "event_id":
                    extra.append(b'"event_id":"%s"' % recorded.event_id.encode())
                elif key == "recorded_at":
                    extra.append(b'"recorded_at":"%s"' % timestamp(recorded.recorded_at).encode())
                else:
                    extra.append(b'"metadata":' + recorded.metadata)
            parts.append(body[:-1] + b"," + b",".join(extra) + b"}" if extra else body)
        link = None
        if len(records) == limit:
            following = (
                f"{self._path}/{entity_id}/events"
                f"?from_version={records[-1].version + 1}&limit={limit}"
            )
            link = f'<{following}>; rel="next"'
        return b"[" + b",".join(parts) + b"]", link


def _nothing(command: Command, outcome: str) -> None:
    """Counts nothing."""

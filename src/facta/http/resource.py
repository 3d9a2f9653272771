"""HTTP routes for one aggregate: execute a command, read the state (at any version or time),
page through the history.

For an aggregate named ``account`` served at ``/accounts``:

- ``POST /accounts/{id}`` with a command as JSON (``{"type": "Deposit", "amount": 500.0}``)
  answers with the state after it, as the resource's view renders it, and its version in
  ``ETag``. ``If-Match: "3"`` pins the expected version (a stale one gets 412);
  ``Idempotency-Key`` makes a retry apply once and answer with the first result; the key is
  scoped to the entity (another entity's same key is another request), reusing it with a
  different command is 422, and a command that wrote nothing (400) keeps no key.
- ``GET /accounts/{id}`` the state now, ``?version=N`` or ``?at=TIME`` as it was then (both:
  version N if it existed at that time, else 404).
- ``GET /accounts/{id}/events`` the events, oldest first, ``?from_version=&limit=`` pages
  (a ``Link: rel="next"`` header points at the next page).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar import Request, Response, get, post
from litestar.enums import ParamType, RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.params import BodyKwarg, HeaderParameter, Parameter
from litestar.response.base import ASGIResponse

from facta.domain import ENTITY_ID_PATTERN, Aggregate, Command, DomainError, type_name
from facta.errors import CommandIdReused, StreamNotFound, WrongExpectedVersion
from facta.http._body import CommandRequest, typed_body
from facta.http._json import MEDIA_TYPE, JsonAnswer, encode, timestamp
from facta.http._params import MAX_VERSION, TIME_SCHEMAS, etag, if_match_versions, parse_time
from facta.http.errors import ApiError, ErrorsAsSent, documented_errors
from facta.http.metrics import COMMANDS
from facta.http.runtime import Runtime

S = TypeVar("S")

MAX_PAGE = 1000
"""The most events one page of history may ask for."""


_ENVELOPE_KEYS = ("version", "position", "event_id", "recorded_at", "metadata")


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


_IF_MATCH = OpenAPIParameter(
    name="If-Match",
    param_in=ParamType.HEADER,
    required=False,
    schema=Schema(type=OpenAPIType.STRING, max_length=1000),
    description="Only execute if the resource is at this version (its ETag).",
)
_IDEMPOTENCY_KEY = OpenAPIParameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    required=False,
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=200),
    description="A client-chosen key, scoped to this entity: repeating the request with it"
    " applies the command once and answers with the first result; a different request under"
    " the same key is refused with 422. A rejected command (400) keeps no key.",
)


@dataclass
class CommandOperation(ErrorsAsSent):
    """The OpenAPI operation of a command route, with the headers its handler reads itself."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.parameters = [*(self.parameters or []), _IF_MATCH, _IDEMPOTENCY_KEY]


def _command_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    """(If-Match, Idempotency-Key) from the ASGI headers (lowercase names; the first of a
    repeated one): a scan of a dozen pairs, where ``request.headers`` builds a container
    of them all first."""
    if_match = idempotency_key = None
    for name, value in headers:
        if name == b"if-match" and if_match is None:
            if_match = value.decode("latin-1")
        elif name == b"idempotency-key" and idempotency_key is None:
            idempotency_key = value.decode("latin-1")
    return if_match, idempotency_key


def _union(types: Sequence[type[Any]]) -> Any:
    return types[0] if len(types) == 1 else typing.Union[tuple(types)]  # noqa: UP007


def aggregate_routes(resource: AggregateResource[Any], runtime: Runtime) -> list[HTTPRouteHandler]:
    """The route handlers of ``resource``, reading the running Application from ``runtime``."""
    aggregate = resource.aggregate
    kind = type(aggregate)
    for cls in (*(resource.commands or kind.command_types), *kind.event_types):
        if not issubclass(cls, msgspec.Struct):
            raise TypeError(
                f"{cls.__name__}: the HTTP routes of {aggregate.name!r} serve msgspec commands"
                " and events (facta.Command, facta.Event), not pydantic models"
            )
    command_type = _union(resource.commands or kind.command_types)
    event_type = _union(kind.event_types)
    view, label, path = resource.view, resource.label, resource.path.rstrip("/")
    tags = [resource.tag or path.strip("/")]
    creators = resource.creation_commands
    counters: dict[tuple[type[Any], str], Any] = {}
    envelope_keys = {
        cls: tuple(k for k in _ENVELOPE_KEYS if k not in getattr(cls, "__struct_fields__", ()))
        for cls in kind.event_types
    }

    def count(command: Command, outcome: str) -> None:
        key = (type(command), outcome)
        counter = counters.get(key)
        if counter is None:
            counter = counters[key] = COMMANDS.labels(
                aggregate.name, type_name(type(command)), outcome
            )
        counter.inc()

    def not_found(entity_id: str) -> ApiError:
        return ApiError(404, f"{label} {entity_id!r} not found")

    async def pinned_version(entity_id: str, header: str) -> int:
        versions = if_match_versions(header)
        if versions is not None and len(versions) == 1:
            return next(iter(versions))
        current = await runtime.application.store.stream_version(
            runtime.application.stream_id(aggregate, entity_id)
        )
        if (versions is None and current > 0) or (versions and current in versions):
            return current
        raise ApiError(
            412,
            f"If-Match {header[:60]!r} does not match {label} {entity_id!r} at version {current}",
            headers={"ETag": etag(current)},
            current_version=current,
        )

    async def execute_command(request: Request[Any, Any, Any], id: str, data: Any) -> Any:
        # The hot path: headers are read here rather than declared as parameters, and the
        # answer is built as an ASGI response directly (both documented by the decorator).
        if_match, idempotency_key = _command_headers(request.scope["headers"])
        if if_match is not None and len(if_match) > 1000:
            raise ApiError(422, "If-Match must be at most 1000 characters")
        if idempotency_key is not None and not 0 < len(idempotency_key) <= 200:
            raise ApiError(422, "Idempotency-Key must be 1 to 200 characters")
        application = runtime.application
        expected = None if if_match is None else await pinned_version(id, if_match)
        try:
            result = await application.execute(
                aggregate, id, data, expected_version=expected, command_id=idempotency_key
            )
        except WrongExpectedVersion as exc:
            if expected is None:
                count(data, "conflict")
                raise
            count(data, "precondition_failed")
            raise ApiError(
                412,
                f"{label} {id!r} is at version {exc.actual}, not {expected} (If-Match)",
                headers={"ETag": etag(exc.actual)},
                current_version=exc.actual,
            ) from None
        except CommandIdReused:
            count(data, "rejected")
            raise ApiError(
                422,
                f"Idempotency-Key {idempotency_key!r} was used for a different request on"
                f" {label} {id!r}; send a new key for a new request",
                error="idempotency_key_reused",
            ) from None
        except DomainError:
            count(data, "rejected")
            if creators and not isinstance(data, creators):
                stream = application.stream_id(aggregate, id)
                if await application.store.stream_version(stream) == 0:
                    raise not_found(id) from None
            raise
        count(data, "accepted")
        return JsonAnswer(
            encode(view(id, result.version, result.state)),
            [
                (b"etag", etag(result.version).encode()),
                (b"facta-position", str(result.position).encode()),
            ],
        )

    async def read_state(
        id: str,
        version: int | None = None,
        at: str | None = None,
        if_none_match: str | None = None,
    ) -> Response[Any]:
        moment = None if at is None else parse_time(at)
        try:
            loaded = await runtime.application.load(aggregate, id, version=version, at=moment)
        except StreamNotFound:
            when = "" if at is None else f" at {at}"
            raise ApiError(404, f"{label} {id!r} had no version {version}{when}") from None
        if loaded.version == 0:
            if moment is not None:
                raise ApiError(404, f"{label} {id!r} did not exist at {at}")
            raise not_found(id)
        tag = etag(loaded.version)
        if if_none_match is not None and tag in if_none_match:
            return Response(b"", status_code=304, headers={"ETag": tag})
        return Response(
            encode(view(id, loaded.version, loaded.state)),
            media_type=MEDIA_TYPE,
            headers={"ETag": tag},
        )

    async def read_history(id: str, from_version: int = 1, limit: int = 100) -> Response[Any]:
        application = runtime.application
        application.codec.register_aggregate(aggregate)
        stream = application.stream_id(aggregate, id)
        records = await application.store.read_stream(
            stream, from_version=from_version, limit=limit
        )
        if not records and (
            from_version == 1 or await application.store.stream_version(stream) == 0
        ):
            raise not_found(id)
        parts = []
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
        headers = {}
        if len(records) == limit:
            following = f"{path}/{id}/events?from_version={records[-1].version + 1}&limit={limit}"
            headers["Link"] = f'<{following}>; rel="next"'
        return Response(b"[" + b",".join(parts) + b"]", media_type=MEDIA_TYPE, headers=headers)

    entity_id = Annotated[
        str,
        Parameter(
            description=f"The {label}'s id: 1-200 letters, digits or _.:@+=~-",
            pattern=ENTITY_ID_PATTERN,
            min_length=1,
            max_length=200,
        ),
    ]
    execute_command.__annotations__ = {
        "request": Request,
        "id": entity_id,
        "data": Annotated[command_type, BodyKwarg(media_type=RequestEncodingType.JSON)],
        "return": ASGIResponse,
    }
    read_state.__annotations__ = {
        "id": entity_id,
        "version": Annotated[
            int | None,
            Parameter(
                ge=1, le=MAX_VERSION, required=False, description="The state at this version."
            ),
        ],
        "at": Annotated[
            str | None,
            Parameter(
                required=False,
                max_length=64,
                description="The state as it was at this time: Unix seconds or ISO 8601.",
                schema_extra={"any_of": TIME_SCHEMAS},
            ),
        ],
        "if_none_match": Annotated[
            str | None, HeaderParameter(name="If-None-Match", required=False, max_length=1000)
        ],
        "return": Response[resource.view_type],  # type: ignore[name-defined]
    }
    read_history.__annotations__ = {
        "id": entity_id,
        "from_version": Annotated[
            int, Parameter(ge=1, le=MAX_VERSION, description="The first version.")
        ],
        "limit": Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="Events per page.")],
        "return": Response[list[event_type]],  # type: ignore[valid-type]
    }
    events_doc = (
        "Each event is its JSON (its `type` and fields) plus the envelope keys"
        f" {', '.join(_ENVELOPE_KEYS)} (an event's own field of the same name wins)."
    )
    return [
        post(
            f"{path}/{{id:str}}",
            status_code=200,
            summary=f"Execute a command on a {label}",
            description="Answers with the state after the command; the version is in ETag.",
            tags=tags,
            operation_id=f"execute_{aggregate.name}_command",
            dto=typed_body(command_type),
            return_dto=None,
            responses={
                200: ResponseSpec(
                    resource.view_type,
                    description="The state after the command; its version is in ETag.",
                    generate_examples=False,
                ),
                **documented_errors(400, 404, 409, 412, 413, 415, 422, 503),
            },
            operation_class=CommandOperation,
            request_class=CommandRequest,
        )(execute_command),
        get(
            f"{path}/{{id:str}}",
            summary=f"The {label}'s state, now or at a version or time",
            tags=tags,
            operation_id=f"get_{aggregate.name}",
            responses=documented_errors(404, 422, 503),
            operation_class=ErrorsAsSent,
        )(read_state),
        get(
            f"{path}/{{id:str}}/events",
            summary=f"The {label}'s events, oldest first",
            description=events_doc,
            tags=tags,
            operation_id=f"get_{aggregate.name}_events",
            responses=documented_errors(404, 422, 503),
            operation_class=ErrorsAsSent,
        )(read_history),
    ]


__all__ = ["AggregateResource", "aggregate_routes"]

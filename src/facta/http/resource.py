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

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.enums import ParamType, RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.params import BodyKwarg, HeaderParameter, Parameter
from litestar.response.base import ASGIResponse

from facta._edge.resource import ENVELOPE_KEYS, MAX_PAGE, AggregateEndpoints, AggregateResource
from facta._edge.runtime import Runtime
from facta.domain import ENTITY_ID_PATTERN, Command, type_name
from facta.http._body import CommandRequest, typed_body
from facta.http._json import MEDIA_TYPE, JsonAnswer
from facta.http._params import MAX_VERSION, TIME_SCHEMAS, etag
from facta.http.errors import ErrorsAsSent, documented_errors
from facta.http.metrics import COMMANDS

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


def aggregate_routes(resource: AggregateResource[Any], runtime: Runtime) -> list[HTTPRouteHandler]:
    """The route handlers of ``resource``, reading the running Application from ``runtime``."""
    aggregate = resource.aggregate
    command_type, event_type = resource.command_type, resource.event_type
    label, path = resource.label, resource.path.rstrip("/")
    tags = [resource.tag or path.strip("/")]
    counters: dict[tuple[type[Any], str], Any] = {}

    def count(command: Command, outcome: str) -> None:
        key = (type(command), outcome)
        counter = counters.get(key)
        if counter is None:
            counter = counters[key] = COMMANDS.labels(
                aggregate.name, type_name(type(command)), outcome
            )
        counter.inc()

    endpoints = AggregateEndpoints(resource, runtime, count)

    async def execute_command(request: Request[Any, Any, Any], id: str, data: Any) -> Any:
        # The hot path: headers are read here rather than declared as parameters, and the
        # answer is built as an ASGI response directly (both documented by the decorator).
        if_match, idempotency_key = _command_headers(request.scope["headers"])
        executed = await endpoints.execute(id, data, if_match, idempotency_key)
        return JsonAnswer(
            executed.body,
            [
                (b"etag", etag(executed.version).encode()),
                (b"facta-position", executed.position.encode()),
            ],
        )

    async def read_state(
        id: str,
        version: int | None = None,
        at: str | None = None,
        if_none_match: str | None = None,
    ) -> Response[Any]:
        body, tag = await endpoints.state(id, version, at, if_none_match)
        if body is None:
            return Response(b"", status_code=304, headers={"ETag": tag})
        return Response(body, media_type=MEDIA_TYPE, headers={"ETag": tag})

    async def read_history(id: str, from_version: int = 1, limit: int = 100) -> Response[Any]:
        body, link = await endpoints.history(id, from_version, limit)
        headers = {} if link is None else {"Link": link}
        return Response(body, media_type=MEDIA_TYPE, headers=headers)

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
        f" {', '.join(ENVELOPE_KEYS)} (an event's own field of the same name wins)."
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
                **documented_errors(400, 404, 409, 410, 412, 413, 415, 422, 503),
            },
            operation_class=CommandOperation,
            request_class=CommandRequest,
        )(execute_command),
        get(
            f"{path}/{{id:str}}",
            summary=f"The {label}'s state, now or at a version or time",
            tags=tags,
            operation_id=f"get_{aggregate.name}",
            responses=documented_errors(404, 410, 422, 503),
            operation_class=ErrorsAsSent,
        )(read_state),
        get(
            f"{path}/{{id:str}}/events",
            summary=f"The {label}'s events, oldest first",
            description=events_doc,
            tags=tags,
            operation_id=f"get_{aggregate.name}_events",
            responses=documented_errors(404, 410, 422, 503),
            operation_class=ErrorsAsSent,
        )(read_history),
    ]


__all__ = ["MAX_PAGE", "AggregateResource", "aggregate_routes"]

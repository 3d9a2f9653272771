"""An APIRouter for one aggregate: the Litestar layer's routes, headers and errors on FastAPI.

For a resource served at ``/accounts``: ``POST /accounts/{id}`` executes a command (a JSON
body decoded by msgspec into the aggregate's command union; ``If-Match``,
``Idempotency-Key``), ``GET /accounts/{id}`` reads the state (``?version=``, ``?at=``,
``If-None-Match``), ``GET /accounts/{id}/events`` pages through the history
(``?from_version=&limit=``, ``Link: rel="next"``). What each route does is
:class:`facta._edge.resource.AggregateEndpoints`, the same code as the Litestar routes'.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at run
# time, and they name the resource's types from this closure.

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from starlette.requests import ClientDisconnect

from facta._edge.body import MAX_BODY_SIZE
from facta._edge.errors import ApiError
from facta._edge.json import MEDIA_TYPE
from facta._edge.params import MAX_VERSION, TIME_PATTERN, etag
from facta._edge.resource import ENVELOPE_KEYS, MAX_PAGE, AggregateEndpoints, AggregateResource
from facta._edge.runtime import Runtime
from facta.domain import ENTITY_ID_PATTERN, Command
from facta.fastapi._errors import JsonErrorsRoute
from facta.fastapi._openapi import error_responses, json_content, schema

_IF_MATCH = (
    'Only execute if the resource is at this version (its ETag, `"3"`; `*` or a list work'
    " too); else 412 and nothing is written. At most 1000 characters."
)
_IDEMPOTENCY_KEY = (
    "A client-chosen key of 1 to 200 characters, scoped to this entity: repeating the request"
    " with it applies the command once and answers with the first result; a different request"
    " under the same key is refused with 422. A rejected command (400) keeps no key."
)
_ETAG = {"ETag": {"description": "The version, quoted.", "schema": {"type": "string"}}}


async def read_body(request: Request, limit: int) -> bytes:
    """The request's whole body; ApiError 413 once it is seen to be over ``limit`` bytes
    (by its Content-Length, or as it arrives), 400 when the client leaves before it is in."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise ApiError(413, "the request body is too large")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "the request body is too large")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(
            400, "the client disconnected before its body was in", error="disconnected"
        ) from None
    return b"".join(chunks)


def aggregate_router(
    resource: AggregateResource[Any],
    runtime: Runtime,
    *,
    max_body_size: int = MAX_BODY_SIZE,
    count: Callable[[Command, str], None] | None = None,
) -> APIRouter:
    """The routes of ``resource`` as an APIRouter, reading the open Application from
    ``runtime`` (start it in the app's lifespan: :func:`facta.fastapi.lifespan`).

    Every failure of these routes is answered with facta's JSON error body, as the Litestar
    layer answers it (:mod:`facta.http.errors`); a command body over ``max_body_size`` bytes
    is 413. ``count(command, outcome)`` is told each command's outcome, for metrics.
    The OpenAPI document shows the command union, the view and the error body as inline JSON
    Schemas made by msgspec (see :mod:`facta.fastapi`).
    """
    endpoints = AggregateEndpoints(resource, runtime, count)
    label, name = resource.label, resource.aggregate.name
    path = resource.path.rstrip("/")
    tags: list[str | Any] = [resource.tag or path.strip("/")]
    router = APIRouter(route_class=JsonErrorsRoute)

    entity_id = Annotated[
        str,
        Path(
            description=f"The {label}'s id: 1-200 letters, digits or _.:@+=~-",
            pattern=ENTITY_ID_PATTERN,
            min_length=1,
            max_length=200,
        ),
    ]

    async def execute_command(
        request: Request,
        id: entity_id,
        if_match: Annotated[str | None, Header(alias="If-Match", description=_IF_MATCH)] = None,
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", description=_IDEMPOTENCY_KEY)
        ] = None,
    ) -> Response:
        body = await read_body(request, max_body_size)
        command = endpoints.body.decode(body, request.headers.get("content-type"))
        executed = await endpoints.execute(id, command, if_match, idempotency_key)
        headers = {"ETag": etag(executed.version), "Facta-Position": executed.position}
        return Response(executed.body, media_type=MEDIA_TYPE, headers=headers)

    async def read_state(
        id: entity_id,
        version: Annotated[
            int | None, Query(ge=1, le=MAX_VERSION, description="The state at this version.")
        ] = None,
        at: Annotated[
            str | None,
            Query(
                max_length=64,
                description="The state as it was at this time: Unix seconds"
                f" (`{TIME_PATTERN}`) or ISO 8601.",
            ),
        ] = None,
        if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
    ) -> Response:
        body, tag = await endpoints.state(id, version, at, if_none_match)
        if body is None:
            return Response(status_code=304, headers={"ETag": tag})
        return Response(body, media_type=MEDIA_TYPE, headers={"ETag": tag})

    async def read_history(
        id: entity_id,
        from_version: Annotated[
            int, Query(ge=1, le=MAX_VERSION, description="The first version.")
        ] = 1,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Events per page.")] = 100,
    ) -> Response:
        body, link = await endpoints.history(id, from_version, limit)
        return Response(body, media_type=MEDIA_TYPE, headers={} if link is None else {"Link": link})

    view = json_content(resource.view_type, f"The {label}; its version is in ETag.")
    router.add_api_route(
        f"{path}/{{id}}",
        execute_command,
        methods=["POST"],
        summary=f"Execute a command on a {label}",
        description="Answers with the state after the command; the version is in ETag.",
        tags=tags,
        operation_id=f"execute_{name}_command",
        response_class=Response,
        responses={
            200: {**view, "headers": _ETAG},
            **error_responses(400, 404, 409, 412, 413, 415, 422, 503),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": schema(resource.command_type)}},
            }
        },
    )
    router.add_api_route(
        f"{path}/{{id}}",
        read_state,
        methods=["GET"],
        summary=f"The {label}'s state, now or at a version or time",
        tags=tags,
        operation_id=f"get_{name}",
        response_class=Response,
        responses={200: {**view, "headers": _ETAG}, **error_responses(404, 422, 503)},
    )
    router.add_api_route(
        f"{path}/{{id}}/events",
        read_history,
        methods=["GET"],
        summary=f"The {label}'s events, oldest first",
        description="Each event is its JSON (its `type` and fields) plus the envelope keys"
        f" {', '.join(ENVELOPE_KEYS)} (an event's own field of the same name wins).",
        tags=tags,
        operation_id=f"get_{name}_events",
        response_class=Response,
        responses={
            200: json_content(list[resource.event_type], f"A page of the {label}'s events."),  # type: ignore[name-defined]
            **error_responses(404, 422, 503),
        },
    )
    return router

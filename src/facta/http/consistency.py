"""Read-your-writes over HTTP: a read-model route that takes the position of a command's
answer (its ``Facta-Position`` header) answers only once the read model has handled the log
up to it, in every partition, or says clearly that it has not yet."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

from facta._edge.errors import ApiError
from facta._edge.params import POSITION_PATTERN, parse_position
from facta.projections import ReadStore
from facta.store.engine import Engine, HeldBack

MAX_WAIT = 5.0
"""Seconds a read-model request waits for its position before it is answered 503."""

PositionParameter = Annotated[
    str | None,
    Parameter(
        required=False,
        max_length=41,
        pattern=POSITION_PATTERN,
        description="A command's `Facta-Position`: answer only once the read model has"
        f" handled the log up to it (else 503 after {MAX_WAIT:g} s, with Retry-After).",
    ),
]
"""The query parameter of a read-model route that waits for a position."""


async def caught_up(
    read_store: ReadStore,
    name: str,
    position: str | None,
    max_wait: float = MAX_WAIT,
    *,
    log: Engine | None = None,
) -> None:
    """Return once projection ``name`` has reached ``position`` (nothing to wait for
    without one). Raise ApiError 422 for a malformed position or one past the end of the log
    (on PostgreSQL, unless committed events are held back, as one may be), and 503 with
    Retry-After when the read model has not reached it within ``max_wait`` seconds.
    ``log``: the engine commands append to, when ``read_store`` reads a standby (whose
    log may lag: a position past its end is then waited for, not refused)."""
    if position is None:
        return
    wanted = parse_position(position, "position")
    log = log or read_store.store
    if wanted > await log.head():
        held_back = log.capability(HeldBack)
        if held_back is None or not await held_back.held_back():
            raise ApiError(
                422, f"position {position} is past the end of the log: no write was answered so"
            )
    if not await read_store.wait_for(name, wanted, max_wait):
        raise ApiError(
            503,
            f"the read model {name!r} has not reached position {position} within"
            f" {max_wait:g} s: retry later",
            error="read_model_behind",
            headers={"Retry-After": "1"},
        )

"""The JetStream stream a relay publishes to: created when missing (with its de-duplication
window and replicas), and checked to take every subject the relay publishes."""

from __future__ import annotations

from collections.abc import Sequence

import nats.js.errors
from nats.js import JetStreamContext, api


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: list[str],
    duplicate_window: float,
    *,
    create: bool = True,
    replicas: int = 1,
) -> list[str]:
    """Create the JetStream stream ``name`` for ``subjects``, kept on ``replicas`` servers of
    a cluster, unless it exists (or, with ``create`` false, raise NotFoundError); the
    subjects the stream takes."""
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        if not create:
            raise
    else:
        return list(info.config.subjects or [name])
    try:
        await js.add_stream(
            api.StreamConfig(
                name=name,
                subjects=subjects,
                storage=api.StorageType.FILE,
                duplicate_window=duplicate_window,
                num_replicas=replicas,
            )
        )
    except nats.js.errors.BadRequestError:
        # Created by another process meanwhile; else this raises.
        return list((await js.stream_info(name)).config.subjects or [name])
    return subjects


def takes_every(filters: Sequence[str], subject: str) -> bool:
    """Whether a stream with subject ``filters`` takes every ``{subject}.{category}.{type}``
    (``facta.>``, ``facta.*.*``, ``*.*.*`` and ``>`` do; ``facta.account.*`` does not)."""
    wanted = (subject, "*", "*")
    for tokens in (f.split(".") for f in filters):
        for i, token in enumerate(tokens):
            if token == ">" and i < len(wanted):
                return True
            if i >= len(wanted) or (token != "*" and token != wanted[i]):
                break
        else:
            if len(tokens) == len(wanted):
                return True
    return False

"""What every command shares, aggregate or decision: its metadata, its fingerprint, and the
ids of the events it causes (derived from its command id, so that a repeat is detectable)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from facta._formats import model_format
from facta._ids import new_uuid
from facta.domain import type_name

_COMMAND_NAMESPACE = uuid.UUID("6f1d8d2e-4a8f-4c1b-9a57-0b7f3d1c2e90")


def metadata(
    metadata: Mapping[str, Any] | None, command_id: str | None, fingerprint: str | None
) -> bytes:
    """The JSON metadata of a command's events: the caller's keys, a correlation id (the
    caller's, else the command id, else a new one), a causation id, and with a command id
    that id and the command's fingerprint."""
    if not metadata and command_id is None:  # the common case, without building a dict
        correlation = new_uuid()
        return b'{"correlation_id":"%s","causation_id":"%s"}' % ((correlation.encode(),) * 2)
    meta = dict(metadata or {})
    correlation = meta.setdefault("correlation_id", command_id or new_uuid())
    meta.setdefault("causation_id", command_id or correlation)
    if command_id is not None:
        meta["command_id"] = command_id
        meta["command_fingerprint"] = fingerprint
    return msgspec.json.encode(meta)


def fingerprint(command: object) -> str:
    """What tells one command from another under the same id: a digest of its JSON (its
    type and fields), 128 bits."""
    return hashlib.sha256(msgspec.json.encode(command, enc_hook=_model_json)).hexdigest()[:32]


def _model_json(value: Any) -> msgspec.Raw:
    """A pydantic command's tagged JSON, as msgspec writes a msgspec command's (msgspec
    calls this only for a class it does not know)."""
    found = model_format(type(value), type_name(type(value)))
    if found is None:
        raise TypeError(f"a command must be a msgspec or pydantic class, not {type(value)!r}")
    return msgspec.Raw(found.encode(value))


def event_id(stream_id: str, command_id: str, index: int) -> str:
    """The id of the ``index``-th event a command causes: derived, so a repeat is detectable."""
    return str(uuid.uuid5(_COMMAND_NAMESPACE, f"{stream_id}\n{command_id}\n{index}"))

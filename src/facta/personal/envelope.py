"""Personal fields in stored JSON: sealing one into an envelope, opening it again.

An envelope replaces the field's value in the event's JSON object with a string::

    "facta:pd1:<key id>:<base64 of nonce and AES-GCM ciphertext>:<base64 of the redacted JSON>"

The ciphertext is the field's JSON value, encrypted with its subject's key under a fresh
96-bit nonce, and authenticated together with the event id and the field name: an envelope
copied into another event, or another field, does not open (it reads as redacted), so a
writer cannot make a reader decrypt someone else's data under its own event. Opening needs no
event class: the envelope names its key and carries the value to read once the key is gone,
so the engine opens every read path (streams, the log, the relay, the feed) the same way.

Only top-level fields are sealed. The other fields' bytes pass through untouched (they are
handled as raw JSON), so an opened event's data is byte for byte the data that was sealed.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Sequence

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facta.store.base import Seal

PREFIX = "facta:pd1:"
MARKER = b'"' + PREFIX.encode()
"""How a sealed value starts in stored JSON: what readers look for before doing any work."""

NONCE_BYTES = 12

_KEY_IDS = re.compile(rb'"facta:pd1:([0-9a-f]{1,64}):')
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_encode = msgspec.json.encode

Cipher = Callable[[str], AESGCM | None]
"""The key of a key id, or None when it is gone (the subject was forgotten)."""


def _aad(event_id: str, field: str) -> bytes:
    return f"{event_id}/{field}".encode()


def seal(data: bytes, event_id: str, seals: Sequence[tuple[Seal, str, AESGCM]]) -> bytes:
    """``data`` with each sealed field's value replaced by its envelope, encrypted with the
    key (id, AES-GCM) given beside it. A field absent from ``data`` is left absent."""
    fields = _fields(data)
    for spec, key_id, cipher in seals:
        raw = fields.get(spec.field)
        if raw is None:
            continue
        nonce = os.urandom(NONCE_BYTES)
        box = cipher.encrypt(nonce, bytes(raw), _aad(event_id, spec.field))
        envelope = (
            f"{PREFIX}{key_id}:{base64.b64encode(nonce + box).decode()}"
            f":{base64.b64encode(spec.redacted).decode()}"
        )
        fields[spec.field] = msgspec.Raw(_encode(envelope))
    return _encode(fields)


def needle(key_id: str) -> bytes:
    """What the stored data of every field sealed under ``key_id`` contains."""
    return f"{PREFIX}{key_id}:".encode()


def key_ids(data: bytes) -> list[bytes]:
    """The key ids the envelopes of ``data`` name (as bytes; cheap: no JSON is parsed)."""
    return _KEY_IDS.findall(data)


def open_sealed(data: bytes, event_id: str, cipher: Cipher) -> bytes:
    """``data`` with every envelope replaced by the value it seals, or by its redacted value
    where the key is gone or the envelope does not authenticate. A string that only looks
    like an envelope (not five parts) is left as it is."""
    fields = _fields(data)
    for name, raw in fields.items():
        value = bytes(raw)
        if not value.startswith(MARKER):
            continue
        parts = value[1:-1].split(b":")
        if len(parts) != 5:
            continue
        plain = None
        key = cipher(parts[2].decode())
        if key is not None:
            box = base64.b64decode(parts[3])
            try:
                plain = key.decrypt(box[:NONCE_BYTES], box[NONCE_BYTES:], _aad(event_id, name))
            except InvalidTag:  # copied from elsewhere, or tampered with: never in clear
                plain = None
        fields[name] = msgspec.Raw(plain if plain is not None else base64.b64decode(parts[4]))
    return _encode(fields)

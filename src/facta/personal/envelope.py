"""Personal fields in stored JSON: sealing one into an envelope, opening it again.

An envelope replaces the field's value in the event's JSON object with a string::

    "facta:pd1:<key id>:<base64 of nonce and AES-GCM ciphertext>:<base64 of the redacted JSON>"

The ciphertext is the field's JSON value, encrypted with its subject's key under a fresh
96-bit nonce, and authenticated together with the event id and the field name: an envelope
copied into another event, or another field, does not open (it reads as redacted), so a
writer cannot make a reader decrypt someone else's data under its own event. Opening needs no
event class: the envelope names its key and carries the value to read once the key is gone,
so the engine opens every read path (streams, the log, the relay, the feed) the same way.

Only top-level fields are sealed. Opening splices the values back into the stored bytes
(found with ``bytes.find``, no JSON parsing: it is on every read), so an opened event's data
is byte for byte the data that was sealed.
"""

from __future__ import annotations

import binascii
import functools
import os
import re
from binascii import a2b_base64, b2a_base64
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facta.store.base import Seal

PREFIX = "facta:pd1:"
MARKER = b'"' + PREFIX.encode()
"""How a sealed value starts in stored JSON: what readers look for before doing any work."""

NONCE_BYTES = 12
_MARKER_LENGTH = len(MARKER)

_KEY_IDS = re.compile(rb'"facta:pd1:([0-9a-f]{1,64}):')
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_encode = msgspec.json.encode

MISSING: Any = object()
"""What a key lookup returns for a key it does not know yet (as opposed to None: gone)."""

Cipher = Callable[[bytes], Any]
"""The key of a key id (ASCII bytes): its AESGCM, None when it is gone (the subject was
forgotten), or MISSING when the caller must read it first."""


def seal(data: bytes, event_id: str, seals: Sequence[tuple[Seal, str, AESGCM]]) -> bytes:
    """``data`` with each sealed field's value replaced by its envelope, encrypted with the
    key (id, AES-GCM) given beside it. A field absent from ``data`` is left absent."""
    fields = _fields(data)
    for spec, key_id, cipher in seals:
        raw = fields.get(spec.field)
        if raw is None:
            continue
        nonce = os.urandom(NONCE_BYTES)
        box = cipher.encrypt(nonce, bytes(raw), f"{event_id}/{spec.field}".encode())
        envelope = b'"%s%s:%s:%s"' % (
            PREFIX.encode(),
            key_id.encode(),
            b2a_base64(nonce + box, newline=False),
            _redacted(spec.redacted),
        )
        fields[spec.field] = msgspec.Raw(envelope)
    return _encode(fields)


@functools.lru_cache(maxsize=1024)
def _redacted(value: bytes) -> bytes:
    return b2a_base64(value, newline=False)


def needle(key_id: str) -> bytes:
    """What the stored data of every field sealed under ``key_id`` contains."""
    return f"{PREFIX}{key_id}:".encode()


def key_ids(data: bytes) -> list[bytes]:
    """The key ids the envelopes of ``data`` name (as bytes; cheap: no JSON is parsed)."""
    return _KEY_IDS.findall(data)


def open_sealed(data: bytes, event_id: str, cipher: Cipher) -> bytes | None:
    """``data`` with every envelope replaced by the value it seals, or by its redacted value
    where the key is gone or the envelope does not authenticate; None when ``cipher`` says a
    key is MISSING (read it, then open again). A string that only looks like an envelope is
    left as it is.

    Found with ``bytes.find`` and sliced, not parsed: this runs for every sealed event read.
    An envelope is a field's value, so ``":`` precedes it; inside a JSON string every quote
    is escaped, so the marker found there is preceded by a backslash and skipped.
    """
    pieces: list[bytes] = []
    done = 0
    at = data.find(MARKER)
    event = event_id.encode()
    while at >= 0:
        # "name":"facta:pd1:<key id>:<box>:<redacted>": a field's value, its parts split by
        # colons, which neither hex nor base64 holds.
        start = at + _MARKER_LENGTH
        end = data.find(b'"', start)  # hex and base64 hold no quote: the string's end
        key_end = data.find(b":", start, end) if end > 0 else -1
        box_end = data.find(b":", key_end + 1, end) if key_end > 0 else -1
        if box_end < 0 or data[at - 2 : at] != b'":':
            at = data.find(MARKER, at + 1)
            continue
        key = cipher(data[start:key_end])
        if key is MISSING:
            return None
        name = data[data.rfind(b'"', 0, at - 2) + 1 : at - 2]
        try:
            value = None
            if key is not None:
                box = a2b_base64(data[key_end + 1 : box_end], strict_mode=True)
                aad = b"%s/%s" % (event, name)
                try:
                    value = key.decrypt(box[:NONCE_BYTES], box[NONCE_BYTES:], aad)
                except InvalidTag:  # copied from elsewhere, or tampered with: never in clear
                    value = None
            if value is None:
                value = a2b_base64(data[box_end + 1 : end], strict_mode=True)
            if not value:
                raise binascii.Error("an empty value")
        except binascii.Error:  # not base64: not an envelope after all
            at = data.find(MARKER, at + 1)
            continue
        pieces += (data[done:at], value)
        done = end + 1
        at = data.find(MARKER, done)
    if not pieces:
        return data
    pieces.append(data[done:])
    return b"".join(pieces)

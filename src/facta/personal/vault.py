"""The vault: data subjects' keys, cached, made on first use, unwrapped by the master key,
and the sealing and opening of whole events with them.

Keys are AES-256-GCM keys, one live key per subject, stored by the engine (its
:class:`~facta.store.keys.KeyStore`). With a master key configured, a new key is stored
wrapped by it (AES-GCM, authenticated with the key id), so that a copy of the database alone
decrypts nothing. The cache keeps a key for ``cache_seconds`` after it was read: the process
that forgets a subject drops its keys at once, and another process stops decrypting with a
forgotten key within that time. A key found gone is remembered as gone for good (a key id is
never used again).
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facta.errors import PersonalDataLocked
from facta.personal.envelope import (
    MARKER,
    MISSING,
    NONCE_BYTES,
    Cipher,
    key_ids,
    open_sealed,
    seal,
)
from facta.store.base import NewEvent, RecordedEvent, Seal
from facta.store.keys import KeyStore, SubjectKey

MASTER_KEY_BYTES = 32


def master_key_from(text: str) -> bytes:
    """A master key from its configured form: 32 bytes in base64 (``facta.personal.new_master_key``
    makes one). ValueError for anything else."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise ValueError("the master key must be 32 bytes in base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise ValueError(f"the master key must be 32 bytes in base64, not {len(key)} bytes")
    return key


def new_master_key() -> str:
    """A new random master key in its configured form (base64 of 32 bytes)."""
    return base64.b64encode(os.urandom(MASTER_KEY_BYTES)).decode()


class Vault:
    """Seals personal fields on append and opens them on read, for one engine's key store."""

    def __init__(self, keys: KeyStore, *, cache_seconds: float = 5.0) -> None:
        self.keys = keys
        self.cache_seconds = cache_seconds
        self._master: AESGCM | None = None
        # key id (ASCII bytes, as envelopes name it) -> (its cipher, or None once gone; when
        # to read it again)
        self._ciphers: dict[bytes, tuple[AESGCM | None, float]] = {}
        # subject -> (its live key's id, cipher, when to read it again)
        self._live: dict[str, tuple[str, AESGCM, float]] = {}

    def use_master_key(self, key: bytes | None) -> None:
        """Wrap new keys with ``key`` (32 bytes) and unwrap stored ones with it; None: store
        new keys unwrapped (wrapped ones then cannot be read: PersonalDataLocked)."""
        if key is not None and len(key) != MASTER_KEY_BYTES:
            raise ValueError(f"the master key must be {MASTER_KEY_BYTES} bytes, not {len(key)}")
        self._master = None if key is None else AESGCM(key)
        self._ciphers.clear()
        self._live.clear()

    # -- keys ------------------------------------------------------------------------------

    def _unwrap(self, key: SubjectKey) -> AESGCM:
        if not key.wrapped:
            return AESGCM(key.material)
        if self._master is None:
            raise PersonalDataLocked(key.key_id, "it is wrapped and no master key is configured")
        nonce, box = key.material[:NONCE_BYTES], key.material[NONCE_BYTES:]
        try:
            return AESGCM(self._master.decrypt(nonce, box, key.key_id.encode()))
        except InvalidTag:
            raise PersonalDataLocked(
                key.key_id, "the master key is not the one it was wrapped with"
            ) from None

    def _candidate(self, subject: str) -> SubjectKey:
        key_id, material = uuid.uuid4().hex, AESGCM.generate_key(bit_length=256)
        wrapped = self._master is not None
        if self._master is not None:
            nonce = os.urandom(NONCE_BYTES)
            material = nonce + self._master.encrypt(nonce, material, key_id.encode())
        return SubjectKey(key_id, subject, material, wrapped, time.time())

    async def _live_key(self, subject: str, now: float) -> tuple[str, AESGCM]:
        cached = self._live.get(subject)
        if cached is not None and cached[2] > now:
            return cached[0], cached[1]
        stored = await self.keys.subject_key(self._candidate(subject))
        cipher = self._unwrap(stored)
        until = now + self.cache_seconds
        self._live[subject] = (stored.key_id, cipher, until)
        self._ciphers[stored.key_id.encode()] = (cipher, until)
        return stored.key_id, cipher

    async def _load(self, wanted: Iterable[bytes]) -> None:
        now = time.time()
        missing = {k for k in wanted if (c := self._ciphers.get(k)) is None or c[1] <= now}
        if not missing:
            return
        ids = sorted(k.decode() for k in missing)
        found = {key.key_id.encode(): key for key in await self.keys.keys(ids)}
        until = now + self.cache_seconds
        for key_id in missing:
            key = found.get(key_id)
            # A key gone is gone for good: remembered without expiry.
            self._ciphers[key_id] = (
                (None, float("inf")) if key is None else (self._unwrap(key), until)
            )

    def _lookup(self, now: float) -> Cipher:
        """The key lookup of one read: MISSING for a key not cached, or cached too long."""
        ciphers = self._ciphers

        def cipher(key_id: bytes) -> Any:
            entry = ciphers.get(key_id)
            return MISSING if entry is None or entry[1] <= now else entry[0]

        return cipher

    # -- events ----------------------------------------------------------------------------

    async def seal(self, stream_id: str, events: Sequence[NewEvent]) -> Sequence[NewEvent]:
        """``events`` with their personal fields encrypted (and ``personal`` emptied): the
        same list when none has any."""
        if not any(event.personal for event in events):
            return events
        now, sealed = time.time(), []
        for event in events:
            if not event.personal:
                sealed.append(event)
                continue
            keyed: list[tuple[Seal, str, AESGCM]] = []
            for spec in event.personal:
                key_id, cipher = await self._live_key(spec.subject or stream_id, now)
                keyed.append((spec, key_id, cipher))
            data = seal(event.data, event.event_id, keyed)
            sealed.append(msgspec.structs.replace(event, data=data, personal=()))
        return sealed

    async def open(self, records: list[RecordedEvent]) -> list[RecordedEvent]:
        """``records`` with their envelopes opened (or redacted where the key is gone): the
        same list when none has any. Keys not cached are read in one call, then used."""
        try:
            if not any(MARKER in record.data for record in records):
                return records
        except TypeError:  # text where bytes belong (a row written by hand): checked one by one
            pass
        opened: list[RecordedEvent] = []
        at = self._open_from(records, 0, self._lookup(time.time()), opened)
        if at is None:
            return opened
        # A key not cached: the keys of this record and of every one after it read in one
        # call, then on from this record (each record opened once, not again after the read).
        await self._load(
            k for r in records[at:] if isinstance(r.data, bytes) for k in key_ids(r.data)
        )
        loaded = self._lookup(-math.inf)  # what was just read, whatever the cache's age
        while (missing := self._open_from(records, at, loaded, opened)) is not None:
            opened.append(records[missing])  # a key it names could not be read: as it is
            at = missing + 1
        return opened

    def _open_from(
        self,
        records: Sequence[RecordedEvent],
        start: int,
        cipher: Cipher,
        opened: list[RecordedEvent],
    ) -> int | None:
        """Append ``records[start:]`` to ``opened``, opened with ``cipher``, up to the first
        that needs a key ``cipher`` says is MISSING: its index (None when there is none)."""
        replace = msgspec.structs.replace
        for i in range(start, len(records)):
            record = records[i]
            data = record.data
            if isinstance(data, bytes) and MARKER in data:
                plain = open_sealed(data, record.event_id, cipher)
                if plain is None:
                    return i
                record = replace(record, data=plain)
            opened.append(record)
        return None

    async def open_one(self, record: RecordedEvent | None) -> RecordedEvent | None:
        """One record opened (see :meth:`open`)."""
        if record is None or not isinstance(record.data, bytes) or MARKER not in record.data:
            return record
        return (await self.open([record]))[0]

    def open_cached(self, records: Sequence[RecordedEvent]) -> list[RecordedEvent]:
        """``records`` opened with the keys in the cache only, whatever their age (what an
        append's transaction hook gets: it cannot wait for a read, and the keys it sealed
        with are there); a field whose key is not cached reads as redacted."""
        ciphers = self._ciphers

        def cipher(key_id: bytes) -> Any:
            entry = ciphers.get(key_id)
            return None if entry is None else entry[0]

        opened: list[RecordedEvent] = []
        self._open_from(records, 0, cipher, opened)  # its cipher never says MISSING
        return opened

    def plain_result(
        self, sealed: Sequence[NewEvent], plain: Sequence[NewEvent], stored: Sequence[RecordedEvent]
    ) -> list[RecordedEvent] | None:
        """The records an append returned, with the data it sealed put back in clear: they
        are what was just written, so nothing needs opening. None when they are not (an
        append of event ids stored before returns the first append's records)."""
        if len(stored) != len(sealed):
            return None
        records, replace = [], msgspec.structs.replace
        for record, new, old in zip(stored, sealed, plain, strict=True):
            if record.data is not new.data and record.data != new.data:
                return None
            records.append(record if new is old else replace(record, data=old.data))
        return records

    def age_cached_keys(self) -> None:
        """Treat every cached key as read too long ago: each is read again before it opens
        or seals anything more (a subject was forgotten somewhere); one known gone stays so.
        Kept meanwhile for :meth:`open_cached`, which an append's hook uses with the keys it
        sealed with."""
        self._ciphers = {
            k: (c, until if c is None else 0.0) for k, (c, until) in self._ciphers.items()
        }
        self._live = {s: (k, c, 0.0) for s, (k, c, _) in self._live.items()}

    async def forget(self, subject: str) -> list[str]:
        """Delete ``subject``'s keys for good; returns their ids. From now on its sealed
        fields read as their redacted values (in other processes once their cache expires)."""
        deleted = await self.keys.delete_keys(subject)
        self._live.pop(subject, None)
        for key_id in deleted:
            self._ciphers[key_id.encode()] = (None, float("inf"))
        return deleted

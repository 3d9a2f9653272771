"""Checking, before a deploy, that every stored event still decodes with the current code."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from facta.codec import Codec
from facta.errors import FactaError
from facta.store.base import START, EventStore, Position


class Undecodable(msgspec.Struct, frozen=True):
    """The first stored event of a type that failed to decode, and why."""

    type: str
    schema_version: int
    stream_id: str
    version: int
    position: Position
    error: str


class VerificationReport(msgspec.Struct):
    """How many events of each stored type were read, which were skipped as deprecated, and
    the first failure of each failing type."""

    checked: int = 0
    by_type: dict[str, int] = msgspec.field(default_factory=dict)
    deprecated: dict[str, int] = msgspec.field(default_factory=dict)
    failures: dict[str, Undecodable] = msgspec.field(default_factory=dict)
    failure_counts: dict[str, int] = msgspec.field(default_factory=dict)
    gaps: dict[str, tuple[int, int]] = msgspec.field(default_factory=dict)
    """Streams whose versions skip: stream -> (version expected, version found), first only."""

    @property
    def ok(self) -> bool:
        """True when every event decoded (or was deliberately deprecated) and no stream's
        versions skip."""
        return not self.failures and not self.gaps


async def verify_events(
    store: EventStore,
    codec: Codec,
    *,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> VerificationReport:
    """Decode the whole log with ``codec`` (upcasters included) and report what fails, and
    check that every stream's versions run 1, 2, 3... without a gap.

    ``progress`` is called with the number of events read after each batch.
    """
    report = VerificationReport()
    position = START
    versions: dict[str, int] = {}
    while True:
        page = await store.read_all(after=position, limit=batch_size)
        for record in page:
            expected = versions.get(record.stream_id, 0) + 1
            if record.version != expected and record.stream_id not in report.gaps:
                report.gaps[record.stream_id] = (expected, record.version)
            versions[record.stream_id] = record.version
            kind = record.type
            report.by_type[kind] = report.by_type.get(kind, 0) + 1
            try:
                if codec.decode(record) is None:
                    report.deprecated[kind] = report.deprecated.get(kind, 0) + 1
            except FactaError as error:
                report.failure_counts[kind] = report.failure_counts.get(kind, 0) + 1
                report.failures.setdefault(
                    kind,
                    Undecodable(
                        kind,
                        record.schema_version,
                        record.stream_id,
                        record.version,
                        record.position,
                        str(error),
                    ),
                )
        report.checked += len(page)
        if progress is not None:
            progress(len(page))
        if len(page) < batch_size:
            return report
        position = page[-1].position

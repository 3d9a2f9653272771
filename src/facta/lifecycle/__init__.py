"""A log's data lifecycle beyond forgetting personal data (:mod:`facta.forgetting`):
deleting and truncating streams, retention rules and their scavenger, and archiving the
history of closed or old streams to cold storage that every read path reads through.

See the how-to page "Deleting, truncating and archiving streams".
"""

from facta.lifecycle.archiving import ArchiveRun, archive_status, archive_streams, readers_horizon
from facta.lifecycle.retention import (
    RetentionSet,
    Scavenge,
    retention_rules,
    retention_stream,
    scavenge,
    set_retention,
)
from facta.lifecycle.streams import Deletion, Truncation, delete_stream, truncate_stream
from facta.tombstones import StreamDeleted

__all__ = [
    "ArchiveRun",
    "Deletion",
    "RetentionSet",
    "Scavenge",
    "StreamDeleted",
    "Truncation",
    "archive_status",
    "archive_streams",
    "delete_stream",
    "readers_horizon",
    "retention_rules",
    "retention_stream",
    "scavenge",
    "set_retention",
    "truncate_stream",
]

"""A projection or policy as the runner drives it: its declarations checked and read once."""

from __future__ import annotations

from typing import Any

from facta.projections.handler import EventHandler
from facta.projections.policy import Policy
from facta.projections.projection import Projection, _NoDocument
from facta.store.base import RecordedEvent
from facta.store.documents import DocumentSpec
from facta.store.read_models import partition_of

Handler = Projection[Any] | Policy
"""What a runner runs."""

MAX_RETRIES = 10
"""The most retries a handler may ask for: with the back-off (0.1 s doubling to 5 s at
most) a failing event holds its projection up for under half a minute before it stops or
is parked."""


class Target:
    """A projection or policy as the runner drives it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        kind = type(handler)
        if not getattr(kind, "name", None):
            raise ValueError(f"{kind.__name__} has no name")
        if not kind.event_types:
            raise ValueError(f"{kind.__name__} handles no event types")
        if not isinstance(kind.retries, int) or not 0 <= kind.retries <= MAX_RETRIES:
            raise ValueError(f"{kind.__name__}.retries must be 0 to {MAX_RETRIES}")
        self.name: str = kind.name
        self.version: int = kind.version
        self.types = kind.type_names()
        self.policy = isinstance(handler, Policy)
        self.retries: int = kind.retries
        self.transient = kind.transient_errors
        # A policy retries whatever its handler raises (its commands meet the store's
        # troubles under many names); a projection only what is declared transient.
        self.retried = (Exception,) if self.policy else kind.transient_errors
        self.parks = kind.on_error == "park"
        self.partitions: int = kind.partitions
        self.partitioned_by_stream = kind.partition_key is EventHandler.partition_key
        if isinstance(handler, Projection):
            self.spec: DocumentSpec[Any] = handler.spec()
            self.uses_connection = kind.uses_connection  # type: ignore[union-attr]
            self.keyed = type(handler).key_of is not Projection.key_of
            self.has_setup = type(handler).setup is not Projection.setup
        else:
            self.spec = DocumentSpec(_NoDocument)
            self.uses_connection = self.keyed = self.has_setup = False

    def label(self, partition: int) -> str:
        """How a runner names one of its partitions in ``waiting`` and in its logs."""
        return self.name if self.partitions == 1 else f"{self.name}#{partition}"

    def in_partition(self, record: RecordedEvent, partition: int) -> bool:
        """Whether ``record`` belongs to ``partition`` of this target."""
        if self.partitions == 1:
            return True
        key = record.stream_id if self.partitioned_by_stream else self.handler.partition_key(record)
        return partition_of(key, self.partitions) == partition

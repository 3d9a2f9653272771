"""Projection: a read model fed by events, with a name, a version and the event types it wants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Generic

import msgspec

from facta.domain import Event
from facta.projections.handler import EventHandler
from facta.results import EventEnvelope
from facta.store.documents import D, DocumentSpec

if TYPE_CHECKING:
    from facta.projections.session import Session


class _NoDocument(msgspec.Struct, frozen=True):
    """The document type of a projection that keeps its own tables."""


class Projection(EventHandler, Generic[D]):
    """A read model: subclass it, set the class attributes, write ``handle``.

    ``name`` (lowercase identifier, at most 40 characters) names its storage; raise
    ``version`` when ``handle`` changes meaning: the runner then rebuilds the new version from
    the start of the log into new storage while the old one keeps answering, and switches
    when it has caught up. ``event_types`` are the event classes it receives (nothing else
    is read). ``document`` and ``indexes`` declare its documents (see DocumentSpec).

    ``on_error``: ``"stop"`` stops the projection at a failing event (visible in the status,
    restart after a fix); ``"park"`` records the event in the dead-letter table and goes on.
    Errors of the ``transient_errors`` types are retried ``retries`` times (at most 10) with
    back-off first; a parking projection never parks for one of them (an outage is not the
    event's fault): the runner tries again later from the checkpoint.
    ``uses_connection``: the handler writes its own SQL through ``session.connection``, so
    the runner opens the transaction before the batch (on SQLite, holding the write lock).
    """

    kind = "projection"
    document: ClassVar[type[Any]] = _NoDocument
    indexes: ClassVar[tuple[str, ...]] = ()
    uses_connection: ClassVar[bool] = False

    @classmethod
    def spec(cls) -> DocumentSpec[D]:
        """The document spec built from ``document`` and ``indexes``."""
        spec: DocumentSpec[D] | None = cls.__dict__.get("_spec")
        if spec is None:
            spec = DocumentSpec(cls.document, cls.indexes)
            cls._spec = spec  # type: ignore[attr-defined]
        return spec

    def key_of(self, envelope: EventEnvelope[Event]) -> str | None:
        """The key of the document ``envelope`` will touch, if known up front.

        When it returns a key, the runner loads the documents of a whole batch in one query
        before handling it (one round trip instead of one per event). Default: no hint.
        """
        return None

    async def setup(self, session: Session[D]) -> None:
        """Create what the projection keeps outside its documents (its own tables, named
        with ``session.table(...)``); runs once when its storage is created."""

    async def handle(self, envelope: EventEnvelope[Event], session: Session[D]) -> None:
        """Apply one event to the read model. Raise to fail it (see ``on_error``)."""
        raise NotImplementedError

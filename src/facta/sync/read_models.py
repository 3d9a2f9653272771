"""The query side for synchronous code: read models' documents and status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic

from facta.projections.projection import Projection
from facta.projections.read_store import Documents as AsyncDocuments
from facta.projections.read_store import ReadStore as AsyncReadStore
from facta.projections.status import DeadLetter, ProjectionStatus
from facta.store.base import Position
from facta.store.documents import D, Filters, Page
from facta.sync.engine import Engine


class Documents(Generic[D]):
    """Queries on one projection's documents, always against its active version
    (:class:`facta.projections.Documents`). Thread-safe."""

    def __init__(self, engine: Engine, documents: AsyncDocuments[D]) -> None:
        self._engine = engine
        self._documents = documents
        self.name = documents.name

    def get(self, key: str) -> D | None:
        """The document stored under ``key``, or None."""
        return self._engine.run(self._documents.get(key))

    def query(
        self,
        where: Filters | None = None,
        *,
        order_by: str = "key",
        descending: bool = False,
        after: str | None = None,
        limit: int = 50,
    ) -> Page[D]:
        """One page of the documents matching ``where``, ordered by ``order_by`` (an indexed
        field or ``"key"``); pass ``Page.next`` as ``after`` for the next page. Raises
        ValueError for a field that is not indexed, a bad value or operator, a limit outside
        1..1000 or a foreign cursor."""
        return self._engine.run(
            self._documents.query(
                where, order_by=order_by, descending=descending, after=after, limit=limit
            )
        )

    def count(self, where: Filters | None = None) -> int:
        """How many documents match ``where``."""
        return self._engine.run(self._documents.count(where))

    def sum(self, field: str, where: Filters | None = None) -> Any:
        """The sum of the indexed numeric ``field`` over the documents matching ``where``
        (ValueError for a field that is not numeric)."""
        return self._engine.run(self._documents.sum(field, where))


class ReadStore:
    """The read models kept in a synchronous engine's database: documents, status, dead
    letters (:class:`facta.projections.ReadStore`). Reads read models only, never the
    event log. Thread-safe; nothing to close (the connections are the engine's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._store = AsyncReadStore(engine.engine)

    def documents(self, projection: type[Projection[D]] | Projection[D]) -> Documents[D]:
        """Queries on ``projection``'s documents."""
        return Documents(self.engine, self._store.documents(projection))

    def status(self, name: str | None = None) -> list[ProjectionStatus]:
        """The status of every stored projection slot (or those of ``name``)."""
        return self.engine.run(self._store.status(name))

    def wait_for(self, name: str, position: Position, max_wait: float = 5.0) -> bool:
        """Wait until ``name``'s active slot has handled the log up to ``position`` (for
        read-your-writes after a command: ``CommandResult.position``); False if
        ``max_wait`` seconds passed first."""
        return self.engine.run(self._store.wait_for(name, position, max_wait))

    def dead_letters(self, name: str, limit: int = 100) -> list[DeadLetter]:
        """Events ``name`` parked, oldest first."""
        return self.engine.run(self._store.dead_letters(name, limit))

    def clear_dead_letters(self, name: str, event_ids: Sequence[str] | None = None) -> int:
        """Forget ``name``'s parked events (those of ``event_ids``, or all); how many."""
        return self.engine.run(self._store.clear_dead_letters(name, event_ids))

    def restart(self, name: str) -> int:
        """Clear a failed projection's error so that a runner takes it up again from its
        checkpoint; how many slots were failed."""
        return self.engine.run(self._store.restart(name))

"""The storage contracts as tests: what every engine, facta's or another package's, passes.

An engine's test module subclasses the contracts it implements and gives them a ``store``
fixture, an open and empty engine (closed afterwards)::

    import pytest
    from facta.store import open_store
    from facta.testing.conformance import EngineContract

    class TestMyEngine(EngineContract):
        @pytest.fixture
        async def store(self, tmp_path):
            engine = await open_store(f"mydb://{tmp_path}/test")
            yield engine
            await engine.close()

It needs pytest and pytest-asyncio with ``asyncio_mode = "auto"``. The contracts of optional
capabilities (:class:`SnapshotContract`, :class:`InlineTransactionContract`,
:class:`BoundaryContract`, :class:`PersonalDataContract`, :class:`ErasureContract`) skip
themselves on an engine that does not declare the capability.
"""

from facta.testing.conformance.boundaries import BoundaryContract
from facta.testing.conformance.checkpoints import RelayCheckpointContract
from facta.testing.conformance.erasure import ErasureContract
from facta.testing.conformance.events import (
    EventStoreContract,
    InlineTransactionContract,
    SnapshotContract,
)
from facta.testing.conformance.partitions import PartitionContract
from facta.testing.conformance.personal import PersonalDataContract
from facta.testing.conformance.read_models import ReadModelContract


class EngineContract(
    EventStoreContract,
    BoundaryContract,
    SnapshotContract,
    InlineTransactionContract,
    ReadModelContract,
    PartitionContract,
    RelayCheckpointContract,
    PersonalDataContract,
    ErasureContract,
):
    """Every storage contract at once: the event store, its optional capabilities (personal
    data's keys and erasure among them), read models (documents, the runner, leases,
    partitions) and relay checkpoints."""


__all__ = [
    "BoundaryContract",
    "EngineContract",
    "ErasureContract",
    "EventStoreContract",
    "InlineTransactionContract",
    "PartitionContract",
    "PersonalDataContract",
    "ReadModelContract",
    "RelayCheckpointContract",
    "SnapshotContract",
]

"""The benchmark workloads still run (on facta's side, at the smoke-test scale).

This times nothing: speed is measured by `make bench`, never in tests. It only keeps the
harness from rotting between benchmark runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.worker import target_for
from benchmarks.workloads import WORKLOADS, Scale


@pytest.mark.parametrize("workload", list(WORKLOADS))
@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_each_workload_runs_and_measures(workload: str, backend: str, tmp_path: Path) -> None:
    _, facta_side, _ = WORKLOADS[workload]
    assert facta_side is not None
    measurement = await facta_side(target_for(backend, tmp_path), Scale.named("quick"))
    assert measurement.value > 0
    assert measurement.seconds > 0


def test_the_sdk_floor_measures_both_calls() -> None:
    from benchmarks.telemetry import sdk_floor

    floor = sdk_floor(repeat=100)
    assert set(floor) == {"root span, dropped by the sampler", "histogram record"}
    assert all(micros > 0 for micros in floor.values())

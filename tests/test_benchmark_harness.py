"""The benchmark workloads still run (on facta's side, at the smoke-test scale).

This times nothing: speed is measured by `make bench`, never in tests. It only keeps the
harness from rotting between benchmark runs.
"""

from __future__ import annotations

import importlib.util
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


@pytest.mark.parametrize("workload", ["1-sequential", "7-bulk-append"])
def test_the_raw_limits_of_factas_own_schema_write_into_its_tables(
    workload: str, tmp_path: Path
) -> None:
    """The own-schema raw limits measure something, into a file whose events table has
    facta's keys and indexes (made by its migrations) and holds the rows they wrote."""
    import sqlite3

    from benchmarks.raw_limits import RAW_SCHEMA

    scale = Scale.named("quick")
    target = target_for("sqlite", tmp_path)
    measurement = RAW_SCHEMA[("sqlite", workload)](target, scale)
    assert measurement.value > 0
    connection = sqlite3.connect(target.facta_url.removeprefix("sqlite:///"))
    indexes = {
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    assert {"events_by_category", "events_by_type"} <= indexes
    [(rows, streams)] = connection.execute("SELECT count(*), count(DISTINCT stream_id) FROM events")
    assert rows == (scale.commands // 2 if workload == "1-sequential" else scale.commands * 2)
    assert streams > 1
    connection.close()


def test_the_sdk_floor_measures_both_calls() -> None:
    from benchmarks.telemetry import sdk_floor

    floor = sdk_floor(repeat=100)
    assert set(floor) == {"root span, dropped by the sampler", "histogram record"}
    assert all(micros > 0 for micros in floor.values())


def test_the_consistency_boundaries_benchmark_runs_quick_on_memory(tmp_path: Path) -> None:
    """benchmarks/dcb.py --quick on memory (beside eventsourcing's popo recorder when the
    bench extra is installed): every row measured, and every hot-tag round one commit."""
    from benchmarks import dcb

    libraries = "facta,eventsourcing" if importlib.util.find_spec("eventsourcing") else "facta"
    argv = ["--quick", "--stores", "memory", "--libraries", libraries, "--out", str(tmp_path)]
    result = dcb.run(argv)

    assert [r for r in result["rows"] if "error" in r] == []
    measured = {(r["library"], r["workload"]) for r in result["rows"]}
    workloads = {"read-append-1", "cond-append-1", "read-append-16", "hot-tag-16", "read-tag-10k"}
    assert measured >= {("facta", w) for w in workloads | {"plain-append-1"}}
    if "eventsourcing" in libraries:
        assert measured >= {("eventsourcing", w) for w in workloads}
    for row in result["rows"]:
        assert row["n"] > 0
        if row["workload"] == "hot-tag-16":
            assert row["extra"]["rounds_not_exactly_one"] == 0
            assert row["extra"]["timeouts"] == row["extra"]["errors"] == 0
    assert any(c["ratio"] == "facta cond-append-1 / plain-append-1" for c in result["ratios"])
    assert len(list(tmp_path.glob("dcb-raw-*.json"))) == 1


def test_the_sync_facade_benchmark_runs_quick_on_memory(tmp_path: Path) -> None:
    """benchmarks/sync_facade.py --quick on memory: every row measured, the ratio given."""
    from benchmarks import sync_facade

    result = sync_facade.run(["--quick", "--stores", "memory", "--out", str(tmp_path)])

    assert [r for r in result["rows"] if "error" in r] == []
    assert {r["workload"] for r in result["rows"]} == {
        "async-deposit",
        "sync-deposit",
        "sync-deposit-busy",
        "call",
        "hand-over",
    }
    assert all(r["value"] > 0 for r in result["rows"])
    assert any(c["ratio"].startswith("sync-deposit / async-deposit") for c in result["ratios"])
    assert len(list(tmp_path.glob("sync-raw-*.json"))) == 1


def test_the_pydantic_codec_benchmark_runs_quick_on_memory(tmp_path: Path) -> None:
    """benchmarks/pydantic_codec.py --quick on memory: both models measured on both
    workloads, and the ratios computed (no timing is asserted)."""
    from benchmarks import pydantic_codec

    result = pydantic_codec.run(["--quick", "--stores", "memory", "--out", str(tmp_path)])

    measured = {(r["model"], r["workload"]) for r in result["rows"]}
    assert measured == {(m, w) for m in ("msgspec", "pydantic") for w in ("execute", "replay")}
    assert all(r["value"] > 0 and r["n"] > 0 for r in result["rows"])
    assert {c["ratio"] for c in result["ratios"]} == {
        f"{workload}{cpu}: pydantic / msgspec"
        for workload in ("execute", "replay")
        for cpu in ("", " CPU")
    }
    assert len(list(tmp_path.glob("pydantic-raw-*.json"))) == 1


@pytest.mark.serial  # it holds a transaction open, which holds back every reader's events
def test_the_partitions_benchmark_runs_quick_on_postgres(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """benchmarks/partitions.py --quick, CPU-bound workload: one and two worker processes
    share the partitions, every stream's document is exact, and the ratio is computed (no
    timing is asserted)."""
    import asyncio

    import asyncpg
    from benchmarks import partitions

    from tests.conftest import POSTGRES_URL, service_missing

    async def reachable() -> bool:
        try:
            await (await asyncpg.connect(POSTGRES_URL)).close()
        except (OSError, asyncpg.PostgresError):
            return False
        return True

    if not asyncio.run(reachable()):
        service_missing(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    monkeypatch.setattr(partitions, "PG_DSN", POSTGRES_URL)

    result = partitions.run(["--quick", "--workloads", "cpu", "--out", str(tmp_path)])

    assert [r for r in result["rows"] if "error" in r] == []
    assert [(r["workers"], sorted(r["layout"].values())) for r in result["rows"]] == [
        (1, [8]),
        (2, [4, 4]),
    ]
    assert all(r["streams_exact"] == r["streams"] and r["events_per_s"] > 0 for r in result["rows"])
    assert [(c["workload"], c["workers"]) for c in result["ratios"]] == [("cpu", 1), ("cpu", 2)]
    assert result["ratios"][1]["vs_one_worker"] > 0
    assert len(list(tmp_path.glob("partitions-raw-*.json"))) == 1

"""``facta bench``: run the benchmark suite (``benchmarks/run.py`` of a facta checkout),
facta beside the `eventsourcing` library, and write the results table and chart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from facta.cli._common import StoreError


def find_suite(start: Path) -> Path | None:
    """``benchmarks/run.py`` in ``start`` or a folder above it, else beside the installed
    facta (an editable install from a checkout)."""
    here = Path(__file__).resolve()
    for folder in [start, *start.parents, *here.parents]:
        candidate = folder / "benchmarks" / "run.py"
        if candidate.is_file():
            return candidate
    return None


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--runs", default=3, show_default=True, type=click.IntRange(1, 50))
@click.option("--scale", default="full", show_default=True, type=click.Choice(["full", "quick"]))
@click.option(
    "--backends", default="memory,sqlite,postgres", show_default=True, help="Comma-separated."
)
@click.option("--workloads", default=None, help="Comma-separated (default: all).")
def bench(runs: int, scale: str, backends: str, workloads: str | None) -> None:
    """Run the benchmark suite, facta beside `eventsourcing`, and write the results.

    Needs a source checkout (the suite lives in benchmarks/) and the bench extra:
    pip install -e '.[all,bench]'. PostgreSQL runs use the server at 127.0.0.1:5432
    (FACTA_BENCH_POSTGRES overrides it).
    """
    suite = find_suite(Path.cwd())
    if suite is None:
        raise StoreError(
            "no benchmarks/run.py here or above: run facta bench in a facta source checkout"
        )
    command = [sys.executable, str(suite), "--runs", str(runs), "--scale", scale]
    command += ["--backends", backends]
    if workloads:
        command += ["--workloads", workloads]
    raise SystemExit(subprocess.call(command, cwd=suite.parent.parent))


command = bench

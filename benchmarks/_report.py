"""What the issue benchmarks (dcb, sync_facade, pydantic_codec, partitions) share: the choice
of stores on the command line, the facts of a run (machine, load average), and where results
go: every run's raw JSON under ``--out``, and a complete run's kept beside the scripts."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def store_options(parser: argparse.ArgumentParser, stores: Sequence[str], rounds: str) -> None:
    """The options the per-store benchmarks share: ``--stores``, ``--rounds`` (``rounds``
    says of what), ``--quick`` and ``--out``."""
    parser.add_argument("--stores", default=",".join(stores))
    parser.add_argument("--rounds", type=int, default=5, help=rounds)
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke test")
    parser.add_argument("--out", default=str(HERE / "results"))


def chosen(option: str, value: str, known: Sequence[str]) -> list[str]:
    """The comma-separated names of ``value``, each one of ``known``; exits naming them
    otherwise."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names or any(name not in known for name in names):
        sys.exit(f"{option}: choose from {','.join(known)}")
    return names


def version(package: str) -> str | None:
    """The installed version of ``package``, None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_facts(load_before: float, **more: Any) -> dict[str, Any]:
    """The run's date, machine and load average before and now (other work on the machine
    skews every figure), with ``more``."""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%M%SZ"),
        "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
        "cores": os.cpu_count(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **more,
    }


def save(name: str, result: dict[str, Any], markdown: str, *, out: str, keep: bool) -> None:
    """Print ``markdown``; write the raw result as ``{out}/{name}-raw-{date}.json``, and
    with ``keep`` (a complete run) as ``{name}-results.json`` and ``{NAME}-RESULTS.md`` here."""
    print()
    print(markdown)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(result, indent=1)
    (folder / f"{name}-raw-{result['meta']['date']}.json").write_text(raw)
    if keep:
        (HERE / f"{name}-results.json").write_text(raw)
        (HERE / f"{name.upper()}-RESULTS.md").write_text(markdown)


def exit_if_failed(result: dict[str, Any]) -> None:
    """Exit non-zero when a row failed (its error was printed as it happened)."""
    failed = [row for row in result["rows"] if "error" in row]
    if failed:
        sys.exit(f"{len(failed)} of {len(result['rows'])} rows failed (their errors are above)")

"""Run the benchmark suite: every workload on every backend, facta beside `eventsourcing`.

    python benchmarks/run.py [--runs 3] [--scale full|quick] [--backends sqlite,postgres]
                             [--workloads 1-sequential,5-read-log] [--out benchmarks/results]

Each (library, backend, workload, run) is a fresh process (benchmarks/worker.py). Writes the
raw runs as JSON, a Markdown table of medians and ratios (benchmarks/RESULTS.md for full
runs), and a PNG chart of the ratios.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.raw_limits import RAW, RAW_SCHEMA  # noqa: E402
from benchmarks.workloads import WORKLOADS  # noqa: E402

# facta / eventsourcing targets from issue 8 (for "ms" rows: eventsourcing / facta).
TARGETS: dict[tuple[str, str], float] = {
    ("1-sequential", "sqlite"): 4,
    ("1-sequential", "postgres"): 4.5,
    ("2-concurrent", "sqlite"): 20,
    ("2-concurrent", "postgres"): 30,
    ("4a-load", "sqlite"): 8,
    ("4a-load", "postgres"): 7.5,
    ("5-read-log", "sqlite"): 4,
    ("5-read-log", "postgres"): 3,
    ("6-projection", "sqlite"): 15,
    ("6-projection", "postgres"): 20,
}
LIBRARIES = ("facta", "eventsourcing", "raw", "raw-schema")
BACKENDS = ("memory", "sqlite", "postgres")


def chosen(option: str, value: str, known: Sequence[str]) -> list[str]:
    """The comma-separated names of ``value``; exits with one line naming the known ones
    if any is not among them (before anything runs)."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        what = f"unknown {option} {', '.join(map(repr, unknown))}" if unknown else f"no {option}"
        sys.exit(f"{what}: choose from {','.join(known)}")
    return names


def run_one(library: str, backend: str, workload: str, scale: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="facta-bench-") as scratch:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.worker", library, backend, workload, scale, scratch],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", default="full", choices=["full", "quick"])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    workloads = chosen("--workloads", args.workloads, list(WORKLOADS))
    backends = chosen("--backends", args.backends, BACKENDS)
    libraries = chosen("--libraries", args.libraries, LIBRARIES)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, Any]] = []
    for workload in workloads:
        for backend in backends:
            for run in range(1, args.runs + 1):
                for library in libraries:
                    if library == "raw" and (backend, workload) not in RAW:
                        continue
                    if library == "raw-schema" and (backend, workload) not in RAW_SCHEMA:
                        continue
                    result = run_one(library, backend, workload, args.scale)
                    row = {"workload": workload, "backend": backend, "library": library}
                    rows.append({**row, "run": run, **result})
                    shown = result.get("error") or f"{result['value']:,.1f} {result['unit']}"
                    print(f"{workload:18} {backend:9} {library:14} run {run}: {shown}", flush=True)

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    meta = {
        "date": stamp,
        "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
        "scale": args.scale,
        "runs": args.runs,
    }
    raw = {"meta": meta, "rows": rows}
    (out / f"raw-{stamp}.json").write_text(json.dumps(raw, indent=1))
    print(publish(raw, out))
    complete = (
        args.workloads == ",".join(WORKLOADS)
        and args.backends == parser.get_default("backends")
        and args.libraries == ",".join(LIBRARIES)
    )
    if complete and args.scale == "full" and args.runs >= 3:  # a whole measurement: kept
        (HERE / "results.json").write_text(json.dumps(raw, indent=1))
        publish(raw, HERE)
    failed = sum("error" in row for row in rows)
    if failed:
        sys.exit(f"{failed} of {len(rows)} runs failed (their errors are above)")


def publish(raw: dict[str, Any], folder: Path) -> str:
    """Write RESULTS.md and ratios.png for the raw runs into ``folder``; the Markdown."""
    table = summarise(raw["rows"])
    markdown = render(raw["meta"], table)
    (folder / "RESULTS.md").write_text(markdown)
    chart(table, folder / "ratios.png")
    return markdown


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        if "error" in row:
            continue
        key = (row["workload"], row["backend"])
        groups.setdefault(key, {}).setdefault(row["library"], []).append(row)
    table = []
    for (workload, backend), by_library in groups.items():
        entry: dict[str, Any] = {"workload": workload, "backend": backend}
        for library, runs in by_library.items():
            entry[library] = statistics.median(r["value"] for r in runs)
            entry[f"{library}_mb"] = statistics.median(r["peak_mb"] for r in runs)
            entry.setdefault("unit", runs[0]["unit"])
        facta, es = entry.get("facta"), entry.get("eventsourcing")
        if facta and es:
            lower_is_better = entry["unit"] == "ms"
            entry["ratio"] = es / facta if lower_is_better else facta / es
        if facta and entry.get("raw"):
            entry["of_raw"] = facta / entry["raw"]
        if facta and entry.get("raw-schema"):
            entry["of_raw_schema"] = facta / entry["raw-schema"]
        entry["target"] = TARGETS.get((workload, backend))
        table.append(entry)
    return table


RAW_SHARE_TARGET = 0.8
"""Sequential commands and the whole-log read should reach this share of the raw limit."""


RAW_SCHEMA_SHARE_TARGET = 0.85
"""Issue 27: sequential commands and bulk appends on SQLite should reach this share of the
raw limit of facta's own schema (its keys and indexes)."""


def _raw_mark(entry: dict[str, Any]) -> str:
    return " ✅" if entry["of_raw"] >= RAW_SHARE_TARGET else " ❌"


def _schema_share(entry: dict[str, Any]) -> str:
    share = entry.get("of_raw_schema")
    if share is None:
        return ""
    return f"{100 * share:,.1f} %" + (" ✅" if share >= RAW_SCHEMA_SHARE_TARGET else " ❌")


def render(meta: dict[str, Any], table: list[dict[str, Any]]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"{meta['date']} · {meta['machine']} · scale {meta['scale']} · median of {meta['runs']}"
        " runs, each in a fresh process · ratio = how many times better facta did than"
        " `eventsourcing` 9.5.6 in the same run (for ms rows: eventsourcing ÷ facta)",
        "",
        "| workload | backend | unit | facta | eventsourcing | ratio | target | raw limit"
        " | facta / raw | raw, own schema | facta / own schema | facta MB | eventsourcing MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def number(value: Any, digits: int = 1) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    for e in table:
        target = e.get("target")
        ratio = e.get("ratio")
        met = "" if target is None or ratio is None else (" ✅" if ratio >= target else " ❌")
        lines.append(
            f"| {e['workload']} | {e['backend']} | {e.get('unit', '')} | {number(e.get('facta'))}"
            f" | {number(e.get('eventsourcing'))} | {number(ratio, 2)}x{met}"
            f" | {'>= ' + number(target, 1) + 'x' if target else ''} | {number(e.get('raw'))}"
            f" | {number(100 * e['of_raw'], 1) + ' %' + _raw_mark(e) if e.get('of_raw') else ''}"
            f" | {number(e.get('raw-schema'))} | {_schema_share(e)}"
            f" | {number(e.get('facta_mb'))} | {number(e.get('eventsourcing_mb'))} |"
        )
    lines += [
        "",
        "raw limit: single-row transactions (the whole-log read: fetch and decode) with the"
        " same driver, into a table with no index; raw, own schema: the same into facta's own"
        " events table, made by its migrations (its keys and indexes), and for the bulk"
        " workload transactions of as many rows as facta's appends hold.",
        "",
        "![facta ÷ eventsourcing](ratios.png)",
        "",
    ]
    return "\n".join(lines)


def chart(table: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the chart is optional; the table is the record
        return
    entries = [e for e in table if e.get("ratio")]
    if not entries:
        return
    labels = [f"{e['workload']} · {e['backend']}" for e in entries]
    figure, axis = plt.subplots(figsize=(10, 0.4 * len(entries) + 1.5))
    axis.barh(labels, [e["ratio"] for e in entries], color="#3b7dd8")
    for index, e in enumerate(entries):
        if e.get("target"):
            axis.plot([e["target"]] * 2, [index - 0.4, index + 0.4], color="#d83b3b")
    axis.axvline(1, color="black", linewidth=0.8)
    axis.set_xscale("log")
    axis.set_xlabel("facta ÷ eventsourcing (log scale; red: target)")
    axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()

"""What each operation costs as the log grows (issue: logs of 1, 10 and 50 million events),
facta beside the ``eventsourcing`` library, on SQLite and PostgreSQL at 127.0.0.1.

    python benchmarks/growth.py [--sizes 1000000,10000000,50000000] [--stores sqlite,postgres]
                                [--libraries facta,eventsourcing] [--es-sizes 1000000,10000000]
                                [--commands 2000] [--requests 300] [--catch-up 1000000]
                                [--es-catch-up 100000] [--out benchmarks/results]

Each log is bank events, bulk-filled once and kept (``benchmarks/growth_fill.py`` says how and
where; the fill's time is printed and recorded). At each size, each library is measured in a
fresh process (``benchmarks/growth_measure.py`` says what and how): deposit commands from one
client and from 64 (the application's cache cold, then warm), loading a 10,000-event stream
without and with a snapshot, one category read from the middle of the log and the whole log
read (events/s), a projection caught up on the last 1,000,000 events, a page of ``GET
/accounts/{id}/events`` and of ``GET /events`` over HTTP (p50 and p99), the bytes per event
of the log's tables and indexes, and the peak memory of the measuring process.

eventsourcing runs at ``--es-sizes`` (default: every size but the largest). Its projection
commits each event in a transaction of its own (as its ProjectionRunner does), about a
thousand events a second here: it catches up the last ``--es-catch-up`` events only.

Targets: every per-operation cost at the largest size within 1.2x of its cost at the
smallest; bytes per event no more than eventsourcing's on the same events; memory that does
not grow with the log. A run of the default sizes, stores and libraries writes
benchmarks/GROWTH.md, benchmarks/growth-results.json and benchmarks/growth.png; every run
writes its raw JSON (and its chart) under ``--out``.

A full run fills about 61 million facta events and 11 million eventsourcing ones per store:
some 60 GB of disk, and hours (the 50 million-event fills most of it; a fill is reused by
later runs). Tiny sizes make a smoke test: ``--sizes 20000,40000``. Where the disk holds one
store's largest log at a time, run each store alone (``--stores sqlite``, drop its fills,
``--stores postgres``), then ``python benchmarks/growth.py --combine RAW.json RAW.json``
writes the kept page from their raw JSON: each store's rows from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._report import chosen, run_facts, save  # noqa: E402
from benchmarks.growth_fill import LAYOUT, Layout, sealed_overhead  # noqa: E402

SIZES = "1000000,10000000,50000000"
STORES = ("sqlite", "postgres")
LIBRARIES = ("facta", "eventsourcing")
TARGET = 1.2

# key, label, unit, whether more is better (a rate: its cost is its inverse)
MEASURES: list[tuple[str, str, str, bool]] = [
    ("seq_cold", "deposits, 1 client, cache cold", "cmd/s", True),
    ("seq_warm", "deposits, 1 client, cache warm", "cmd/s", True),
    ("c64_cold", "deposits, 64 clients, cache cold", "cmd/s", True),
    ("c64_warm", "deposits, 64 clients, cache warm", "cmd/s", True),
    ("load_ms", "load 10,000-event stream", "ms", False),
    ("load_snapshot_ms", "load it with a snapshot", "ms", False),
    ("category_eps", "read one category from a position", "events/s", True),
    ("log_eps", "read the whole log", "events/s", True),
    ("projection_eps", "projection catch-up", "events/s", True),
    ("stream_page_p50", "GET /accounts/{id}/events p50", "ms", False),
    ("stream_page_p99", "GET /accounts/{id}/events p99", "ms", False),
    ("feed_page_p50", "GET /events page p50", "ms", False),
    ("feed_page_p99", "GET /events page p99", "ms", False),
]

MEMORY = [
    ("rss_mb", "memory of the measuring process", "MB peak", False),
    ("server_rss_mb", "memory of `facta serve`", "MB peak", False),
]


def worker(action: str, library: str, store: str, size: int, args: argparse.Namespace) -> Any:
    """``benchmarks.growth_measure`` in a process of its own; its JSON answer."""
    catch_up = args.es_catch_up if library == "eventsourcing" else args.catch_up
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.growth_measure",
            action,
            library,
            store,
            str(size),
            args.out,
            str(args.commands),
            str(args.requests),
            str(catch_up),
        ],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": f"{action} failed (exit {done.returncode}; its traceback is above)"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace, sizes: list[int], es_sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for store in chosen("--stores", args.stores, STORES):
        for size in sizes:
            for library in chosen("--libraries", args.libraries, LIBRARIES):
                if library == "eventsourcing" and size not in es_sizes:
                    continue
                name = f"{library} {store} {size:,} events"
                fill = worker("fill", library, store, size, args)
                if "error" in fill:
                    print(f"{name}: {fill['error']}", flush=True)
                    rows.append({"library": library, "store": store, "size": size, **fill})
                    continue
                rate = size / max(fill["seconds"], 0.001)
                how = "kept from an earlier run, filled" if fill["reused"] else "filled"
                print(
                    f"{name}: {how} in {_number(fill['seconds'])} s ({rate:,.0f} events/s)",
                    flush=True,
                )
                row = worker("measure", library, store, size, args)
                print(f"  {row}", flush=True)
                if "error" not in row:  # the measure found the fill this run made, or kept
                    row["fill_reused"] = fill["reused"]
                rows.append({"library": library, "store": store, "size": size, **row})
    return rows


def _short(size: int) -> str:
    return f"{size // 1_000_000}M" if size % 1_000_000 == 0 else f"{size // 1000}k"


def _cost_ratio(row: dict[str, Any], base: dict[str, Any], key: str, rate: bool) -> float | None:
    """This size's cost of one operation over the smallest size's (a rate's inverse)."""
    value, first = row.get(key), base.get(key)
    if not value or not first:
        return None
    return float(first / value if rate else value / first)


def _mark(ratio: float | None) -> str:
    return "" if ratio is None else (" ✅" if ratio <= TARGET else " ❌")


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def tables(rows: list[dict[str, Any]]) -> list[str]:
    """Per store: each measure by library and size, with each size's cost over the smallest
    size's; then bytes per event and memory."""
    lines: list[str] = []
    good = [r for r in rows if "error" not in r]
    for store in dict.fromkeys(r["store"] for r in good):
        by = {(r["library"], r["size"]): r for r in good if r["store"] == store}
        columns = sorted(by, key=lambda c: (LIBRARIES.index(c[0]), c[1]))
        header = " | ".join(f"{library} {_short(size)}" for library, size in columns)
        lines += [
            f"### {store}",
            "",
            "Each cell: the measure, and after the smallest size its cost per operation over"
            f" the smallest size's (target at most {TARGET}x, marked on the largest).",
            "",
            f"| measure | unit | {header} |",
            "|---|---|" + "---:|" * len(columns),
        ]
        lines += [_line(measure, columns, by) for measure in MEASURES]
        lines.append(_bytes_line(columns, by))
        lines += [_line(measure, columns, by) for measure in MEMORY]
        work = " | ".join(
            f"{by[c]['commands']:,} · {Layout.of(c[1]).long:,} · {by[c]['category_events']:,}"
            f" · {by[c]['projection_events']:,}"
            for c in columns
        )
        fills = " | ".join(
            _number(by[c]["fill_seconds"]) + (" (kept)" if by[c]["fill_reused"] else "")
            for c in columns
        )
        lines += [
            f"| filling the log (rows, indexes, statistics) | s | {fills} |",
            "| deposits per pass · stream loaded · category events read · events caught up"
            f" | events | {work} |",
            "",
        ]
    return lines


def _line(
    measure: tuple[str, str, str, bool],
    columns: list[tuple[str, int]],
    by: dict[tuple[str, int], dict[str, Any]],
) -> str:
    """A measure's row: each column's value and, after a library's smallest size, its cost
    over that size's (marked against the target at the library's largest size)."""
    key, label, unit, rate = measure
    base: dict[str, dict[str, Any]] = {}  # each library's smallest size
    last: dict[str, tuple[str, int]] = {}  # and its largest
    for library, size in columns:
        base.setdefault(library, by[library, size])
        last[library] = (library, size)
    cells = []
    for library, size in columns:
        row = by[library, size]
        value = row.get(key)
        ratio = _cost_ratio(row, base[library], key, rate)
        cell = "-" if value is None else _number(value)
        if value is not None and base[library] is not row and ratio is not None:
            marked = _mark(ratio) if last[library] == (library, size) else ""
            cell += f" ({ratio:.2f}x{marked})"
        cells.append(cell)
    return f"| {label} | {unit} | {' | '.join(cells)} |"


def _bytes_line(columns: list[tuple[str, int]], by: dict[tuple[str, int], Any]) -> str:
    """Bytes per event, table + indexes; facta's marked against eventsourcing's."""
    cells = []
    for library, size in columns:
        row = by[library, size]
        table, index = row["table_bytes_per_event"], row["index_bytes_per_event"]
        cell = f"{table:,.0f} + {index:,.0f} = {table + index:,.0f}"
        other = by.get(("eventsourcing", size))
        if library == "facta" and other is not None:
            theirs = other["table_bytes_per_event"] + other["index_bytes_per_event"]
            cell += " ✅" if table + index <= theirs else " ❌"
        cells.append(cell)
    return f"| disk per event, table + indexes | bytes | {' | '.join(cells)} |"


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    sizes = ", ".join(f"{s:,}" for s in meta["sizes"])
    layouts = [Layout.of(s) for s in meta["sizes"]]
    es_sizes = ", ".join(f"{s:,}" for s in meta["es_sizes"])
    es_sizes = f" (eventsourcing at {es_sizes})" if es_sizes else ""
    when = (
        f"{meta['date']}, {meta['machine']}, {meta['cores']} cores, load average"
        f" {meta['load_average'][0]} before and {meta['load_average'][1]} after"
    )
    if "runs" in meta:  # combined: each store's sizes and libraries from one run of its own
        when = f"{meta['machine']}, {meta['cores']} cores; one run per store (the disk held one"
        when += " store's largest logs at a time, so the runs were combined with `--combine`): "
        when += "; ".join(
            f"{store} on {run['date']} (load average {run['load_average'][0]} before and"
            f" {run['load_average'][1]} after)"
            for store, run in meta["runs"].items()
        )
    lines = [
        "# Cost against the log's size",
        "",
        f"`make bench-growth`, {when} (the machine is shared: other work skews the figures).",
        "",
        f"Logs of {sizes} bank events{es_sizes}: a long account stream of"
        f" {', '.join(f'{x.long:,}' for x in layouts)} events, then"
        f" {', '.join(f'{x.accounts:,}' for x in layouts)} accounts of 10 events each, in"
        " blocks of 1,000 accounts whose events interleave; bulk-filled into each library's"
        " tables (benchmarks/growth_fill.py), the owner in clear (sealed, an AccountOpened"
        f" takes {meta['sealed_overhead']} bytes more, {meta['sealed_overhead'] / 10:.1f} per"
        " event, and each account a key). Each library at each size in a fresh process"
        " (benchmarks/growth_measure.py):"
        f" {meta['commands']:,} deposits per pass (fewer on tiny logs), each HTTP page asked"
        f" {meta['requests']} times, the projection caught up on the last"
        f" {meta['catch_up']:,} events (eventsourcing: {meta['es_catch_up']:,}; it commits"
        " each event on its own). eventsourcing has no HTTP API and no categories (its"
        " category read filters notifications by the account topics).",
        "",
        f"Targets: each per-operation cost at the largest size within {TARGET}x of the"
        " smallest's; bytes per event no more than eventsourcing's on the same events;"
        " memory independent of the log's size.",
        "",
        *tables(result["rows"]),
    ]
    failed = [r for r in result["rows"] if "error" in r]
    if failed:
        lines += ["Not measured:", ""]
        lines += [f"- {r['library']} {r['store']} {r['size']:,}: {r['error']}" for r in failed]
        lines.append("")
    lines += ["![cost against log size](growth.png)", ""]
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Each measure's cost over its cost at the smallest size, against the log's size."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the chart is optional; the table is the record
        return
    good = [r for r in rows if "error" not in r]
    stores = list(dict.fromkeys(r["store"] for r in good))
    if not stores:
        return
    figure, axes = plt.subplots(1, len(stores), figsize=(7 * len(stores), 5.5), squeeze=False)
    colours = [plt.get_cmap("tab20")(i) for i in range(20)]
    for axis, store in zip(axes[0], stores, strict=True):
        for library, style in (("facta", "-"), ("eventsourcing", "--")):
            mine = sorted(
                (r for r in good if r["store"] == store and r["library"] == library),
                key=lambda r: r["size"],
            )
            if len(mine) < 2:
                continue
            for index, (key, label, _, rate) in enumerate(MEASURES):
                points = [
                    (r["size"], ratio)
                    for r in mine
                    if (ratio := _cost_ratio(r, mine[0], key, rate)) is not None
                ]
                if len(points) >= 2:
                    axis.plot(
                        *zip(*points, strict=True),
                        style,
                        marker="o",
                        color=colours[index % len(colours)],
                        label=f"{library}: {label}",
                    )
        axis.axhline(TARGET, color="#d83b3b", linewidth=1)
        axis.axhline(1, color="black", linewidth=0.6)
        axis.set_xscale("log")
        axis.set_xlabel("events in the log")
        axis.set_ylabel("cost per operation ÷ cost at the smallest size")
        axis.set_title(f"{store} (solid: facta, dashed: eventsourcing; red: {TARGET}x)")
        axis.legend(fontsize=6, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def combine(paths: list[str]) -> None:
    """Write the kept page from the raw JSON of runs that measured different stores (when
    disk holds one store's largest log at a time): each store's rows from the first run that
    measured it without error, so that every ratio compares figures of one run."""
    results = [json.loads(Path(path).read_text()) for path in paths]
    rows: list[dict[str, Any]] = []
    runs: dict[str, dict[str, Any]] = {}
    for result in results:
        for store in STORES:
            mine = [r for r in result["rows"] if r["store"] == store]
            if store in runs or not mine or any("error" in r for r in mine):
                continue
            runs[store] = {k: result["meta"][k] for k in ("date", "load_average")}
            rows += mine
    missing = [store for store in STORES if store not in runs]
    if missing:
        sys.exit(f"no complete run of {', '.join(missing)} among {', '.join(paths)}")
    meta = {**results[0]["meta"], "runs": runs}
    result = {"meta": meta, "rows": rows}
    text = markdown(result)
    (HERE / "growth-results.json").write_text(json.dumps(result, indent=1))
    (HERE / "GROWTH.md").write_text(text)
    chart(rows, HERE / "growth.png")
    print(text)


def main() -> None:
    if sys.argv[1:2] == ["--combine"]:
        combine(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=SIZES)
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--es-sizes", help="default: every size but the largest")
    parser.add_argument("--commands", type=int, default=2_000, help="deposits per pass")
    parser.add_argument("--requests", type=int, default=300, help="timed HTTP requests")
    parser.add_argument("--catch-up", type=int, default=1_000_000, help="events")
    parser.add_argument("--es-catch-up", type=int, default=100_000, help="events")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    chosen("--stores", args.stores, STORES)
    es_sizes = (
        sorted({int(s) for s in args.es_sizes.split(",")}) if args.es_sizes else sizes[:-1]
    ) or sizes
    es_sizes = [s for s in es_sizes if s in sizes]
    if "eventsourcing" not in chosen("--libraries", args.libraries, LIBRARIES):
        es_sizes = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.out = str(out.resolve())
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        overhead = asyncio.run(sealed_overhead(Path(scratch)))
    rows = run(args, sizes, es_sizes)
    result: dict[str, Any] = {
        "meta": run_facts(
            load,
            layout=LAYOUT,
            sizes=sizes,
            es_sizes=es_sizes,
            commands=args.commands,
            requests=args.requests,
            catch_up=args.catch_up,
            es_catch_up=args.es_catch_up,
            sealed_overhead=overhead,
        ),
        "rows": rows,
    }
    complete = (
        args.sizes == SIZES
        and args.stores == parser.get_default("stores")
        and args.libraries == parser.get_default("libraries")
        and not args.es_sizes
        and not any("error" in r for r in rows)
    )
    text = markdown(result)
    # save prints it and keeps the raw JSON under --out; the issue names the kept page
    # GROWTH.md, so a complete run's copies are written here rather than by save's keep.
    save("growth", result, text, out=args.out, keep=False)
    chart(rows, out / f"growth-{result['meta']['date']}.png")
    if complete:
        (HERE / "growth-results.json").write_text(json.dumps(result, indent=1))
        (HERE / "GROWTH.md").write_text(text)
        chart(rows, HERE / "growth.png")
    if any("error" in r for r in rows):
        sys.exit("a measurement failed (its error is above)")


if __name__ == "__main__":
    main()

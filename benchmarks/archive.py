"""Archiving 90% of a 1,000,000-event log (issue 25), on SQLite and PostgreSQL.

    python benchmarks/archive.py [--stores sqlite,postgres] [--out benchmarks/results]

The log is the console benchmark's (100,000 account streams of 10 events, bulk-filled; see
``benchmarks/console.py``), filled afresh each run since archiving changes it:
``benchmarks/results/archive-1m.db`` and the PostgreSQL schema ``bench_archive_1m``. Then:

1. every stream is read (in id order) and the whole log (pages of 1,000), each hashed event
   by event (every field of the RecordedEvent, its bytes as stored), timed;
2. ``archive_streams`` moves every stream's events but its last (``older_than=0``: all are
   idle) to an archive directory, with ``compact`` (SQLite VACUUM, PostgreSQL VACUUM FULL);
   the database's log size (events, table and index bytes) is taken before and after;
3. the same reads again through the archive: the hashes must be equal (byte for byte), and
   their times are given beside the first ones.

``eventsourcing`` has no archiving or stream truncation to run beside it.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_HERE)] + [
    p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE
]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import hashlib  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import msgspec  # noqa: E402

from benchmarks._report import chosen, run_facts, save  # noqa: E402
from benchmarks.console import EVENTS, STREAMS, postgres_store, sqlite_store, stream_id  # noqa: E402
from facta import Engine, open_store  # noqa: E402
from facta.lifecycle import archive_streams  # noqa: E402
from facta.store.base import START  # noqa: E402

HERE = Path(__file__).resolve().parent
SCHEMA = "bench_archive_1m"


async def digests(store: Engine) -> dict[str, Any]:
    """Hashes of every stream and of the whole log, and how long each read took."""
    encode = msgspec.json.encode
    streams = hashlib.sha256()
    started = time.perf_counter()
    for n in range(STREAMS):
        for record in await store.read_stream(stream_id(n)):
            streams.update(encode(record))
    stream_seconds = time.perf_counter() - started
    log = hashlib.sha256()
    count, after = 0, START
    started = time.perf_counter()
    while page := await store.read_all(after=after, limit=1000):
        for record in page:
            log.update(encode(record))
        count, after = count + len(page), page[-1].position
    log_seconds = time.perf_counter() - started
    return {
        "streams_sha256": streams.hexdigest(),
        "log_sha256": log.hexdigest(),
        "log_events": count,
        "stream_read_ms": round(stream_seconds / STREAMS * 1000, 3),
        "log_events_per_s": round(count / log_seconds),
    }


async def measure(backend: str, out: Path) -> dict[str, Any]:
    if backend == "sqlite":
        (out / "archive-1m.db").unlink(missing_ok=True)
        started = time.perf_counter()
        url = await sqlite_store(out, "archive-1m.db")
    else:
        import asyncpg

        connection = await asyncpg.connect(
            os.environ.get("FACTA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
        )
        await connection.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        await connection.close()
        started = time.perf_counter()
        url = await postgres_store(SCHEMA)
    filled = time.perf_counter() - started
    directory = out / f"archive-1m-{backend}"
    shutil.rmtree(directory, ignore_errors=True)
    store = await open_store(f"{url}{'&' if '?' in url else '?'}archive={directory}")
    try:
        before = await digests(store)
        started = time.perf_counter()
        run = await archive_streams(store, older_than=0, now=time.time() + 1, compact=True)
        seconds = time.perf_counter() - started
        after = await digests(store)
    finally:
        await store.close()
    archived_bytes = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    same = all(before[k] == after[k] for k in ("streams_sha256", "log_sha256", "log_events"))
    return {
        "backend": backend,
        "fill_seconds": round(filled, 1),
        "archive_seconds": round(seconds, 1),
        "archived_events": run.events,
        "archived_share": round(run.events / EVENTS, 4),
        "streams": run.streams,
        "chunks": run.chunks,
        "database_before": msgspec.to_builtins(run.before),
        "database_after": msgspec.to_builtins(run.after),
        "archive_directory_bytes": archived_bytes,
        "before": before,
        "after": after,
        "byte_for_byte": same,
    }


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        "# Archiving 90% of a 1,000,000-event log",
        "",
        f"{meta['date']} · {meta['machine']} · {meta['cores']} cores · load average"
        f" {meta['load_average'][0]} before, {meta['load_average'][1]} after ·"
        " `python benchmarks/archive.py`",
        "",
        "| store | archived | in | database before (events / bytes) | after | archive"
        " bytes | same bytes | stream read before / after (ms) | log read before / after"
        " (events/s) |",
        "|---|---:|---:|---|---|---:|---|---|---|",
    ]
    for row in result["rows"]:
        b, a = row["database_before"], row["database_after"]
        lines.append(
            f"| {row['backend']} | {row['archived_events']:,} ({row['archived_share']:.0%})"
            f" | {row['archive_seconds']} s | {b['events']:,} / {b['total_bytes']:,}"
            f" | {a['events']:,} / {a['total_bytes']:,} | {row['archive_directory_bytes']:,}"
            f" | {'yes' if row['byte_for_byte'] else '**no**'}"
            f" | {row['before']['stream_read_ms']} / {row['after']['stream_read_ms']}"
            f" | {row['before']['log_events_per_s']:,} / {row['after']['log_events_per_s']:,} |"
        )
    lines += [
        "",
        "Database bytes: SQLite's whole file after VACUUM; PostgreSQL's events and tags"
        " tables with their indexes and TOAST after VACUUM FULL. Table / index bytes:",
        "",
    ]
    for row in result["rows"]:
        b, a = row["database_before"], row["database_after"]
        lines.append(
            f"- {row['backend']}: table {b['table_bytes']:,} → {a['table_bytes']:,},"
            f" indexes {b['index_bytes']:,} → {a['index_bytes']:,}"
            f" (filled in {row['fill_seconds']} s)"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    backends = chosen("--stores", args.stores, ["sqlite", "postgres"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    rows = []
    for backend in backends:
        print(f"{backend}: {EVENTS:,} events", flush=True)
        rows.append(asyncio.run(measure(backend, out)))
        print(rows[-1], flush=True)
    result = {"meta": run_facts(load, events=EVENTS), "rows": rows}
    save("archive", result, markdown(result), out=args.out, keep=backends == ["sqlite", "postgres"])
    if not all(row["byte_for_byte"] for row in rows):
        sys.exit("an archived stream or the log read back differently")


if __name__ == "__main__":
    main()

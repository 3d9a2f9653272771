"""Sustained load: a fixed rate of mixed requests against `facta serve` for a long time.

    python -m tests.reliability.soak [--minutes 10] [--rate 200] [--store URL] [--keep DIR]

Prints one row per minute: requests, p50/p99 latency overall and per kind of request, the
server's resident memory, CPU and file I/O per request, this client's CPU per request, and (on
the default SQLite store) the size of the database and of its write-ahead log; then the first
minute against the last. Fails (exit 1) when latency or memory grew past its bound: they must
stay flat. ``--keep DIR`` runs in DIR and leaves the database and the server's log there.
Run by `make soak`; not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.http.conftest import start_server

ACCOUNTS = [f"soak-{i}" for i in range(50)]
WORKERS = 32  # connections; each sends its share of the rate on its own schedule
KINDS = ("deposit", "withdraw", "get", "list")
TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def io_bytes(pid: int) -> tuple[int, int]:
    """Bytes process ``pid`` has read and written through system calls so far (page cache
    hits included: what SQLite asks of the file system)."""
    counters = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(counters["rchar"]), int(counters["wchar"])


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def file_mb(path: Path | None) -> float:
    try:
        return path.stat().st_size / 2**20 if path is not None else 0.0
    except FileNotFoundError:
        return 0.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


class Connection:
    """One keep-alive HTTP/1.1 connection that sends a request and reads its answer.

    The client shares the machine with the server, so it must cost little: httpx spends
    several times the server's CPU per request here (its pool checks every connection on
    every request), which on two cores is time taken from the server, and more of it as
    requests queue, so a slow minute made the next one slower.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"", headers: str = "") -> int:
        """Send one request and read the whole answer; its status code."""
        if self.writer is None or self.reader is None or self.reader.at_eof():
            await self.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{headers}"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        try:
            status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
            length, chunked, closing = 0, False, False
            for line in lines:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    closing = b"close" in value.lower()
            if chunked:
                while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    await self.reader.readexactly(size + 2)
                await self.reader.readuntil(b"\r\n")
            else:
                await self.reader.readexactly(length)
        except BaseException:
            await self.close()
            raise
        if closing:
            await self.close()
        return int(status_line.split(b" ", 2)[1])

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


@dataclass
class Minute:
    """What one minute of the run measured."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: int = 0
    rss: list[float] = field(default_factory=list)
    # By the wall clock, not by when requests were due (the same while the client keeps up):
    completed: int = 0
    server_cpu: float = 0.0  # seconds of CPU the server used in this minute
    client_cpu: float = 0.0
    server_read: int = 0  # bytes
    server_written: int = 0
    database_mb: float = 0.0
    wal_mb: float = 0.0  # the largest size seen in the minute

    def all(self) -> list[float]:
        return [value for values in self.latencies.values() for value in values]


async def soak(
    url: str, pid: int, minutes: float, rate: float, database: Path | None
) -> dict[int, Minute]:
    runs: dict[int, Minute] = {}

    async def one(http: Connection, rng: random.Random, due: float) -> None:
        choice = rng.random()
        account = rng.choice(ACCOUNTS)
        if choice < 0.45:
            kind = "deposit"
            status = await http.request(
                "POST",
                f"/accounts/{account}",
                b'{"type":"Deposit","amount":2}',
                f"Idempotency-Key: {uuid.uuid4().hex}\r\n",
            )
        elif choice < 0.7:
            kind = "withdraw"
            status = await http.request(
                "POST", f"/accounts/{account}", b'{"type":"Withdraw","amount":1}'
            )
        elif choice < 0.9:
            kind = "get"
            status = await http.request("GET", f"/accounts/{account}")
        else:
            kind = "list"
            status = await http.request("GET", "/accounts?limit=20")
        # Latency from when the request was due, so a generator falling behind shows as
        # latency instead of silently sending less (no coordinated omission).
        now = time.monotonic()
        minute = runs[int((due - started) // 60)]
        minute.latencies[kind].append(now - due)
        if status >= 500:
            minute.errors += 1
        runs[min(int((now - started) // 60), last_minute)].completed += 1

    async def worker(index: int) -> None:
        http = Connection(host, port)
        rng = random.Random(index)
        interval = WORKERS / rate  # each worker sends its share of the fixed rate
        due = started + index * interval / WORKERS
        while due < end:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await one(http, rng, due)
            due += interval
        await http.close()

    async def sample() -> None:
        # Every second: the WAL's size (its largest in a minute) and, every fifth, memory.
        # At each minute's end (the last one ends when its last answer came): the CPU and
        # I/O used in it, the database's size.
        wal = None if database is None else database.with_name(database.name + "-wal")
        counters = cpu_seconds(pid), own_cpu_seconds(), *io_bytes(pid)
        index, tick = 0, 0
        while True:
            now = time.monotonic()
            minute = runs[min(int((now - started) // 60), last_minute)]
            minute.wal_mb = max(minute.wal_mb, file_mb(wal))
            if tick % 5 == 0:
                minute.rss.append(rss_mb(pid))
            tick += 1
            if (index < last_minute and now >= started + 60 * (index + 1)) or finished.done():
                now_counters = cpu_seconds(pid), own_cpu_seconds(), *io_bytes(pid)
                used = [b - a for a, b in zip(counters, now_counters, strict=True)]
                ended = runs[index]
                ended.server_cpu, ended.client_cpu = used[0], used[1]
                ended.server_read, ended.server_written = int(used[2]), int(used[3])
                ended.database_mb = file_mb(database)
                counters = now_counters
                index += 1
                if finished.done():
                    return
            wake = started + 60 * index - now if index < last_minute else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(finished), min(1.0, max(0.01, wake)))

    host, _, port_text = url.removeprefix("http://").partition(":")
    port = int(port_text)
    opener = Connection(host, port)
    for account in ACCOUNTS:
        body = b'{"type":"OpenAccount","owner":"Soak","initial_balance":100}'
        await opener.request("POST", f"/accounts/{account}", body)
    await opener.close()
    started = time.monotonic()
    end = started + minutes * 60
    last_minute = int((end - 1e-6 - started) // 60)
    for index in range(last_minute + 1):
        runs[index] = Minute()
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    sampler = asyncio.ensure_future(sample())
    await asyncio.gather(*(worker(i) for i in range(WORKERS)))
    finished.set_result(None)
    await sampler
    return runs


def report(runs: dict[int, Minute]) -> int:
    """Print the per-minute rows and the verdict; the exit status."""
    print(
        "latency by when requests were due, in ms (p50/p99); the other columns by the wall"
        " clock: CPU and syscall I/O per request completed, WAL at its largest"
    )
    kinds = "  ".join(f"{k:>13}" for k in KINDS)
    print(
        f"min  requests     p50     p99  {kinds}  RSS MB  srv CPU ms/req  cli CPU ms/req"
        "  srv read KB/req  srv write KB/req  db MB  wal MB  5xx"
    )
    for index, minute in sorted(runs.items()):
        everything = minute.all()
        per_kind = "  ".join(
            f"{percentile(values, 0.5):5.1f}/{percentile(values, 0.99):<7.1f}"
            for values in (minute.latencies[k] for k in KINDS)
        )
        rss = sum(minute.rss) / len(minute.rss) if minute.rss else 0.0
        done = max(1, minute.completed)
        print(
            f"{index + 1:3}  {len(everything):8}  {percentile(everything, 0.5):6.1f}"
            f"  {percentile(everything, 0.99):6.1f}  {per_kind}  {rss:6.1f}"
            f"  {1000 * minute.server_cpu / done:14.2f}  {1000 * minute.client_cpu / done:14.2f}"
            f"  {minute.server_read / 1024 / done:15.1f}"
            f"  {minute.server_written / 1024 / done:16.1f}"
            f"  {minute.database_mb:5.1f}  {minute.wal_mb:6.1f}  {minute.errors:3}"
        )
    first, last = runs[min(runs)], runs[max(runs)]
    total_5xx = sum(m.errors for m in runs.values())
    print(f"total requests {sum(len(m.all()) for m in runs.values())}, 5xx {total_5xx}")
    p99_start, p99_end = percentile(first.all(), 0.99), percentile(last.all(), 0.99)
    rss_start = sum(first.rss) / max(1, len(first.rss))
    rss_end = sum(last.rss) / max(1, len(last.rss))
    flat = p99_end <= max(2 * p99_start, p99_start + 20) and rss_end <= rss_start * 1.5 + 20
    verdict = "flat" if flat else "GREW"
    print(
        f"first minute p50/p99 {percentile(first.all(), 0.5):.1f}/{p99_start:.1f} ms,"
        f" RSS {rss_start:.1f} MB; last minute p50/p99 {percentile(last.all(), 0.5):.1f}"
        f"/{p99_end:.1f} ms, RSS {rss_end:.1f} MB: {verdict}"
    )
    return 0 if flat and total_5xx == 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--store", default=None, help="store URL (default: a scratch SQLite)")
    parser.add_argument(
        "--keep", type=Path, default=None, help="a directory to run in and leave behind"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facta-soak-") as scratch:
        workdir = args.keep or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        database = None if args.store else workdir / "soak.db"
        server = start_server(args.store or f"sqlite:///{database}", workdir)
        print(f"server pid {server.process.pid}, store {server.store_url}", flush=True)
        try:
            runs = asyncio.run(
                soak(server.url, server.process.pid, args.minutes, args.rate, database)
            )
        finally:
            server.stop()
    sys.exit(report(runs))


if __name__ == "__main__":
    main()

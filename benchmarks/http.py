"""Deposits and state reads over HTTP against the same server's GET /health, in one run.

    python benchmarks/http.py [--backends sqlite,postgres] [--workers 1,2] [--connections 64]
                              [--seconds 12] [--accounts 1000]

Starts `facta serve` (a real process, the bank service; `--app benchmarks.http_apps:NAME`
for a variant without parts of it) on a fresh store, with each `--workers` count (several
processes need PostgreSQL: SQLite is skipped there), opens the accounts, then drives it with
wrk (Debian package `wrk`, which `make bench-http` installs; a Python load generator in a
second process when wrk is missing): GET /health, POST /accounts/{id} Deposit and GET
/accounts/{id}, spread over the accounts, each for the same time with the same connections,
in alternating rounds. Prints one row per endpoint and the ratios deposits / health and
state / health (issue 27's target: deposits at least 0.50 of health), and writes them as
JSON and markdown (``http-raw-<date>.json`` in ``--out``; a complete default run is also
kept as benchmarks/http-results.json and HTTP-RESULTS.md).
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder comes first on sys.path, and this file's name would
# shadow the standard library's `http` package (which httpx imports).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

sys.path.insert(0, os.path.dirname(_HERE))  # the repository root, for benchmarks._report
from benchmarks._report import run_facts, save  # noqa: E402

POSTGRES = os.environ.get("FACTA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

DEPOSIT_LUA = """
local accounts = {accounts}
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{{"type": "Deposit", "amount": 1.0}}'
request = function()
  counter = counter + 1
  return wrk.format(nil, "/accounts/bench-" .. (counter % accounts))
end
"""

STATE_LUA = """
local accounts = {accounts}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/accounts/bench-" .. (counter % accounts))
end
"""
TARGET = 0.50  # deposits / health (issue 27)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(store_url: str, workdir: Path, extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    script = Path(sys.executable).parent / "facta"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "facta.cli"]
    process = subprocess.Popen(
        [
            *command,
            "serve",
            "--store",
            store_url,
            "--port",
            str(port),
            "--log-level",
            "warning",
            *extra,
        ],
        cwd=workdir,
        # So that --app can name benchmarks.http_apps (the repository is not installed).
        env={**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(_HERE), *sys.path])},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"facta serve did not start on {store_url}")


def open_accounts(url: str, count: int) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            semaphore = asyncio.Semaphore(32)

            async def one(index: int) -> None:
                async with semaphore:
                    response = await http.post(
                        f"/accounts/bench-{index}",
                        json={"type": "OpenAccount", "owner": "Bench", "initial_balance": 0.0},
                    )
                    response.raise_for_status()

            await asyncio.gather(*(one(i) for i in range(count)))

    asyncio.run(run())


def wrk(
    url: str, path: str, connections: int, seconds: int, script: Path | None
) -> dict[str, float]:
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run(
        [*command, url + path], capture_output=True, text=True, check=True
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.MULTILINE))
    return {
        "rps": rate,
        "errors": float(errors.group(1)) if errors else 0.0,
        "p50": _ms(latency.get("50", "0ms")),
        "p99": _ms(latency.get("99", "0ms")),
    }


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def python_load(
    url: str, path: str, connections: int, seconds: int, accounts: int | None, kind: str
) -> dict[str, float]:
    """The fallback load generator, run in a second process: keep-alive connections, each
    sending its next request as soon as the last one answered."""
    code = f"""
import asyncio, json, time, httpx
async def main():
    done = errors = 0
    stop = time.monotonic() + {seconds}
    latencies = []
    limits = httpx.Limits(max_connections={connections})
    async with httpx.AsyncClient(base_url={url!r}, limits=limits) as http:
        async def worker(n):
            nonlocal done, errors
            i = n
            while time.monotonic() < stop:
                start = time.monotonic()
                if {accounts!r} is None:
                    r = await http.get({path!r})
                elif {kind!r} == "state":
                    i += {connections}
                    r = await http.get(f"/accounts/bench-{{i % {accounts!r}}}")
                else:
                    i += {connections}
                    r = await http.post(f"/accounts/bench-{{i % {accounts!r}}}",
                                        json={{"type": "Deposit", "amount": 1.0}})
                latencies.append(time.monotonic() - start)
                done += 1
                errors += r.status_code >= 300
        began = time.monotonic()
        await asyncio.gather(*(worker(n) for n in range({connections})))
        elapsed = time.monotonic() - began
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * .99)]
    rate = done / elapsed
    print(json.dumps({{"rps": rate, "errors": errors, "p50": p50 * 1e3, "p99": p99 * 1e3}}))
asyncio.run(main())
"""
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, float] = json.loads(output)
    return result


def measure(
    backend: str, workers: int, args: argparse.Namespace
) -> list[tuple[str, dict[str, float]]]:
    with tempfile.TemporaryDirectory() as workdir:
        if backend == "sqlite":
            store_url = f"sqlite:///{Path(workdir) / 'bench.db'}"
        else:
            store_url = f"{POSTGRES}?schema=bench_http_{uuid.uuid4().hex[:8]}"
        extra = ["--app", args.app] if args.app else []
        extra += ["--workers", str(workers)] if workers > 1 else []
        process, url = start(store_url, Path(workdir), extra + args.serve_option)
        try:
            open_accounts(url, args.accounts)
            deposit = Path(workdir) / "deposit.lua"
            deposit.write_text(DEPOSIT_LUA.format(accounts=args.accounts))
            state = Path(workdir) / "state.lua"
            state.write_text(STATE_LUA.format(accounts=args.accounts))
            use_wrk = shutil.which("wrk") is not None
            endpoints = (
                ("GET /health", "/health", None, None, "health"),
                ("POST deposit", "/", deposit, args.accounts, "deposit"),
                ("GET state", "/", state, args.accounts, "state"),
            )
            # Alternate short windows of each endpoint, so that load from elsewhere on the
            # machine falls on all alike; a row is the mean rate and the median latencies.
            runs: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in endpoints}
            window = max(1, args.seconds // args.rounds)
            for _ in range(args.rounds):
                for name, path, lua, accounts, kind in endpoints:
                    if use_wrk:
                        result = wrk(url, path, args.connections, window, lua)
                    else:
                        result = python_load(url, path, args.connections, window, accounts, kind)
                    runs[name].append(result)
            rows = [
                (
                    name,
                    {
                        "rps": statistics.mean(r["rps"] for r in results),
                        "p50": statistics.median(r["p50"] for r in results),
                        "p99": statistics.median(r["p99"] for r in results),
                        "errors": sum(r["errors"] for r in results),
                        "rounds": [r["rps"] for r in results],
                    },
                )
                for name, results in runs.items()
            ]
            return rows
        finally:
            process.terminate()
            process.wait(30)
            if backend == "postgres":
                schema = store_url.rsplit("schema=", 1)[1]
                subprocess.run(
                    ["psql", POSTGRES, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
                    capture_output=True,
                    check=False,
                )


def render(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        "# HTTP: deposits and state reads beside GET /health",
        "",
        f"{meta['date']} · {meta['machine']} · {meta['cores']} cores (load average"
        f" {meta['load_average'][0]} before, {meta['load_average'][1]} after) · {meta['load']}"
        f" · {meta['connections']} connections · {meta['seconds']} s per endpoint in"
        f" {meta['rounds']} alternating rounds · {meta['accounts']:,} accounts",
        "",
        "| backend | workers | endpoint | req/s | each round | p50 ms | p99 ms | non-2xx |"
        " / health |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    health = {
        (r["backend"], r["workers"]): r["rps"] for r in rows if r["endpoint"] == "GET /health"
    }
    for r in rows:
        share = r["rps"] / health[r["backend"], r["workers"]]
        mark = ""
        if r["endpoint"] == "POST deposit":
            mark = " ✅" if share >= TARGET else " ❌"
        rounds = ", ".join(f"{v:,.0f}" for v in r["rounds"])
        lines.append(
            f"| {r['backend']} | {r['workers']} | {r['endpoint']} | {r['rps']:,.0f} | {rounds}"
            f" | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']:.0f} | {share:.2f}{mark} |"
        )
    lines += ["", f"Target (issue 27): deposits at least {TARGET:.2f} of GET /health's rate."]
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--workers", default="1,2", help="server processes, comma-separated")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=12, help="per endpoint, in all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--app", help="MODULE:FACTORY to serve instead of the bank service")
    parser.add_argument(
        "--serve-option", action="append", default=[], help="passed to `facta serve`"
    )
    parser.add_argument("--out", default=str(Path(_HERE) / "results"))
    args = parser.parse_args()
    tool = "wrk -t1" if shutil.which("wrk") else "python load generator (wrk not installed)"
    print(
        f"load: {tool}, {args.connections} connections, {args.seconds}s per endpoint"
        f" in {args.rounds} alternating rounds"
    )
    load_before = os.getloadavg()[0]
    header = ("backend", "workers", "endpoint", "req/s", "p50 ms", "p99 ms", "non-2xx")
    print("{:<9} {:>7} {:<13} {:>9} {:>8} {:>8} {:>8}".format(*header))
    rows: list[dict[str, Any]] = []
    for backend in args.backends.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            if workers > 1 and backend == "sqlite":
                print(f"{backend:<9} {workers:>7} refused: a SQLite store is one process's")
                continue
            for name, result in measure(backend, workers, args):
                rows.append({"backend": backend, "workers": workers, "endpoint": name} | result)
                print(
                    f"{backend:<9} {workers:>7} {name:<13} {result['rps']:>9.0f}"
                    f" {result['p50']:>8.2f} {result['p99']:>8.2f} {result['errors']:>8.0f}"
                )
    meta = run_facts(
        load_before,
        load=tool,
        connections=args.connections,
        seconds=args.seconds,
        rounds=args.rounds,
        accounts=args.accounts,
    )
    default = (
        args.backends == "sqlite,postgres"
        and args.workers == "1,2"
        and not args.app
        and not args.serve_option
    )
    save("http", {"meta": meta, "rows": rows}, render(meta, rows), out=args.out, keep=default)


if __name__ == "__main__":
    main()

"""Deposits over HTTP against the same server's GET /health, in one run.

    python benchmarks/http.py [--backends sqlite,postgres] [--connections 64] [--seconds 10]
                              [--accounts 1000]

Starts `facta serve` (a real process, the bank service; `--app benchmarks.http_apps:NAME`
for a variant without parts of it) on a fresh store, opens the accounts,
then drives it with wrk (Debian package `wrk`; a Python load generator in a second process
when wrk is missing): first GET /health, then POST /accounts/{id} Deposit spread over the
accounts, each for the same time with the same connections. Prints one row per endpoint and
the ratio deposits / health (the target is at least 0.40).
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

import httpx  # noqa: E402

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
    url: str, path: str, connections: int, seconds: int, accounts: int | None
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


def measure(backend: str, args: argparse.Namespace) -> list[tuple[str, dict[str, float]]]:
    with tempfile.TemporaryDirectory() as workdir:
        if backend == "sqlite":
            store_url = f"sqlite:///{Path(workdir) / 'bench.db'}"
        else:
            store_url = f"{POSTGRES}?schema=bench_http_{uuid.uuid4().hex[:8]}"
        extra = ["--app", args.app] if args.app else []
        process, url = start(store_url, Path(workdir), extra + args.serve_option)
        try:
            open_accounts(url, args.accounts)
            script = Path(workdir) / "deposit.lua"
            script.write_text(DEPOSIT_LUA.format(accounts=args.accounts))
            use_wrk = shutil.which("wrk") is not None
            endpoints = (
                ("GET /health", "/health", None, None),
                ("POST deposit", "/", script, args.accounts),
            )
            # Alternate short windows of each endpoint, so that load from elsewhere on the
            # machine falls on both alike; a row is the mean rate and the median latencies.
            runs: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in endpoints}
            window = max(1, args.seconds // args.rounds)
            for _ in range(args.rounds):
                for name, path, lua, accounts in endpoints:
                    if use_wrk:
                        result = wrk(url, path, args.connections, window, lua)
                    else:
                        result = python_load(url, path, args.connections, window, accounts)
                    runs[name].append(result)
            rows = [
                (
                    name,
                    {
                        "rps": statistics.mean(r["rps"] for r in results),
                        "p50": statistics.median(r["p50"] for r in results),
                        "p99": statistics.median(r["p99"] for r in results),
                        "errors": sum(r["errors"] for r in results),
                    },
                )
                for name, results in runs.items()
            ]
            return rows
        finally:
            process.terminate()
            process.wait(15)
            if backend == "postgres":
                schema = store_url.rsplit("schema=", 1)[1]
                subprocess.run(
                    ["psql", POSTGRES, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
                    capture_output=True,
                    check=False,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=12, help="per endpoint, in all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--app", help="MODULE:FACTORY to serve instead of the bank service")
    parser.add_argument(
        "--serve-option", action="append", default=[], help="passed to `facta serve`"
    )
    args = parser.parse_args()
    tool = "wrk -t1" if shutil.which("wrk") else "python load generator (wrk not installed)"
    print(
        f"load: {tool}, {args.connections} connections, {args.seconds}s per endpoint"
        f" in {args.rounds} alternating rounds"
    )
    header = ("backend", "endpoint", "req/s", "p50 ms", "p99 ms", "non-2xx")
    print("{:<9} {:<13} {:>9} {:>8} {:>8} {:>8}".format(*header))
    for backend in args.backends.split(","):
        rows = measure(backend, args)
        for name, result in rows:
            print(
                f"{backend:<9} {name:<13} {result['rps']:>9.0f} {result['p50']:>8.2f}"
                f" {result['p99']:>8.2f} {result['errors']:>8.0f}"
            )
        ratio = rows[1][1]["rps"] / rows[0][1]["rps"]
        print(f"{backend:<9} deposits / health = {ratio:.2f} (target >= 0.40)")


if __name__ == "__main__":
    main()

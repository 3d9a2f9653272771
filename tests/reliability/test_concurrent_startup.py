"""Several ``facta serve`` processes started at once on a fresh store all work (issue 18).

Each trial: a fresh SQLite file or PostgreSQL schema, three servers started 0-100 ms apart
(so that they create the schema, the read model's storage and its registration at the same
time), then on every server an account opened, a deposit, and the accounts list, which must
show every server's accounts: all of it answered 200. Servers are forked from a launcher that
imported everything once (tests/reliability/fork_servers.py), so a trial costs well under a
second or two. ``FACTA_STARTUP_TRIALS`` sets the number of trials per backend: 20 in
``make test``, 100 in ``make soak``. (With 50 in ``make test``, a clean-clone CI run took
12.6 minutes of its 15, against 10-11 with 20.)
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.conftest import BACKEND_NAMES, drop_schema, free_port, store_url_for

TRIALS = int(os.environ.get("FACTA_STARTUP_TRIALS", "20"))
SERVERS = 3
MAX_OFFSET = 0.1
ROOT = Path(__file__).resolve().parents[2]


class Launcher:
    """The fork_servers process: starts and stops groups of servers on request."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.fork_servers"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the launcher exited with {self.process.wait(10)}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture(scope="module")
def launcher() -> Iterator[Launcher]:
    running = Launcher()
    yield running
    running.close()


def _logs(logdir: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(logdir.glob("serve-*.log"))
    )


def _wait_healthy(http: httpx.Client, urls: list[str], launcher: Launcher) -> None:
    deadline = time.monotonic() + 30.0
    waiting = set(urls)
    while waiting:
        for url in list(waiting):
            try:
                if http.get(f"{url}/health", timeout=1.0).status_code == 200:
                    waiting.discard(url)
            except httpx.TransportError:
                pass
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{sorted(waiting)} never answered /health")
        exits = launcher.ask({"exited": True})["exits"]
        if exits:  # a server that died at start-up: say so now, with its log
            raise AssertionError(f"servers exited while starting: {exits}")
        time.sleep(0.02)


def _use(http: httpx.Client, urls: list[str], trial: str) -> list[str]:
    """Commands and a list on every server; the failures, as text (none when all is well)."""
    failures: list[str] = []

    def check(response: httpx.Response, what: str) -> None:
        if response.status_code != 200:
            failures.append(f"{what}: {response.status_code} {response.text[:300]}")

    accounts = {f"acc-{trial}-{i}": url for i, url in enumerate(urls)}
    opened = {"type": "OpenAccount", "owner": "Startup", "initial_balance": 10.0}
    deposit = {"type": "Deposit", "amount": 5.0}
    for account, url in accounts.items():
        path = f"{url}/accounts/{account}"
        check(http.post(path, json=opened), f"open {account} on {url}")
        check(http.post(path, json=deposit), f"deposit {account} on {url}")
    for url in urls:
        listed = http.get(f"{url}/accounts", params={"owner": "Startup", "limit": 100})
        check(listed, f"list on {url}")
        if listed.status_code == 200:
            # Every server's commands are in the one read model every server reads.
            balances = {a["id"]: a["balance"] for a in listed.json()["accounts"]}
            if balances != dict.fromkeys(accounts, 15.0):
                failures.append(f"list on {url} shows {balances}, not every account at 15")
    return failures


def test_servers_started_together_on_a_fresh_sqlite_file_all_serve(
    launcher: Launcher, tmp_path: Path
) -> None:
    campaign("sqlite", launcher, tmp_path)


def campaign(backend: str, launcher: Launcher, tmp_path: Path) -> None:
    """TRIALS trials on ``backend`` (each backend's test is in a file of its own, so that
    the parallel run can put them on two workers)."""
    assert backend in BACKEND_NAMES
    failed: list[str] = []
    http = httpx.Client(timeout=30.0)
    for trial in range(TRIALS):
        workdir = tmp_path / f"trial-{trial}"
        workdir.mkdir()
        store_url = store_url_for(backend, workdir)
        ports = [free_port() for _ in range(SERVERS)]
        offsets = [random.uniform(0.0, MAX_OFFSET) for _ in range(SERVERS)]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        launcher.ask(
            {"store": store_url, "ports": ports, "offsets": offsets, "logdir": str(workdir)}
        )
        try:
            try:
                _wait_healthy(http, urls, launcher)
            except AssertionError as exc:
                failures = [str(exc)]
            else:
                failures = _use(http, urls, uuid.uuid4().hex[:6])
        finally:
            launcher.ask({"stop": True})
            drop_schema(store_url)
        if failures:
            failed.append(
                f"trial {trial} (offsets {[round(o, 3) for o in offsets]}):"
                f" {failures}\n{_logs(workdir)[-3000:]}"
            )
    http.close()
    assert not failed, f"{len(failed)} of {TRIALS} trials failed:\n" + "\n".join(failed)

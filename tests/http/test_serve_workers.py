"""``facta serve --workers N``: several processes on one port and one PostgreSQL store, each
with its own pool, cache and projection runner. Concurrent deposits through both lose and
duplicate nothing, the inline read model stays exact, transfers complete (the saga runs in
whichever process holds its lease), a killed worker is replaced, SIGTERM stops them all. A
SQLite store is refused: it belongs to one process."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx

from tests.http.conftest import (
    drop_schema,
    facta_command,
    postgres_store_url,
    start_server,
)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def eventually(check: object, seconds: float = 20.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


def test_two_workers_share_the_load_and_the_store_without_losing_anything(
    tmp_path: Path,
) -> None:
    store_url = postgres_store_url()
    server = start_server(store_url, tmp_path, "--workers", "2")
    try:
        workers = children(server.process.pid)
        assert len(workers) == 2
        accounts = [f"w-{uuid.uuid4().hex[:8]}" for _ in range(6)]
        with server.client() as client:
            for account in accounts:
                opened = client.post(
                    f"/accounts/{account}",
                    json={"type": "OpenAccount", "owner": "Wes", "initial_balance": 0},
                )
                assert opened.status_code == 200, opened.text

        threads, deposits = 12, 20
        failures: list[str] = []

        def deposit(thread: int) -> None:
            # A client (and so a connection) per request: the kernel spreads them over the
            # workers, and each worker's state cache goes stale behind the other's commands.
            for i in range(deposits):
                account = accounts[(thread + i) % len(accounts)]
                with server.client() as client:
                    answer = client.post(
                        f"/accounts/{account}", json={"type": "Deposit", "amount": 1.0}
                    )
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text}")

        pool = [threading.Thread(target=deposit, args=(t,)) for t in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(120)
        assert failures == []
        # Each process serves by itself: with the other stopped, requests are answered.
        for stopped in workers:
            os.kill(stopped, signal.SIGSTOP)
            try:
                assert _serves(server.url, 10)
            finally:
                os.kill(stopped, signal.SIGCONT)

        with server.client() as client:
            balances = {a: client.get(f"/accounts/{a}").json()["balance"] for a in accounts}
            assert sum(balances.values()) == threads * deposits
            listed = client.get("/accounts", params={"owner": "Wes", "limit": 100}).json()
            assert {a["id"]: a["balance"] for a in listed["accounts"]} == balances
            versions = {a["id"]: a["version"] for a in listed["accounts"]}
            assert sum(versions.values()) == len(accounts) + threads * deposits

            # The saga runs in whichever worker holds its lease.
            transfer = f"t-{uuid.uuid4().hex[:8]}"
            requested = client.post(
                f"/transfers/{transfer}",
                json={
                    "type": "RequestTransfer",
                    "source": accounts[0],
                    "target": accounts[1],
                    "amount": 5.0,
                },
            )
            assert requested.status_code == 200, requested.text
            eventually(lambda: client.get(f"/transfers/{transfer}").json()["status"] == "completed")
            after = {a: client.get(f"/accounts/{a}").json()["balance"] for a in accounts}
            assert after[accounts[0]] == balances[accounts[0]] - 5
            assert after[accounts[1]] == balances[accounts[1]] + 5
            assert sum(after.values()) == sum(balances.values())

        # A worker killed outright is replaced; the other answers meanwhile.
        os.kill(workers[0], signal.SIGKILL)
        with server.client() as client:
            assert client.get("/health").status_code == 200
        eventually(
            lambda: (
                len(children(server.process.pid)) == 2
                and workers[0] not in children(server.process.pid)
            )
        )
        replacement = next(p for p in children(server.process.pid) if p not in workers)
        eventually(lambda: _serves(server.url, 10))

        # SIGTERM stops every worker and the supervisor, cleanly.
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
        for pid in (workers[1], replacement):
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
        assert "exited with -9: starting it again" in server.output()
    finally:
        server.stop()
        drop_schema(store_url)


def _serves(url: str, requests: int) -> bool:
    try:
        return all(
            httpx.get(f"{url}/health", timeout=2).status_code == 200 for _ in range(requests)
        )
    except httpx.TransportError:
        return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_sqlite_store_is_refused_with_several_workers(tmp_path: Path) -> None:
    database = tmp_path / "one.db"
    finished = subprocess.run(
        [*facta_command(), "serve", "--store", f"sqlite:///{database}", "--workers", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 1
    assert "needs a store that several processes can write" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert not database.exists()  # refused before anything was created

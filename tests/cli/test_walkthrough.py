"""A new user's path through every documented `facta` command, in every output mode, on
SQLite and PostgreSQL: `facta migrate`, `facta serve` with accounts and transfers made over
HTTP, then each command that looks inside the store or runs its read side, as real
processes on the store the service wrote.

`test_every_documented_command_is_walked` reads `facta --help` and each group's help, so a
command added without a walk here fails it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_cli import facta
from tests.http.conftest import (
    BACKEND_NAMES,
    Server,
    drop_schema,
    facta_command,
    start_server,
    store_url_for,
)

WALKED = {
    "serve",
    "migrate",
    "streams",
    "events show",
    "events tail",
    "events verify",
    "projections status",
    "projections run",
    "projections rebuild",
    "projections restart",
    "projections parked",  # and tests/http/test_projection_status.py: listed, then cleared
    "projections pause",  # tests/console/test_serving.py: paused, resumed, recorded
    "projections resume",
    "relay run",  # tests/relay/test_brokers.py runs, kills and restarts it against brokers
    "relay status",
    "bench",  # test_cli.py: its refusals; running it is `make bench`
    "console",  # tests/console/test_serving.py serves it alone, and refuses a missing store
    "forget",  # tests/personal/test_forget_edges.py: beside a running `facta serve`
    "streams delete",  # tests/cli/test_lifecycle_cli.py: each, and their refusals
    "streams truncate",
    "streams retention",
    "streams scavenge",
    "archive run",
    "archive status",
}
"""The commands this file (or the one named) walks."""

RUNNABLE_GROUPS = {"streams"}
"""Groups that do something alone too (``facta streams`` lists the streams)."""


@dataclass
class Bank:
    """The bank service on a store, with accounts and settled transfers in it."""

    server: Server
    store_url: str
    workdir: Path

    def facta(self, *args: str) -> subprocess.CompletedProcess[str]:
        return facta(*args, "--store", self.store_url, cwd=self.workdir)

    def feed(self) -> list[dict[str, Any]]:
        """Every event, as the HTTP feed gives it."""
        with self.server.client() as client:
            page = client.get("/events", params={"limit": 1000})
            assert page.status_code == 200, page.text
            events: list[dict[str, Any]] = page.json()["events"]
            return events


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def transfers(client: httpx.Client, **params: str) -> dict[str, str]:
    """Transfer id -> status, from ``GET /transfers`` (the asynchronous read model)."""
    answer = client.get("/transfers", params=params)
    assert answer.status_code == 200, answer.text
    return {t["id"]: t["status"] for t in answer.json()["transfers"]}


@pytest.fixture(scope="module", params=BACKEND_NAMES)
def bank(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bank]:
    workdir = tmp_path_factory.mktemp(f"walk-{request.param}")
    url = store_url_for(request.param, workdir)
    migrated = facta("migrate", "--store", url, cwd=workdir)
    assert migrated.returncode == 0, migrated.stderr
    assert "up to date" in migrated.stdout
    server = start_server(url, workdir)
    try:
        with server.client() as client:
            for account_id, owner, balance in [("acc-1", "Alice", 100), ("acc-2", "Bob", 5)]:
                opened = client.post(
                    f"/accounts/{account_id}",
                    json={"type": "OpenAccount", "owner": owner, "initial_balance": balance},
                )
                assert opened.status_code == 200, opened.text
            assert client.post("/accounts/acc-1", json={"type": "Deposit", "amount": 5}).is_success
            for transfer_id, source, target in [("t-1", "acc-1", "acc-2"), ("t-2", "acc-2", "x")]:
                requested = client.post(
                    f"/transfers/{transfer_id}",
                    json={"type": "RequestTransfer", "source": source, "target": target,
                          "amount": 3},
                )  # fmt: skip
                assert requested.status_code == 200, requested.text
            settled = {"t-1": "completed", "t-2": "refunded"}
            wait_until(lambda: transfers(client) == settled, "the saga and the read model")
        yield Bank(server, url, workdir)
    finally:
        server.stop()
        drop_schema(url)


def commands_in_help(*group: str) -> list[str]:
    """The command names a ``--help`` lists."""
    result = facta(*group, "--help", cwd=Path.cwd())
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("Commands:", 1)[1]
    return re.findall(r"^  (\S+)", section, re.M)


def test_every_documented_command_is_walked() -> None:
    documented = set()
    for name in commands_in_help():
        help_text = facta(name, "--help", cwd=Path.cwd()).stdout
        if "Commands:" in help_text:
            documented |= {f"{name} {sub}" for sub in commands_in_help(name)}
            if name in RUNNABLE_GROUPS:
                documented.add(name)
        else:
            documented.add(name)
    assert documented == WALKED


def test_streams(bank: Bank) -> None:
    result = bank.facta("streams")
    assert result.returncode == 0, result.stderr
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in result.stdout.splitlines()]
    counts = {row[0]: (row[1], row[2]) for row in cells if row}
    expected: dict[str, tuple[str, str]] = {}
    for event in bank.feed():  # events and version per stream, as the log has them
        count = int(expected.get(event["stream_id"], ("0", "0"))[0]) + 1
        expected[event["stream_id"]] = (str(count), str(event["version"]))
    assert set(expected) == {"account-acc-1", "account-acc-2", "transfer-t-1", "transfer-t-2"}
    assert counts == expected
    only = bank.facta("streams", "--category", "transfer")
    assert "transfer-t-2" in only.stdout
    assert "account-acc-1" not in only.stdout


def test_events_show_as_a_table_and_as_json(bank: Bank) -> None:
    table = bank.facta("events", "show", "account-acc-1")
    assert table.returncode == 0, table.stderr
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in table.stdout.splitlines()]
    rows = [row for row in rows if row and row[0].isdigit()]
    assert [(row[0], row[3]) for row in rows] == [
        ("1", "AccountOpened"),
        ("2", "MoneyDeposited"),
        ("3", "MoneyWithdrawn"),
    ]
    assert '"owner":"Alice"' in table.stdout

    as_json = bank.facta("events", "show", "account-acc-1", "--json")
    assert as_json.returncode == 0, as_json.stderr
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    # The same object per event, key for key, as the HTTP feed.
    assert lines == [e for e in bank.feed() if e["stream_id"] == "account-acc-1"]
    assert lines[0]["data"] == {"type": "AccountOpened", "owner": "Alice", "initial_balance": 100}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", lines[0]["recorded_at"])

    page = bank.facta("events", "show", "account-acc-1", "--from-version", "2", "--limit", "1")
    assert "MoneyDeposited" in page.stdout
    assert "AccountOpened" not in page.stdout
    assert "more from version 3 (--from-version)" in page.stdout


def test_events_tail_as_text_and_as_json(bank: Bank) -> None:
    feed = bank.feed()
    text = bank.facta("events", "tail", "--after", "start", "--count", str(len(feed)))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == len(feed)
    for line, event in zip(lines, feed, strict=True):
        position, _, stream_at, kind, data = line.split(maxsplit=4)
        assert (position, stream_at, kind) == (
            event["position"],
            f"{event['stream_id']}@{event['version']}",
            event["type"],
        )
        assert json.loads(data) == event["data"]

    as_json = bank.facta("events", "tail", "--after", "start", "--count", str(len(feed)), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == feed

    after = feed[2]["position"]
    transfers_only = bank.facta(
        "events", "tail", "--after", after, "--category", "transfer", "--type",
        "TransferCompleted", "--count", "1", "--json",
    )  # fmt: skip
    assert transfers_only.returncode == 0, transfers_only.stderr
    [completed] = [json.loads(line) for line in transfers_only.stdout.splitlines()]
    assert (completed["stream_id"], completed["type"]) == ("transfer-t-1", "TransferCompleted")


def test_events_verify(bank: Bank) -> None:
    result = bank.facta("events", "verify")
    assert result.returncode == 0, result.stderr
    assert "every event decodes and every stream is whole" in result.stdout
    for kind in ("AccountOpened", "MoneyWithdrawn", "TransferRequested", "TransferRefunded"):
        assert kind in result.stdout


def status_rows(bank: Bank) -> dict[str, list[str]]:
    result = bank.facta("projections", "status")
    assert result.returncode == 0, result.stderr
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in result.stdout.splitlines()]
    return {row[0]: row for row in cells if row and row[0]}


def test_projections_status_rebuild_and_restart(bank: Bank) -> None:
    rows = status_rows(bank)
    # projection, version, slot, state, position, head, ...
    assert {name: row[3] for name, row in rows.items()} == {
        "accounts": "inline",
        "transfer_saga": "running",
        "transfers": "running",
    }

    # The documented demo: the transfers read model, rebuilt beside the one the running
    # service keeps, which it then keeps in turn.
    rebuilt = bank.facta("projections", "rebuild", "transfers")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert re.search(r"rebuilt transfers: version 1, slot 2, position \S+ of \S+", rebuilt.stdout)
    with bank.server.client() as client:
        assert transfers(client) == {"t-1": "completed", "t-2": "refunded"}
        requested = client.post(
            "/transfers/t-3",
            json={"type": "RequestTransfer", "source": "acc-1", "target": "acc-2", "amount": 1},
        )
        assert requested.status_code == 200, requested.text
        wait_until(
            lambda: (
                transfers(client, status="completed") == {"t-1": "completed", "t-3": "completed"}
            ),
            "the service's runner to follow the rebuilt read model",
        )
    assert status_rows(bank)["transfers"][2] == "2"

    # The inline one is rebuilt by the service itself (a new version), never beside it.
    inline = bank.facta("projections", "rebuild", "accounts")
    assert inline.returncode == 1
    assert "maintained inline by the service" in inline.stderr
    assert len(inline.stderr.strip().splitlines()) == 1

    restart = bank.facta("projections", "restart", "transfers")
    assert restart.returncode == 0, restart.stderr
    assert "transfers has not failed: nothing to restart" in restart.stdout


def test_projections_parked_on_a_bank_with_nothing_parked(bank: Bank) -> None:
    for extra in ((), ("--clear",)):
        listed = bank.facta("projections", "parked", "transfer_saga", *extra)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.strip() == "transfer_saga has no parked events"
    unknown = bank.facta("projections", "parked", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "Error: no projection named 'nope' in this store"


def test_projections_run_until_sigterm(bank: Bank) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("FACTA_STORE", None)
    runner = subprocess.Popen(
        [*facta_command(), "projections", "run", "--store", bank.store_url],
        cwd=bank.workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert runner.stdout is not None
        first = runner.stdout.readline()
        runner.send_signal(signal.SIGTERM)
        out, err = runner.communicate(timeout=30)
    finally:
        runner.kill()
        runner.wait()
    assert runner.returncode == 0, err
    # The service keeps accounts inline; the rest run here (or wait for the service's leases).
    assert "running transfers, transfer_saga (kept inline: accounts)" in first
    assert "stopped (SIGTERM)" in out


def test_relay_status_of_a_relay_that_never_ran(bank: Bank) -> None:
    result = bank.facta("relay", "status", "nats://127.0.0.1:4222?stream=FACTA")
    assert result.returncode == 1
    assert "no relay named 'nats://127.0.0.1:4222?stream=FACTA' has run" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_migrate_again_changes_nothing(bank: Bank) -> None:
    before = bank.feed()
    again = bank.facta("migrate")
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout
    assert bank.feed() == before

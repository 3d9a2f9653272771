"""The `facta` command as a user runs it: a real process on a real store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from facta import Application, open_store
from facta.examples.bank.domain import Account, Deposit, OpenAccount

ENVELOPE_ORDER = (
    "position",
    "stream_id",
    "version",
    "type",
    "schema_version",
    "event_id",
    "recorded_at",
    "data",
    "metadata",
    "tags",
)
"""The keys of an event as `--json` prints it, in order: those of the HTTP feed."""
ENVELOPE = set(ENVELOPE_ORDER)


def facta(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "facta"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "facta.cli"]
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("FACTA_STORE", None)
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
async def store_url(tmp_path: Path) -> str:
    """A SQLite store with two accounts, one of them with a deposit."""
    url = f"sqlite:///{tmp_path / 'facta.db'}"
    store = await open_store(url)
    app = Application(store)
    await app.execute(Account(), "acc-1", OpenAccount("Alice", Decimal("10.0")))
    await app.execute(Account(), "acc-1", Deposit(Decimal("5.5")))
    await app.execute(Account(), "acc-2", OpenAccount("Bob", Decimal("1.0")))
    await store.close()
    return url


def test_help_lists_every_command_group(tmp_path: Path) -> None:
    result = facta("--help", cwd=tmp_path)
    assert result.returncode == 0
    for name in ("serve", "migrate", "streams", "events", "projections", "relay", "bench"):
        assert name in result.stdout


def test_migrate_creates_the_default_store_in_the_working_directory(tmp_path: Path) -> None:
    result = facta("migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert (tmp_path / "facta.db").exists()
    again = facta("migrate", cwd=tmp_path)
    assert again.returncode == 0


def test_streams_lists_streams_with_counts(store_url: str, tmp_path: Path) -> None:
    result = facta("streams", "--store", store_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert set(lines) == {"account-acc-1", "account-acc-2"}
    assert [c.strip() for c in lines["account-acc-1"].split("│")[2:4]] == ["2", "2"]


def test_the_store_option_comes_from_the_environment(store_url: str, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "facta"
    result = subprocess.run(
        [str(script), "streams"],
        cwd=tmp_path,
        env={**os.environ, "FACTA_STORE": store_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "account-acc-2" in result.stdout


def test_events_show_prints_a_stream(store_url: str, tmp_path: Path) -> None:
    table = facta("events", "show", "account-acc-1", "--store", store_url, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "AccountOpened" in table.stdout
    assert "MoneyDeposited" in table.stdout
    as_json = facta("events", "show", "account-acc-1", "--json", "--store", store_url, cwd=tmp_path)
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    # The envelope, as `events tail --json` and the HTTP feed print it, not the data alone.
    assert [(e["stream_id"], e["version"], e["position"], e["type"]) for e in lines] == [
        ("account-acc-1", 1, "1", "AccountOpened"),
        ("account-acc-1", 2, "2", "MoneyDeposited"),
    ]
    assert [e["data"] for e in lines] == [
        {"type": "AccountOpened", "owner": "Alice", "initial_balance": 10.0},
        {"type": "MoneyDeposited", "amount": 5.5},
    ]
    assert all(set(e) == ENVELOPE for e in lines)
    tail = facta(
        "events", "tail", "--after", "start", "--count", "2", "--json", "--store", store_url,
        cwd=tmp_path,
    )  # fmt: skip
    assert [json.loads(line) for line in tail.stdout.splitlines()] == lines


def test_the_event_envelope_is_the_http_feeds() -> None:
    from facta.http.feed import FeedEvent

    assert [f.name for f in msgspec.structs.fields(FeedEvent)] == list(ENVELOPE_ORDER)


def test_events_tail_prints_text_lines(store_url: str, tmp_path: Path) -> None:
    result = facta(
        "events", "tail", "--after", "start", "--count", "3", "--store", store_url, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split(maxsplit=4) for line in result.stdout.splitlines()]
    assert [(p, s, t) for p, _, s, t, _ in lines] == [
        ("1", "account-acc-1@1", "AccountOpened"),
        ("2", "account-acc-1@2", "MoneyDeposited"),
        ("3", "account-acc-2@1", "AccountOpened"),
    ]
    assert json.loads(lines[1][4]) == {"type": "MoneyDeposited", "amount": 5.5}


def test_events_tail_follows_the_log(store_url: str, tmp_path: Path) -> None:
    result = facta(
        "events", "tail", "--after", "start", "--count", "3", "--json", "--store", store_url,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["stream_id"], e["version"]) for e in lines] == [
        ("account-acc-1", 1),
        ("account-acc-1", 2),
        ("account-acc-2", 1),
    ]


def test_events_tail_sees_events_written_while_it_runs(store_url: str, tmp_path: Path) -> None:
    async def deposit() -> None:
        store = await open_store(store_url)
        await Application(store).execute(Account(), "acc-1", Deposit(Decimal("1.0")))
        await store.close()

    script = Path(sys.executable).parent / "facta"
    tail = subprocess.Popen(
        [str(script), "events", "tail", "--count", "1", "--json", "--store", store_url],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = err = ""
    try:
        # Another process writes after the tail started following from the head.
        for _ in range(50):
            asyncio.run(deposit())
            try:
                out, err = tail.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        tail.kill()
    assert tail.returncode == 0, err
    event = json.loads(out.splitlines()[0])
    assert event["type"] == "MoneyDeposited"
    assert event["version"] >= 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("streams", "--store", "mysql://x/y"), "unknown store URL"),
        (("streams", "--store", "sqlite:///missing.db"), "no SQLite file at 'missing.db'"),
        (("migrate", "--store", "sqlite:////no/such/dir/x.db"), "cannot reach the event store"),
        (("streams", "--store", "postgresql://postgres@127.0.0.1:1/test"), "cannot reach"),
        (("events", "show", "account-nope", "--store", "sqlite:///facta.db"), "has no events"),
        (("serve", "--store", "bogus://"), "unknown store URL"),
        (("bench", "--workloads", "nope", "--runs", "1"), "unknown --workloads 'nope': choose"),
        (("bench", "--backends", "sqlite,mysql"), "unknown --backends 'mysql': choose from"),
    ],
)
def test_errors_are_one_line_with_a_nonzero_exit(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    facta("migrate", cwd=tmp_path)  # a store at the default place, for the ones that need it
    result = facta(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr

"""`facta projections` as an operator runs it: real processes on a real SQLite store."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from facta import Application, Codec, open_store
from facta.examples.bank.domain import Account, Deposit, OpenAccount
from facta.examples.bank.read_model import Accounts, AccountsProjection, AccountSummary
from facta.examples.bank.transfers import RequestTransfer, Transfer
from facta.projections import InlineProjections, ProjectionRunner, ReadStore
from tests.cli.test_cli import facta


@pytest.fixture
async def store_url(tmp_path: Path) -> str:
    """A SQLite store with two accounts (three events), no read model yet."""
    url = f"sqlite:///{tmp_path / 'facta.db'}"
    store = await open_store(url)
    app = Application(store)
    await app.execute(Account(), "acc-1", OpenAccount("Alice", Decimal("10.0")))
    await app.execute(Account(), "acc-1", Deposit(Decimal("5.5")))
    await app.execute(Account(), "acc-2", OpenAccount("Bob", Decimal("1.0")))
    await store.close()
    return url


def start_runner(url: str, cwd: Path, *args: str) -> subprocess.Popen[str]:
    script = Path(sys.executable).parent / "facta"
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("FACTA_STORE", None)
    return subprocess.Popen(
        [str(script), "projections", "run", "--store", url, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(stdout: str) -> dict[str, list[str]]:
    """The status table's rows by projection name."""
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in stdout.splitlines()]
    return {row[0]: row for row in cells if row}


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


async def accounts(url: str) -> list[AccountSummary]:
    store = await open_store(url)
    read_store = ReadStore(store)
    try:
        return (await Accounts(read_store).list(limit=500)).items
    finally:
        await read_store.close()
        await store.close()


def test_status_of_a_store_without_projections(store_url: str, tmp_path: Path) -> None:
    result = facta("projections", "status", "--store", store_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no projections" in result.stdout


def test_run_catches_up_and_status_shows_it(store_url: str, tmp_path: Path) -> None:
    runner = start_runner(store_url, tmp_path)
    try:
        status: dict[str, list[str]] = {}

        def caught_up() -> bool:
            nonlocal status
            result = facta("projections", "status", "--store", store_url, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            status = rows(result.stdout)
            return "accounts" in status and status["accounts"][4] == "3"

        wait_until(caught_up, "the runner to catch up")
        # projection, version, slot, state, position, head, lag events, lag s, handled, owner
        accounts_row = status["accounts"]
        assert accounts_row[3] == "running"
        assert (accounts_row[5], accounts_row[6], accounts_row[8]) == ("3", "0", "3")
        assert str(runner.pid) in accounts_row[9]
        assert status["transfer_saga"][3] == "running"
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=20)
    finally:
        runner.kill()
    assert runner.returncode == 130
    assert "running accounts, transfers, transfer_saga" in out
    assert err == ""
    # Ctrl-C released the leases: nobody holds the projections now.
    after = rows(facta("projections", "status", "--store", store_url, cwd=tmp_path).stdout)
    assert (after["accounts"][3], after["accounts"][9]) == ("stopped", "")
    assert [a.balance for a in asyncio.run(accounts(store_url))] == [
        Decimal("15.5"),
        Decimal("1.0"),
    ]


async def catch_up(url: str) -> None:
    store = await open_store(url)
    runner = ProjectionRunner(store, [AccountsProjection()])
    await runner.catch_up()
    await runner.close()
    await store.close()


def test_rebuild_shows_progress_and_keeps_the_read_model(store_url: str, tmp_path: Path) -> None:
    asyncio.run(catch_up(store_url))
    before = asyncio.run(accounts(store_url))
    assert len(before) == 2

    env = {**os.environ, "COLUMNS": "200", "TTY_COMPATIBLE": "1"}  # rich draws its bar
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "facta"),
            *("projections", "rebuild", "accounts", "--batch-size", "1", "--store", store_url),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "rebuilding accounts" in result.stdout
    assert "3/3" in result.stdout
    assert "rebuilt accounts: version 1, slot 2, position 3 of 3, 3 events handled" in (
        result.stdout.replace("\x1b[1m", "").replace("\x1b[0m", "")
    )
    assert asyncio.run(accounts(store_url)) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rebuild", "nope"), "no projection named 'nope' (known: accounts, transfer_saga"),
        (("rebuild", "transfer_saga"), "is a policy"),
        (
            ("run", "--projection", "facta.examples.bank.read_model:Accounts"),
            "is not a Projection or Policy",
        ),
        (("restart", "nope"), "no projection named 'nope'"),
    ],
)
def test_bad_names_are_one_line_errors(
    store_url: str, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = facta("projections", *args, "--store", store_url, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("ttl", ["0", "soon"])
def test_run_takes_a_lease_of_some_seconds_only(tmp_path: Path, ttl: str) -> None:
    store = f"sqlite:///{tmp_path / 'facta.db'}"
    result = facta("projections", "run", "--lease-ttl", ttl, "--store", store, cwd=tmp_path)
    assert result.returncode == 2
    assert "Invalid value for '--lease-ttl'" in result.stderr
    assert not (tmp_path / "facta.db").exists()


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:1/test", "sqlite:///missing.db"])
def test_run_on_an_unreachable_store_is_a_one_line_error(tmp_path: Path, url: str) -> None:
    result = facta("projections", "run", "--store", url, cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot reach the event store" in result.stderr or "no SQLite file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


async def request_transfer_as_the_service(url: str) -> None:
    store = await open_store(url)
    codec = Codec()
    inline = InlineProjections(store, [AccountsProjection()], codec=codec)
    await inline.setup()
    service = Application(store, codec=codec, transaction_hook=inline)
    await service.execute(Transfer(), "t-1", RequestTransfer("acc-1", "acc-2", Decimal("5.0")))
    await store.close()


def test_run_keeps_an_inline_read_model_current_beside_the_service(
    store_url: str, tmp_path: Path
) -> None:
    """What `facta serve --no-projections` + `facta projections run` does: the service keeps
    `accounts` inline and requests a transfer; the runner's saga moves the money, and its own
    appends update the inline read model too."""
    asyncio.run(request_transfer_as_the_service(store_url))
    runner = start_runner(store_url, tmp_path)
    try:
        want = {"acc-1": Decimal("10.5"), "acc-2": Decimal("6.0")}

        def moved() -> bool:
            return {a.account_id: a.balance for a in asyncio.run(accounts(store_url))} == want

        wait_until(moved, "the saga to move the money")
        runner.terminate()  # SIGTERM also stops it cleanly
        out, err = runner.communicate(timeout=20)
    finally:
        runner.kill()
    assert runner.returncode == 0, err
    assert "running transfers, transfer_saga (kept inline: accounts)" in out
    status = rows(facta("projections", "status", "--store", store_url, cwd=tmp_path).stdout)
    assert status["accounts"][3] == "inline"
    refused = facta("projections", "rebuild", "accounts", "--store", store_url, cwd=tmp_path)
    assert refused.returncode == 1
    assert "maintained inline" in refused.stderr


def test_run_refuses_a_policy_without_the_inline_read_models_it_would_skip(
    store_url: str, tmp_path: Path
) -> None:
    """A runner of the saga alone would append the saga's debits and credits without the
    service's inline `accounts` read model in its transaction hook: the listed balances would
    silently miss them. It refuses to start, names what is missing, and moves no money."""
    asyncio.run(request_transfer_as_the_service(store_url))
    refused = facta(
        "projections",
        "run",
        "--store",
        store_url,
        "--projection",
        "facta.examples.bank.transfers:TransferSaga",
        "--projection",
        "facta.examples.bank.read_model:TransfersProjection",
        cwd=tmp_path,
    )
    assert refused.returncode == 1, refused.stdout
    assert "transfer_saga executes commands, but accounts is maintained inline" in refused.stderr
    assert "--projection MODULE:CLASS" in refused.stderr
    assert "Traceback" not in refused.stderr
    want = {"acc-1": Decimal("15.5"), "acc-2": Decimal("1.0")}  # nothing moved
    assert {a.account_id: a.balance for a in asyncio.run(accounts(store_url))} == want


def test_a_runner_started_before_the_service_keeps_a_declared_read_model_inline(
    store_url: str, tmp_path: Path
) -> None:
    """Started first, with ``--inline`` for the read model the service keeps inline: the
    runner sets it up inline itself, so the saga's debits and credits reach it even though no
    service had registered it when the runner started."""
    runner = start_runner(
        store_url,
        tmp_path,
        "--inline",
        "facta.examples.bank.read_model:AccountsProjection",
        "--projection",
        "facta.examples.bank.transfers:TransferSaga",
        "--projection",
        "facta.examples.bank.read_model:TransfersProjection",
    )
    try:
        wait_until(
            lambda: (
                rows(facta("projections", "status", "--store", store_url, cwd=tmp_path).stdout).get(
                    "accounts", [""] * 4
                )[3]
                == "inline"
            ),
            "the runner to set accounts up inline",
        )
        asyncio.run(request_transfer_as_the_service(store_url))
        want = {"acc-1": Decimal("10.5"), "acc-2": Decimal("6.0")}

        def moved() -> bool:
            return {a.account_id: a.balance for a in asyncio.run(accounts(store_url))} == want

        wait_until(moved, "the saga to move the money")
        runner.terminate()
        out, err = runner.communicate(timeout=20)
    finally:
        runner.kill()
    assert runner.returncode == 0, err
    assert "running transfer_saga, transfers (kept inline: accounts)" in out


def test_inline_refuses_a_policy(store_url: str, tmp_path: Path) -> None:
    refused = facta(
        "projections",
        "run",
        "--store",
        store_url,
        "--inline",
        "facta.examples.bank.transfers:TransferSaga",
        cwd=tmp_path,
    )
    assert refused.returncode == 1
    assert "--inline: 'transfer_saga' is a policy" in refused.stderr

"""``facta relay``: bad input is refused with one line; status shows a relay's checkpoint.
(``facta relay run`` itself is what test_brokers.py kills and restarts.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from facta import (
    Position,
    open_store,
)
from facta.cli import cli
from tests.relay.conftest import Harness, fill

NAME = "nats://127.0.0.1:4222?stream=FACTA"


def test_run_refuses_what_cannot_work(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    runner = CliRunner()
    assert runner.invoke(cli, ["migrate", "--store", store]).exit_code == 0
    for arguments, message in [
        (["--to", "kafka://broker:9092"], "unknown broker URL"),
        (["--to", "nats://127.0.0.1:4222?stream=S&colour=red"], "unknown option 'colour'"),
        (
            ["--to", "nats://127.0.0.1:4222", "--aggregate", "facta.examples.bank.domain"],
            "not MODULE:NAME",
        ),
        (
            ["--to", "nats://127.0.0.1:4222", "--aggregate", "facta.examples.bank.domain:Nope"],
            "has no 'Nope'",
        ),
        (["--to", "nats://127.0.0.1:4222", "--batch-size", "900"], "--max-in-flight"),
        *(
            (["--to", "nats://127.0.0.1:4222", "--partition", bad], "is not P/N")
            for bad in ("4/4", "1", "a/b", "-1/4", "0/0", "0/257", "1/2/3")
        ),
    ]:
        if message == "--max-in-flight":
            arguments += ["--max-in-flight", "100"]
        result = runner.invoke(cli, ["relay", "run", "--store", store, *arguments])
        assert result.exit_code == 2, result.output
        assert message in result.output


def test_status_shows_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "events.db"

    async def prepare() -> None:
        store = await open_store(f"sqlite:///{path}")
        await store.relay_checkpoints.acquire(NAME, "host:1", 10)
        await store.relay_checkpoints.save(NAME, "host:1", Position(0, 0), 0, 10)
        await store.close()

    asyncio.run(prepare())
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["relay", "status", "--store", f"sqlite:///{path}", NAME],
    )
    assert result.exit_code == 0, result.output
    assert "held by host:1" in result.output
    result = runner.invoke(cli, ["relay", "status", "--store", f"sqlite:///{path}", "other"])
    assert result.exit_code == 1
    assert "no relay named 'other'" in result.output


async def test_status_takes_the_url_given_to_run(plain_broker: Harness, tmp_path: Path) -> None:
    """``relay status URL`` with the very URL of ``relay run --to URL``: credentials and
    publisher options included, though the checkpoint is named without them."""
    path = tmp_path / "events.db"
    store = await fill(path, 3, 4)
    head = await store.head()
    await store.close()
    url = plain_broker.relay_url()
    if plain_broker.kind == "rabbitmq":
        url += "&unroutable=drop"  # no queue is bound here
    assert "?" in url  # options (and, for RabbitMQ, a user and password) the name drops
    command = [sys.executable, "-m", "facta.cli", "relay"]
    store_url = f"sqlite:///{path}"
    relay = await asyncio.create_subprocess_exec(
        *command,
        "run",
        "--store",
        store_url,
        "--to",
        url,
        "--quiet",
        stdout=subprocess.DEVNULL,
        env=plain_broker.environment(),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            status = await asyncio.to_thread(
                CliRunner().invoke, cli, ["relay", "status", "--store", store_url, url]
            )
            if status.exit_code == 0 and f"at {head} (head {head})" in status.output:
                break
            assert relay.returncode is None, "the relay exited"
            assert time.monotonic() < deadline, status.output
            await asyncio.sleep(0.1)
        assert "12 published" in status.output
        assert "guest:guest" not in status.output
    finally:
        if relay.returncode is None:
            relay.terminate()
        await asyncio.wait_for(relay.wait(), 15)

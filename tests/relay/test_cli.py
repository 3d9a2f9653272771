"""``facta relay``: bad input is refused with one line; status shows a relay's checkpoint.
(``facta relay run`` itself is what test_brokers.py kills and restarts.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner

from facta import Position
from facta.cli import cli
from facta.relay.checkpoints import SQLiteCheckpoints
from facta.store.sqlite import SQLiteEventStore

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
    ]:
        if message == "--max-in-flight":
            arguments += ["--max-in-flight", "100"]
        result = runner.invoke(cli, ["relay", "run", "--store", store, *arguments])
        assert result.exit_code == 2, result.output
        assert message in result.output


def test_status_shows_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "events.db"

    async def prepare() -> None:
        store = await SQLiteEventStore.open(str(path))
        await store.close()
        checkpoints = SQLiteCheckpoints(str(path), "")
        await checkpoints.acquire(NAME, "host:1", 10)
        await checkpoints.save(NAME, "host:1", Position(0, 0), 0, 10)
        await checkpoints.close()

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

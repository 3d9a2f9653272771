"""The types say what a command may be: a type checker refuses a command the aggregate
does not take (mypy --strict, as the project's own code is checked)."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SAMPLE = """
from decimal import Decimal

from facta import Application
from facta.examples.bank.domain import Account, Deposit
from facta.examples.bank.transfers import RequestTransfer, transfer


async def commands(app: Application) -> None:
    await app.execute(Account(), "a", Deposit(Decimal(1)))
    await app.execute(transfer, "t", RequestTransfer("a", "b", Decimal(1)))
    await app.execute(Account(), "a", RequestTransfer("a", "b", Decimal(1)))  # line 12
"""


def test_a_command_of_another_aggregate_does_not_type_check(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE)
    out, err, status = api.run(
        ["--strict", "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", str(sample)]
    )
    assert status == 1, out + err
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out
    assert errors[0].startswith(f"{sample}:12:"), out

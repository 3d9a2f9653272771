"""The PostgreSQL half of the concurrent start-up campaign (issue 18): see
``test_concurrent_startup.py``. A file of its own so that ``make test``'s parallel run (whole
files per worker) can put the two backends' trials on two workers."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.test_concurrent_startup import Launcher, campaign, launcher

__all__ = ["launcher"]  # the fixture, used here by name


def test_servers_started_together_on_a_fresh_postgresql_schema_all_serve(
    launcher: Launcher, tmp_path: Path
) -> None:
    campaign("postgresql", launcher, tmp_path)

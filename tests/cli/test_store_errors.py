"""A new user's commonest first mistakes with a store URL, through every command that opens
a store: a PostgreSQL database or role that does not exist, a store that is not there yet.
Each gives a line or two naming the problem and what to do, a nonzero exit, no traceback;
and no command but `migrate` and `serve` creates or migrates anything, on any backend.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.cli.test_cli import facta
from tests.conftest import POSTGRES_URL, service_missing

READ_ONLY: list[tuple[str, ...]] = [
    ("streams",),
    ("events", "show", "account-acc-1"),
    ("events", "show", "account-acc-1", "--json"),
    ("events", "tail", "--count", "1"),
    ("events", "tail", "--count", "1", "--json"),
    ("events", "verify"),
    ("projections", "status"),
    ("relay", "status", "nats://127.0.0.1:4222"),
]
"""Commands that only look: they never change a store."""

WRITING: list[tuple[str, ...]] = [
    ("projections", "run"),
    ("projections", "rebuild", "transfers"),
    ("projections", "restart", "transfers"),
    ("relay", "run", "--to", "nats://127.0.0.1:4222"),
]
"""Commands that write to an existing store, but never create one."""

CREATING: list[tuple[str, ...]] = [("migrate",), ("serve", "--port", "0")]
"""The commands that create or migrate a store (serve: on first use, checked before it binds)."""

EVERY = READ_ONLY + WRITING + CREATING

SOME = [
    ("streams",),
    ("events", "tail", "--json"),
    ("projections", "run"),
    ("serve", "--port", "0"),
]
"""A command of each kind, where every one goes the same way as for another case."""


def run_all(
    commands: Sequence[tuple[str, ...]], store_url: str, cwd: Path
) -> list[subprocess.CompletedProcess[str]]:
    """Each command on ``store_url``, a few processes at a time."""
    with ThreadPoolExecutor(4) as pool:
        return list(
            pool.map(lambda command: facta(*command, "--store", store_url, cwd=cwd), commands)
        )


def assert_short_refusal(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    """A nonzero exit with one or two lines on stderr holding ``expected``, no traceback."""
    command = " ".join(result.args[1:])
    assert result.returncode != 0, f"{command}: exit 0\n{result.stdout}"
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, f"{command}:\n{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout, command
    for text in expected:
        assert text in result.stderr, f"{command}: {text!r} not in\n{result.stderr}"


def with_user_and_database(url: str, user: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port or 5432}",
                                     path=f"/{database}"))  # fmt: skip


async def _admin(*statements: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        rows: list[asyncpg.Record] = []
        for statement in statements:
            rows = await connection.fetch(statement)
        return rows
    finally:
        await connection.close()


def admin(*statements: str) -> list[asyncpg.Record]:
    """Run ``statements`` as the test server's superuser; the last one's rows."""
    try:
        return asyncio.run(_admin(*statements))
    except OSError as exc:
        service_missing(f"PostgreSQL is not reachable: {exc}")
        raise


def test_a_database_that_does_not_exist(tmp_path: Path) -> None:
    admin("SELECT 1")
    name = f"facta_missing_{uuid.uuid4().hex[:10]}"
    url = with_user_and_database(POSTGRES_URL, "postgres", name)
    for result in run_all(EVERY, url, tmp_path):
        assert_short_refusal(result, f'database "{name}" does not exist', f"createdb {name}")
    assert not admin(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")


def test_a_role_that_does_not_exist(tmp_path: Path) -> None:
    admin("SELECT 1")
    role = f"facta_nobody_{uuid.uuid4().hex[:10]}"
    url = with_user_and_database(POSTGRES_URL, role, "test")
    for result in run_all(SOME, url, tmp_path):
        assert_short_refusal(result, f'role "{role}" does not exist', f"createuser {role}")


@pytest.fixture
def empty_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    name = f"facta_empty_{uuid.uuid4().hex[:10]}"
    admin(f"CREATE DATABASE {name}")
    try:
        yield with_user_and_database(POSTGRES_URL, "postgres", name)
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def tables_in(url: str) -> list[str]:
    async def query() -> list[str]:
        connection = await asyncpg.connect(url, timeout=5)
        try:
            rows = await connection.fetch(
                "SELECT schemaname || '.' || tablename FROM pg_tables"
                " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
                " UNION ALL SELECT nspname FROM pg_namespace WHERE nspname LIKE 'facta%'"
            )
            return sorted(r[0] for r in rows)
        finally:
            await connection.close()

    return asyncio.run(query())


def test_an_empty_postgres_database_is_refused_and_left_empty(
    empty_database: str, tmp_path: Path
) -> None:
    commands = READ_ONLY + WRITING
    for result in run_all(commands, empty_database, tmp_path):
        assert_short_refusal(
            result, "no facta store in schema 'public'", "create one with `facta migrate`"
        )
    in_a_schema = f"{empty_database}?schema=facta_{uuid.uuid4().hex[:8]}"
    for result in run_all(SOME[:-1], in_a_schema, tmp_path):
        assert_short_refusal(result, "no facta store in schema 'facta_")
    assert tables_in(empty_database) == []

    migrated = facta("migrate", "--store", empty_database, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    streams = facta("streams", "--store", empty_database, cwd=tmp_path)
    assert (streams.returncode, streams.stdout.strip()) == (0, "no streams")


def sqlite_tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
    return [row[0] for row in rows]


def test_sqlite_paths_without_a_store_are_refused_and_left_alone(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    for result in run_all(READ_ONLY + WRITING, f"sqlite:///{missing}", tmp_path):
        assert_short_refusal(result, f"no SQLite file at '{missing}'", "`facta migrate`")
    assert not missing.exists()

    empty = tmp_path / "empty.db"
    empty.touch()
    foreign = tmp_path / "other-app.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    for path, message in [
        (empty, f"no facta store in the SQLite file '{empty}'"),
        (foreign, f"no facta store in the SQLite file '{foreign}'"),
        (text, f"'{text}' is not a SQLite database"),
    ]:
        before = path.read_bytes()
        for result in run_all(SOME[:-1], f"sqlite:///{path}", tmp_path):
            assert_short_refusal(result, message)
        assert path.read_bytes() == before
        assert sorted(os.listdir(tmp_path)) == ["empty.db", "notes.txt", "other-app.db"]


def test_a_store_that_lacks_a_migration_is_refused_until_migrated(tmp_path: Path) -> None:
    path = tmp_path / "facta.db"
    assert facta("migrate", "--store", f"sqlite:///{path}", cwd=tmp_path).returncode == 0
    with sqlite3.connect(path) as connection:  # as a store written by an older facta
        connection.execute("DROP TABLE relay_checkpoints")
        connection.execute("DELETE FROM schema_migrations WHERE version = 3")
    tables = sqlite_tables(path)
    for result in run_all(SOME[:-1], f"sqlite:///{path}", tmp_path):
        assert_short_refusal(result, "lacks migration 0003_relay", "apply it with `facta migrate`")
    assert sqlite_tables(path) == tables
    assert facta("migrate", "--store", f"sqlite:///{path}", cwd=tmp_path).returncode == 0
    assert facta("streams", "--store", f"sqlite:///{path}", cwd=tmp_path).returncode == 0

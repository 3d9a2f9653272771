"""The logs benchmarks/growth.py measures: bank events written straight into each library's
tables (the append paths would take the best part of a day at 50 million events on this
machine), kept between runs, and put back as they were filled after each run.

The layout of a log of ``size`` events (the same for facta and for ``eventsourcing``):

- first, one long account stream of ``size - 10 * accounts`` events (10,000 from 100,000
  events up; a tenth of the log below): an ``AccountOpened``, then ``MoneyDeposited``;
- then ``accounts = (size - 10,000) // 10`` accounts of 10 events each (an ``AccountOpened``,
  nine ``MoneyDeposited``): 99,000 accounts at 1 million events, 999,000 at 10 million and
  4,999,000 at 50 million. Ten events per account at every size, so that what changes from
  one size to the next is the log's size alone (the issue's "1 and 10 million accounts" is
  the order of the accounts at 10 and 50 million);
- the accounts are written in blocks of 1,000 whose events interleave (each block's first
  events, then their second ones, ...): an account's events are 1,000 apart in the log, as
  those of accounts active at the same time are, rather than side by side.

facta's rows are those its Application writes for the bank (the codec's data, time-ordered
version 7 event ids, correlation metadata), except the owner: stored in clear, where the
bank's ``Personal`` field is sealed by the engine on append (reads pass clear values
through; ``sealed_overhead`` says what sealing adds). eventsourcing's rows are what its
mapper makes of the same events (``benchmarks.es_bank``; one opening's and one deposit's
state, timestamp included, repeated), their ids scattered as its random version 4 ones are
(an md5 of the account's number, so that the measures can name them).

Where they live: ``{out}/growth-{library}-{size}.db`` and the PostgreSQL schemas
``bench_growth_{library}_{size}``, each with a ``growth_fill`` row saying what was filled,
when and how fast (a log without it, or of another layout, is filled again).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from facta import Codec, Snapshot, open_store
from facta.examples.bank.domain import Account, AccountOpened, MoneyDeposited
from facta.store.engine import Erasure

POSTGRES = os.environ.get("FACTA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PER_ACCOUNT = 10
BLOCK = 1_000
LONG = 10_000
LAYOUT = "growth-1"  # bumped whenever the layout or the rows change: older fills are redone
CHUNK_BLOCKS = 10  # blocks per transaction: 100,000 events
BASE_MS = 1_700_000_000_000  # the first event's time in the event ids (one per millisecond)
LONG_STREAM = "account-long"

account = Account()
_codec = Codec()
_codec.register_aggregate(account)
OPENED = _codec.encode(AccountOpened("Owner", Decimal("0.0"))).data
# Money as the bank writes it (`as_money`: 1.0, not 1.00).
DEPOSITED = _codec.encode(MoneyDeposited(Decimal("1.0"))).data


@dataclass(frozen=True)
class Layout:
    size: int
    long: int
    accounts: int

    @classmethod
    def of(cls, size: int) -> Layout:
        long = min(LONG, size // 10)
        accounts = (size - long) // PER_ACCOUNT
        return cls(size, size - accounts * PER_ACCOUNT, accounts)

    @property
    def blocks(self) -> int:
        return -(-self.accounts // BLOCK)

    def index(self, account_n: int, version: int) -> int:
        """The 0-based place in the log of account ``account_n``'s event ``version``."""
        block, first = divmod(account_n, BLOCK)
        in_block = min(BLOCK, self.accounts - block * BLOCK)
        return self.long + block * BLOCK * PER_ACCOUNT + (version - 1) * in_block + first

    def order(self, first_block: int, last_block: int) -> Iterator[tuple[int, int]]:
        """(account, version) of the events of blocks [first, last), in log order."""
        for block in range(first_block, min(last_block, self.blocks)):
            accounts = range(block * BLOCK, min((block + 1) * BLOCK, self.accounts))
            for version in range(1, PER_ACCOUNT + 1):
                for n in accounts:
                    yield n, version

    def tail(self, events: int) -> tuple[int, int]:
        """The first account of the fewest last blocks holding ``events`` events (or all the
        accounts' events), and how many they hold: every account there has its
        AccountOpened in it, so that a projection can start at that account."""
        first = self.blocks * BLOCK
        while first > 0 and (self.accounts - first) * PER_ACCOUNT < events:
            first -= BLOCK  # the last block may be short: counted as it is
        first = max(0, first)
        return first, (self.accounts - first) * PER_ACCOUNT


def entity_id(n: int) -> str:
    """Account ``n``'s id in facta (its stream is ``account-`` and this)."""
    return f"acc-{n:08d}"


def es_id(n: int | str) -> str:
    """Account ``n``'s id in eventsourcing (32 hex digits; ``"long"``: the long stream)."""
    return hashlib.md5(f"acc{n}".encode()).hexdigest()


def _uuid7(n: int, variant: str) -> str:
    # A version 7 UUID for the n-th event: its millisecond, then n (unique, time-ordered).
    h = f"{BASE_MS + n:012x}7000{variant}{n:015x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _facta_row(n: int, stream: str, version: int, started: float) -> tuple[Any, ...]:
    correlation = _uuid7(n, "9")
    metadata = b'{"correlation_id":"%s","causation_id":"%s"}' % ((correlation.encode(),) * 2)
    kind, data = ("AccountOpened", OPENED) if version == 1 else ("MoneyDeposited", DEPOSITED)
    return (_uuid7(n, "8"), stream, "account", version, kind, 1, data, metadata, started + n / 1e3)


@contextlib.contextmanager
def _sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection in autocommit (each statement its own transaction, else BEGIN), closed
    after (sqlite3's own context manager commits but leaves it open)."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def _remove(path: Path) -> None:
    """A SQLite file and its WAL, gone."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def sqlite_path(out: Path, library: str, size: int) -> Path:
    return out / f"growth-{library}-{size}.db"


def schema_name(library: str, size: int) -> str:
    return f"bench_growth_{'es' if library == 'eventsourcing' else library}_{size}"


def facta_url(store: str, out: Path, size: int) -> str:
    if store == "sqlite":
        return f"sqlite:///{sqlite_path(out, 'facta', size)}"
    return f"{POSTGRES}?schema={schema_name('facta', size)}"


def es_env(store: str, out: Path, size: int) -> dict[str, str]:
    if store == "sqlite":
        path = sqlite_path(out, "eventsourcing", size)
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "test",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "postgres",
        "POSTGRES_SCHEMA": schema_name("eventsourcing", size),
    }


# -- room on the disk ------------------------------------------------------------------------

ROOM = {"sqlite": 500, "postgres": 700}
"""Bytes a filled event takes on each store, rounded up from what fills measured (facta's
393 and 520; eventsourcing's fewer), with room for what the fill writes on the side."""
SPARE = 10 * 2**30
"""Disk a fill leaves free: the machine's other work (and PostgreSQL) needs some."""


async def check_room(store: str, out: Path, size: int) -> None:
    """Refuse (SystemExit) a fill that would leave less than SPARE free on the disk that
    holds it (the database's data directory for PostgreSQL, when it is on this machine)."""
    where = out
    if store == "postgres":
        connection = await asyncpg.connect(POSTGRES)
        try:
            where = Path(await connection.fetchval("SHOW data_directory"))
        except asyncpg.PostgresError:  # not a role that may see it: nothing to check
            return
        finally:
            await connection.close()
    try:
        free = shutil.disk_usage(where).free
    except OSError:  # a server elsewhere: its disk is not ours to see
        return
    need = size * ROOM[store]
    if need > free - SPARE:
        raise SystemExit(
            f"filling {size:,} events on {store} needs about {need / 2**30:,.0f} GB and"
            f" {where} has {free / 2**30:,.0f} GB free (keeping {SPARE / 2**30:.0f} GB spare)"
        )


# -- the marker of a finished fill ----------------------------------------------------------

_MARKER = (
    "CREATE TABLE {t} (layout TEXT, size BIGINT, last_id BIGINT, seconds DOUBLE PRECISION,"
    " filled_at DOUBLE PRECISION, table_bytes BIGINT, index_bytes BIGINT)"
)
_MARKER_KEYS = ("layout", "size", "last_id", "seconds", "filled_at", "table_bytes", "index_bytes")


def _sqlite_marker(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    with _sqlite(path) as c:
        try:
            row = c.execute(f"SELECT {', '.join(_MARKER_KEYS)} FROM growth_fill").fetchone()
        except sqlite3.DatabaseError:  # no such table, or worse: a fill that did not finish
            return None
    return dict(zip(_MARKER_KEYS, row, strict=True)) if row else None


async def _postgres_marker(connection: asyncpg.Connection, schema: str) -> dict[str, Any] | None:
    if not await connection.fetchval("SELECT to_regclass($1)", f"{schema}.growth_fill"):
        return None
    row = await connection.fetchrow(f"SELECT {', '.join(_MARKER_KEYS)} FROM {schema}.growth_fill")
    return dict(row) if row else None


def _usable(marker: dict[str, Any] | None, size: int) -> bool:
    return marker is not None and marker["layout"] == LAYOUT and marker["size"] == size


# -- facta ------------------------------------------------------------------------------------


async def facta_fill(store: str, out: Path, size: int) -> dict[str, Any]:
    """The facta log of ``size`` events on ``store``, filled unless a fill is there; its
    marker (``reused`` says which)."""
    url = facta_url(store, out, size)
    if store == "sqlite":
        path = sqlite_path(out, "facta", size)
        marker = _sqlite_marker(path)
        if _usable(marker, size):
            return {**marker, "reused": True}  # type: ignore[dict-item]
        _remove(path)
        await check_room(store, out, size)
        await (await open_store(url, create=True)).close()
        started = time.perf_counter()
        last = await asyncio.to_thread(_facta_sqlite_rows, path, Layout.of(size))
    else:
        schema = schema_name("facta", size)
        connection = await asyncpg.connect(POSTGRES)
        try:
            marker = await _postgres_marker(connection, schema)
            if _usable(marker, size):
                return {**marker, "reused": True}  # type: ignore[dict-item]
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await check_room(store, out, size)
            await (await open_store(url, create=True)).close()
            started = time.perf_counter()
            last = await _facta_postgres_rows(connection, schema, Layout.of(size))
        finally:
            await connection.close()
    engine = await open_store(url)
    try:
        await _facta_snapshot(engine, Layout.of(size))
        seconds = time.perf_counter() - started  # generating it, not measuring it below
        measured = await engine.require(Erasure).log_size()
    finally:
        await engine.close()
    assert measured.events == size, (measured.events, size)
    return await _write_marker(store, out, "facta", size, last, seconds, measured)


def _facta_sqlite_rows(path: Path, layout: Layout) -> int:
    started = time.time() - layout.size / 1e3
    with _sqlite(path) as c:
        # A fill that fails is done again from nothing: no journal, no syncs, and a cache
        # big enough for the indexes' hot pages.
        c.execute("PRAGMA journal_mode = OFF")
        c.execute("PRAGMA synchronous = OFF")
        c.execute("PRAGMA cache_size = -1000000")
        insert = (
            "INSERT INTO events (event_id, stream_id, category, version, type, schema_version,"
            " data, metadata, recorded_at) VALUES (?,?,?,?,?,?,?,?,?)"
        )
        c.execute("BEGIN")
        c.executemany(
            insert,
            (_facta_row(v - 1, LONG_STREAM, v, started) for v in range(1, layout.long + 1)),
        )
        c.execute("COMMIT")
        for block in range(0, layout.blocks, CHUNK_BLOCKS):
            rows = (
                _facta_row(layout.index(n, v), f"account-{entity_id(n)}", v, started)
                for n, v in layout.order(block, block + CHUNK_BLOCKS)
            )
            c.execute("BEGIN")
            c.executemany(insert, rows)
            c.execute("COMMIT")
        c.execute("PRAGMA analysis_limit = 1000")  # statistics from a sample: seconds at 50M
        c.execute("ANALYZE")
        c.execute("PRAGMA journal_mode = WAL")
        last: int = c.execute("SELECT max(position) FROM events").fetchone()[0]
    return last


def _pg_uuid7(n: str, variant: str) -> str:
    # _uuid7 in SQL: 32 hex digits cast to uuid and back give the canonical text form.
    return (
        f"(lpad(to_hex({BASE_MS}::bigint + {n}), 12, '0') || '7000{variant}'"
        f" || lpad(to_hex({n}), 15, '0'))::uuid::text"
    )


def _facta_pg_insert(schema: str, rows: str) -> str:
    """The INSERT of the facta rows ``rows`` (a SELECT of v, stream and n, the event's
    place in the log) gives, made in SQL as _facta_row makes them in Python."""
    metadata = (
        'convert_to(\'{"correlation_id":"\' || c || \'","causation_id":"\' || c'
        " || '\"}', 'UTF8')"
    )
    return (
        f"INSERT INTO {schema}.events (commit_xid, version, recorded_at, schema_version,"
        " event_id, stream_id, category, type, data, metadata)"
        f" SELECT pg_current_xact_id(), v, $1::float8 + n / 1e3, 1, {_pg_uuid7('n', '8')},"
        " stream, 'account', CASE WHEN v = 1 THEN 'AccountOpened' ELSE 'MoneyDeposited' END,"
        f" CASE WHEN v = 1 THEN $2::bytea ELSE $3::bytea END, {metadata}"
        f" FROM (SELECT v, stream, n, {_pg_uuid7('n', '9')} AS c FROM ({rows}) r) g"
        " ORDER BY n"
    )


async def _facta_postgres_rows(connection: asyncpg.Connection, schema: str, layout: Layout) -> int:
    started = time.time() - layout.size / 1e3
    # One statement (and transaction) per chunk of blocks, as appends commit many.
    long_rows = (
        f"SELECT v, '{LONG_STREAM}' AS stream, v - 1 AS n FROM generate_series(1, $4::int) v"
    )
    account_rows = (
        "SELECT v, 'account-acc-' || lpad(s::text, 8, '0') AS stream,"
        f" {layout.long} + (s / {BLOCK}) * {BLOCK * PER_ACCOUNT}"
        f" + (v - 1) * least({BLOCK}, {layout.accounts} - (s / {BLOCK}) * {BLOCK})"
        f" + s % {BLOCK} AS n"
        " FROM generate_series($4::int, $5::int) s, generate_series(1, 10) v"
    )
    await connection.execute(
        _facta_pg_insert(schema, long_rows), started, OPENED, DEPOSITED, layout.long
    )
    insert = _facta_pg_insert(schema, account_rows)
    for block in range(0, layout.blocks, CHUNK_BLOCKS):
        first = block * BLOCK
        last_account = min((block + CHUNK_BLOCKS) * BLOCK, layout.accounts) - 1
        await connection.execute(insert, started, OPENED, DEPOSITED, first, last_account)
    # The visibility map and hint bits an aged log has, and the planner's statistics.
    await connection.execute(f"VACUUM (ANALYZE) {schema}.events")
    last: int = await connection.fetchval(f"SELECT max(sequence) FROM {schema}.events")
    return last


async def _facta_snapshot(engine: Any, layout: Layout) -> None:
    """The long stream's snapshot at its last version (what a load with a snapshot uses)."""
    state = account.initial
    records = await engine.read_stream(LONG_STREAM)
    for record in records:
        state = account.evolve(state, _codec.decode(record))  # type: ignore[arg-type]
    await engine.save_snapshot(
        Snapshot(
            LONG_STREAM,
            layout.long,
            account.state_schema_version,
            msgspec.json.encode(state),
            records[-1].recorded_at,
        )
    )


async def _write_marker(
    store: str, out: Path, library: str, size: int, last: int, seconds: float, measured: Any
) -> dict[str, Any]:
    marker = {
        "layout": LAYOUT,
        "size": size,
        "last_id": last,
        "seconds": round(seconds, 1),
        "filled_at": time.time(),
        "table_bytes": measured.table_bytes,
        "index_bytes": measured.index_bytes,
    }
    values = tuple(marker.values())
    if store == "sqlite":
        with _sqlite(sqlite_path(out, library, size)) as c:
            c.execute(_MARKER.format(t="growth_fill"))
            c.execute("INSERT INTO growth_fill VALUES (?,?,?,?,?,?,?)", values)
    else:
        table = f"{schema_name(library, size)}.growth_fill"
        connection = await asyncpg.connect(POSTGRES)
        try:
            await connection.execute(_MARKER.format(t=table))
            await connection.execute(f"INSERT INTO {table} VALUES ($1,$2,$3,$4,$5,$6,$7)", *values)
        finally:
            await connection.close()
    return {**marker, "reused": False}


# -- putting a log back as it was filled ----------------------------------------------------


async def reset(library: str, store: str, out: Path, size: int, last_id: int) -> None:
    """Remove what a run wrote into the filled log: the events after the fill's last (the
    deposits), facta's read models and snapshots other than the fill's. (eventsourcing's
    projection writes to a database of its own.)"""
    if store == "sqlite":
        await asyncio.to_thread(_reset_sqlite, library, sqlite_path(out, library, size), last_id)
        return
    schema = schema_name(library, size)
    connection = await asyncpg.connect(POSTGRES)
    try:
        if library == "eventsourcing":
            await connection.execute(
                f"DELETE FROM {schema}.bank_events WHERE notification_id > $1", last_id
            )
            await connection.execute(f"VACUUM {schema}.bank_events")
            return
        await connection.execute(f"DELETE FROM {schema}.events WHERE sequence > $1", last_id)
        await connection.execute(f"DELETE FROM {schema}.event_tags WHERE sequence > $1", last_id)
        await connection.execute(
            f"DELETE FROM {schema}.snapshots WHERE stream_id <> $1", LONG_STREAM
        )
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'rm\\_%'",
            schema,
        )
        for (table,) in tables:
            await connection.execute(f'DROP TABLE {schema}."{table}" CASCADE')
        for table in ("projection_slots", "projection_runners", "projection_dead_letters"):
            await connection.execute(f"DELETE FROM {schema}.{table}")
        await connection.execute(f"VACUUM {schema}.events")  # the deposits' space reusable
    finally:
        await connection.close()


def _reset_sqlite(library: str, path: Path, last_id: int) -> None:
    with _sqlite(path) as c:
        c.execute("BEGIN IMMEDIATE")
        if library == "eventsourcing":
            c.execute("DELETE FROM stored_events WHERE rowid > ?", (last_id,))
        else:
            c.execute("DELETE FROM events WHERE position > ?", (last_id,))
            c.execute("DELETE FROM event_tags WHERE position > ?", (last_id,))
            c.execute("DELETE FROM snapshots WHERE stream_id <> ?", (LONG_STREAM,))
            found = c.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'rm\\_%'"
                " ESCAPE '\\'"
            ).fetchall()
            for (table,) in found:
                c.execute(f'DROP TABLE "{table}"')
            for table in (
                "projection_slots",
                "projection_runners",
                "projection_dead_letters",
                "projection_pins",
            ):
                c.execute(f"DELETE FROM {table}")
        c.execute("COMMIT")


async def sealed_overhead(scratch: Path) -> int:
    """How many bytes more an AccountOpened takes with its owner sealed, as the bank's
    Application stores it, than in clear as the fill stores it."""
    from facta import Application
    from facta.examples.bank.domain import OpenAccount

    engine = await open_store(f"sqlite:///{scratch / 'sealed.db'}", create=True)
    try:
        await Application(engine).execute(account, "x", OpenAccount("Owner", Decimal("0.0")))
        stored = await engine.stored_events.read_stream("account-x")
    finally:
        await engine.close()
    return len(stored[0].data) - len(OPENED)

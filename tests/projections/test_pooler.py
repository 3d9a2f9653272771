"""Runners behind a transaction-pooling pooler: a real PgBouncer (``pool_mode = transaction``,
four server connections for every client) between two ``facta projections run`` processes
and PostgreSQL (issue 22: leases that work where session state does not).

The two share a projection of eight partitions over 40,000 events, four each. One is paused
(SIGSTOP) past its lease in the middle of the catch-up: the other takes its partitions over
from their checkpoints, and once resumed the paused one commits nothing (the audit trigger of
``test_partition_fleet`` records every checkpoint move, with its owner, as the server saw it)
and logs the leases it lost. At the end every stream's document holds each of its versions
once, in order, and the catalog shows every partition at the head. Inline read models, whose
pins are session locks, are refused there with what to do instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from facta import open_store
from facta.errors import StoreSetupError
from facta.projections import InlineProjections, ReadStore
from tests.conftest import (
    POSTGRES_URL,
    ScratchPostgresStore,
    service_missing,
)
from tests.projections import test_partition_fleet as fleet
from tests.projections.helpers import Counters, Tick, codec
from tests.projections.test_partition_fleet import (
    AUDIT,
    PER_ROUND,
    ROUNDS,
    audit,
    check_the_paused_runner,
    documents,
    execute,
    generate,
    pause_past_its_lease,
    shares,
    spawn,
    stop,
    until,
)

# The fleet test's fixtures: a scratch schema with few connections, and its read store.
store, reads = fleet.store, fleet.reads

# A paused runner holds a transaction open until the server ends it (a lease later), which
# holds back every reader's events in the cluster: tests that count them run alone as well.
pytestmark = pytest.mark.serial

STREAMS = 400  # x 100 versions: 40,000 events
SERVER_CONNECTIONS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def pooler() -> Iterator[str]:
    """A PgBouncer in transaction mode in front of the test PostgreSQL; its URL."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        service_missing("pgbouncer is not installed (make test installs it)")
    server = urlsplit(POSTGRES_URL)
    # Not under pytest's folder, which only root may enter (PgBouncer runs as postgres).
    folder = Path(tempfile.mkdtemp(prefix="facta-pgbouncer-"))
    port = _free_port()
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.hostname} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {SERVER_CONNECTIONS}\n"
        "max_client_conn = 200\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    # It refuses to run as root: -u names the user it switches to.
    user = ["-u", "postgres"] if os.geteuid() == 0 else []
    if user:
        shutil.chown(folder, "postgres")
        for file in folder.iterdir():
            shutil.chown(file, "postgres")
    process = subprocess.Popen(
        [binary, *user, str(folder / "pgbouncer.ini")], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, stderr = process.communicate()
                log = (
                    (folder / "pgbouncer.log").read_text()
                    if (folder / "pgbouncer.log").exists()
                    else ""
                )
                raise AssertionError(f"pgbouncer did not start: {stderr}{log}") from None
            time.sleep(0.05)
    try:
        yield f"postgresql://{server.username}@127.0.0.1:{port}{server.path}"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


async def test_runners_behind_a_transaction_pooler_hand_over_and_a_paused_one_commits_nothing(
    pooler: str, store: ScratchPostgresStore, reads: ReadStore, tmp_path: Path
) -> None:
    head = await generate(store, streams=STREAMS)
    schema = store.schema
    await execute(AUDIT.format(schema=schema))
    url = f"{pooler}?schema={schema}&pooler=transaction&pool_size=1"
    workers = [await spawn(url, tmp_path, i) for i in range(2)]
    try:
        found = await until(
            reads, lambda f: shares(f) == {w.pid: 4 for w in workers}, "four partitions each", 60
        )
        paused, other = workers
        pause = await pause_past_its_lease(store, reads, found, paused, other)
        assert any(pause.rows[p].position < head for p in pause.held), "no work left to take"
        found = await until(
            reads,
            lambda f: (
                shares(f) == {w.pid: 4 for w in workers} and all(s.position == head for s in f)
            ),
            "the catch-up to end with four each",
            90,
        )
        for worker in workers:
            worker.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(worker.process.wait(), 20)
    finally:
        for worker in workers:
            await stop(worker)

    built = await documents(reads)
    assert {d.stream for d in built.values()} == {f"tick-{s}" for s in range(STREAMS)}
    assert all(d.versions == list(range(1, ROUNDS * PER_ROUND + 1)) for d in built.values())

    # The paused runner moved no checkpoint from the moment it stopped until it took a
    # partition again; its partitions were taken only once their leases had run out; and
    # some of them had a batch refused once it resumed (on the others it may have been idle).
    check_the_paused_runner(await audit(schema), pause, paused, other, every=False)


async def test_inline_read_models_behind_the_pooler_are_refused_with_what_to_do(
    pooler: str, store: ScratchPostgresStore
) -> None:
    """Their pins are session advisory locks, which the pooler would lend to other clients:
    a clear refusal, not pins that silently hold nothing."""
    pooled = await open_store(f"{pooler}?schema={store.schema}&pooler=transaction")
    inline = InlineProjections(pooled, [Counters()], codec=codec)
    try:
        with pytest.raises(StoreSetupError, match="connect this process to PostgreSQL directly"):
            await inline.setup()
        # Appends, reads and runners' leases go through it.
        await pooled.append("tick-1", [codec.encode(Tick(1))], 0)
        assert [e.stream_id for e in await pooled.read_all()] == ["tick-1"]
    finally:
        await inline.close()
        await pooled.close()


async def test_an_unknown_pooler_mode_is_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="pooler must be 'transaction' or 'none', not 'session'"):
        await open_store(f"{POSTGRES_URL}?pooler=session")

"""PostgreSQL clusters of the tests' own: a primary and a synchronous standby made with
``initdb`` and ``pg_basebackup`` (the server binaries ``pg_config --bindir`` names), on ports
of their own, run as the ``postgres`` user (the server refuses root), stopped and removed
afterwards. Nothing of the machine's own PostgreSQL is touched."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import service_missing


def server_binaries() -> Path:
    """The folder of ``initdb``, ``pg_ctl`` and ``pg_basebackup``, or skip (fail in CI)."""
    if os.geteuid() != 0:
        service_missing("test clusters are made as root (run as the postgres user)")
    try:
        folder = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        service_missing("pg_config is not installed: no PostgreSQL server binaries")
    binaries = Path(folder)
    if not all((binaries / tool).exists() for tool in ("initdb", "pg_ctl", "pg_basebackup")):
        service_missing(f"initdb, pg_ctl or pg_basebackup is missing from {binaries}")
    return binaries


def _as_postgres(*command: str | Path, timeout: float = 60) -> str:
    finished = subprocess.run(
        ["runuser", "-u", "postgres", "--", *map(str, command)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if finished.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {finished.stdout}\n{finished.stderr}")
    return finished.stdout


@dataclass
class Cluster:
    """One PostgreSQL server of the test's: its data directory and port."""

    binaries: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        log = self.data.parent / f"{self.data.name}.log"
        try:
            _as_postgres(self.binaries / "pg_ctl", "-D", self.data, "-l", log, "-w", "start")
        except RuntimeError as exc:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{exc}\n{self.data.name}'s log:\n{tail}") from None

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            _as_postgres(self.binaries / "pg_ctl", "-D", self.data, "-m", "immediate", "stop")

    def kill(self) -> None:
        """SIGKILL the server (its postmaster; the backends end as they notice)."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    def promote(self) -> None:
        _as_postgres(self.binaries / "pg_ctl", "-D", self.data, "-w", "promote")

    def sql(self, statement: str) -> str:
        return _as_postgres(
            self.binaries.parent / "bin" / "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-Atc",
            statement,
        ).strip()


class Pair:
    """A primary and a synchronous standby in a new folder under the system's temporary
    one (pytest's are root's alone): a commit is acknowledged once the standby has it, so
    promoting the standby loses nothing acknowledged."""

    def __init__(self, primary_port: int, standby_port: int, *, listen: str = "127.0.0.1") -> None:
        self.binaries = server_binaries()
        root = self.root = Path(tempfile.mkdtemp(prefix="facta-topology-"))
        shutil.chown(root, "postgres", "postgres")
        self.primary = Cluster(self.binaries, root / "primary", primary_port)
        self.standby = Cluster(self.binaries, root / "standby", standby_port)
        self.listen = listen

    @property
    def url(self) -> str:
        """Both servers, the writable one chosen by the driver."""
        return (
            f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
            "/postgres?target_session_attrs=read-write"
        )

    def start(self, *, standby: bool = True) -> None:
        """Make and start the primary, and (``standby``) its synchronous standby."""
        started = time.monotonic()
        _as_postgres(
            self.binaries / "initdb",
            "-D",
            self.primary.data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "-N",  # no fsync of the new files: a test cluster
        )
        settings = {
            "port": self.primary.port,
            "listen_addresses": f"'{self.listen}'",
            "unix_socket_directories": f"'{self.root}'",
            "wal_level": "replica",
            "max_wal_senders": 5,
            "synchronous_standby_names": "'standby'" if standby else "''",
            "shared_buffers": "'32MB'",
            "max_connections": 80,
        }
        with (self.primary.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        with (self.primary.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 0.0.0.0/0 trust\n")  # app nodes in network namespaces
        self.primary.start()
        self.setup_seconds = time.monotonic() - started
        if not standby:
            return
        _as_postgres(
            self.binaries / "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            "postgres",
            "-D",
            self.standby.data,
            "-R",
            "-X",
            "stream",
        )
        with (self.standby.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.standby.port}\n")
            # Promoted, it has no standby of its own: waiting for one would stop every
            # commit (the copied setting names the old standby; a failover tool clears it).
            conf.write("synchronous_standby_names = ''\n")
        with (self.standby.data / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                f"primary_conninfo = 'host=127.0.0.1 port={self.primary.port} user=postgres"
                " application_name=standby'\n"
            )
        self.standby.start()
        self.wait_for_sync()
        self.setup_seconds = time.monotonic() - started

    def wait_for_sync(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while self.primary.sql("SELECT sync_state FROM pg_stat_replication") != "sync":
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not become synchronous")
            time.sleep(0.1)

    def remove(self) -> None:
        for cluster in (self.primary, self.standby):
            with contextlib.suppress(RuntimeError, OSError, ValueError):
                cluster.stop()
        shutil.rmtree(self.root, ignore_errors=True)

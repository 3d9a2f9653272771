"""A NATS JetStream cluster of the tests' own: three ``nats-server`` processes with routes to
each other, on ports and in a folder of their own, stopped and removed afterwards."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import nats

from facta.relay.nats_servers import servers
from tests.conftest import service_missing
from tests.http.conftest import free_port


class NatsCluster:
    """``size`` servers named ``node0``... in cluster ``facta-test``; :attr:`url` names all."""

    def __init__(self, size: int = 3) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not Path(binary).exists():
            service_missing("nats-server is not installed")
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="facta-nats-"))
        self.client_ports = [free_port() for _ in range(size)]
        self.cluster_ports = [free_port() for _ in range(size)]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def url(self) -> str:
        return "nats://" + ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    def _start(self, index: int) -> None:
        routes = ",".join(
            f"nats://127.0.0.1:{p}" for i, p in enumerate(self.cluster_ports) if i != index
        )
        log = (self.root / f"node{index}.log").open("ab")
        self.processes[index] = subprocess.Popen(
            [
                self.binary,
                "-a", "127.0.0.1",
                "-p", str(self.client_ports[index]),
                "-n", f"node{index}",
                "-js",
                "-sd", str(self.root / f"node{index}"),
                "--cluster_name", "facta-test",
                "--cluster", f"nats://127.0.0.1:{self.cluster_ports[index]}",
                "--routes", routes,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    async def start(self, within: float = 30.0) -> None:
        """Start every server; return once JetStream answers (a meta leader is elected)."""
        for index in range(len(self.processes)):
            self._start(index)
        deadline = time.monotonic() + within
        while not await self._jetstream_ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the NATS cluster's JetStream is not ready:\n{self.logs()}")
            await asyncio.sleep(0.2)

    async def _jetstream_ready(self) -> bool:
        try:
            nc = await nats.connect(servers(self.url), connect_timeout=1, max_reconnect_attempts=1)
        except Exception:
            return False
        try:
            await nc.jetstream(timeout=1).account_info()
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    def kill(self, index: int) -> None:
        """SIGKILL server ``index``."""
        process = self.processes[index]
        assert process is not None
        process.kill()
        process.wait(10)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-1500:] for p in self.root.glob("*.log"))

    def stop(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        shutil.rmtree(self.root, ignore_errors=True)

"""``facta serve --workers N``: N server processes answering on one listening socket.

The parent binds the port once and starts N ``facta serve`` processes that inherit the
socket (``--fd``); the kernel hands each new connection to one of them. Each process builds
the app itself, with its own connection pool, state cache and projection runner (leases keep
the runners from applying an event twice). The parent only watches: a worker that dies is
started again, and SIGTERM or SIGINT stops them all (each finishes its open requests).

Why not uvicorn's own ``workers``: it rebuilds the app from an import string in each process
and pickles its configuration, and facta's app comes from a factory called with the store's
URL and options, behind a request-deadline protocol class made at run time.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType
from urllib.parse import urlsplit

log = logging.getLogger("facta.serve")

ONE_PROCESS_SCHEMES = {"sqlite": "a SQLite store", "memory": "memory://"}
"""Stores one process owns: the SQLite engine orders the log with its one writer thread, and
a memory store lives in its process. Serving them from several processes is refused."""

RESTART_PAUSE = 1.0  # seconds before starting again a worker that died within a second


def refuse_one_process_store(store_url: str, workers: int) -> str | None:
    """Why ``store_url`` cannot be served by ``workers`` processes, or None."""
    scheme = urlsplit(store_url).scheme.split("+", 1)[0]
    if workers <= 1 or scheme not in ONE_PROCESS_SCHEMES:
        return None
    return (
        f"--workers {workers} needs a store that several processes can write:"
        f" {ONE_PROCESS_SCHEMES[scheme]} belongs to one process (its writer orders the log)."
        " Serve it with one worker, or move to PostgreSQL"
        " (docs: how-to/sqlite-to-postgres)."
    )


def listen(host: str, port: int) -> socket.socket:
    """The listening socket the workers share (inheritable: passed on by descriptor)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Starts ``workers`` processes of ``python -m facta.cli serve *arguments --fd FD`` on
    ``sock`` and keeps them running until a signal stops it."""

    def __init__(self, sock: socket.socket, workers: int, arguments: Sequence[str]) -> None:
        self.sock = sock
        self.workers = workers
        self.arguments = list(arguments)
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * workers
        self._started = [0.0] * workers
        self._stopping = False

    def _command(self) -> list[str]:
        fd = str(self.sock.fileno())
        return [sys.executable, "-m", "facta.cli", "serve", *self.arguments, "--fd", fd]

    def _start(self, index: int) -> None:
        self.processes[index] = subprocess.Popen(self._command(), pass_fds=(self.sock.fileno(),))
        self._started[index] = time.monotonic()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; the exit code (0 after a clean stop)."""
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.workers):
                self._start(index)
            while not self._stopping:
                self._restart_the_dead()
                time.sleep(0.2)
            return self._stop_all()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.sock.close()

    def _restart_the_dead(self) -> None:
        for index, process in enumerate(self.processes):
            if process is None or process.poll() is None:
                continue
            log.warning(
                "worker %d (pid %d) exited with %s: starting it again",
                index,
                process.pid,
                process.returncode,
            )
            if time.monotonic() - self._started[index] < 1.0:
                time.sleep(RESTART_PAUSE)  # dying at start-up: do not spin
            if not self._stopping:
                self._start(index)

    def _stop_all(self, grace: float = 10.0) -> int:
        running = [p for p in self.processes if p is not None and p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return 0

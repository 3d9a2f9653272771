"""A launcher that starts real ``facta serve`` processes in a fraction of a second each.

Starting ``facta serve`` from nothing costs about a second of imports; a test that starts
hundreds of servers cannot pay that each time. This process imports facta, the bank service
and the HTTP stack once, then forks a child per server at the moment it is asked to: each
child runs the real command line, ``facta.cli.main(["serve", ...])``, and from there on is an
ordinary ``facta serve`` process (its own event loop, connections and port).

It speaks JSON lines on stdin/stdout:

- ``{"store": URL, "ports": [..], "offsets": [..], "logdir": DIR}``: fork one server per
  port, each ``offset`` seconds after the request arrived; answers ``{"pids": [..]}``.
- ``{"exited": true}``: answers ``{"exits": {pid: code}}`` for the servers that have ended.
- ``{"stop": true}``: SIGTERM every server it started, SIGKILL those still running after
  10 s; answers ``{"exits": [..]}`` (exit codes, negative for a signal).

End of input stops every server and ends the launcher. Run it as
``python -m tests.reliability.fork_servers``.
"""

from __future__ import annotations

import encodings.idna  # noqa: F401
import json
import os
import signal
import sys
import tempfile
import time
from typing import Any

# Everything a server imports, loaded before any fork: the children start from here.
import anyio._backends._asyncio  # noqa: F401
import asyncpg  # noqa: F401
import uvicorn
import uvicorn.loops.auto

import facta.cli
import facta.examples.bank.service
import facta.store.memory
import facta.store.postgres.read_models
import facta.store.sqlite.read_models


def _warm() -> None:
    """Load what building an app and a server's settings import on first use (OpenTelemetry,
    Litestar's and uvicorn's parts): about 190 modules a child would otherwise import."""
    never_opened = os.path.join(tempfile.gettempdir(), "fork-servers-never-opened.db")
    app = facta.examples.bank.service.create_app(f"sqlite:///{never_opened}")
    uvicorn.Config(app, log_level="warning").load()


def _serve(store_url: str, port: int, log_path: str) -> None:
    """In the child: become ``facta serve`` on ``port``, logging to ``log_path``."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.environ.pop("FACTA_STORE", None)
        args = ["serve", "--store", store_url, "--port", str(port), "--log-level", "warning"]
        try:
            facta.cli.main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:
        print(f"launcher child failed: {exc!r}", file=sys.stderr, flush=True)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _start(request: dict[str, Any]) -> list[int]:
    began = time.monotonic()
    order = sorted(range(len(request["ports"])), key=lambda i: request["offsets"][i])
    pids = [0] * len(order)
    for i in order:
        delay = began + request["offsets"][i] - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        port = request["ports"][i]
        log_path = os.path.join(request["logdir"], f"serve-{port}.log")
        pid = os.fork()
        if pid == 0:
            _serve(request["store"], port, log_path)
        pids[i] = pid
    return pids


def _reap(pids: list[int], exits: dict[int, int]) -> None:
    """Note in ``exits`` the exit code of each of ``pids`` that has ended."""
    for pid in pids:
        if pid not in exits:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                exits[pid] = os.waitstatus_to_exitcode(status)


def _stop(pids: list[int], exits: dict[int, int]) -> list[int]:
    for pid in pids:
        if pid not in exits:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10.0
    while len(exits) < len(pids):
        for pid in pids:
            if pid in exits:
                continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                exits[pid] = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    return [exits[pid] for pid in pids]


def main() -> None:
    _warm()
    running: list[int] = []
    exits: dict[int, int] = {}
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("exited"):
                _reap(running, exits)
                answer: dict[str, Any] = {"exits": {p: exits[p] for p in running if p in exits}}
            elif request.get("stop"):
                answer = {"exits": _stop(running, exits)}
                running, exits = [], {}
            else:
                pids = _start(request)
                running.extend(pids)
                answer = {"pids": pids}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        _stop(running, exits)


if __name__ == "__main__":
    main()

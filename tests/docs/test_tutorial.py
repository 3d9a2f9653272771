"""The tutorial, followed as a reader follows it: in one shell session, in a new folder.

The page's ``python title="FILE"`` blocks are the files it tells the reader to write; its
``sh`` blocks are the commands to run, one line each, in one bash session (so ``cd``,
``export`` and the activated virtual environment carry over, as in a terminal). A ``text``
block right after an ``sh`` block is what those commands print: a line ``...`` there stands
for any number of lines, ``...`` within a line for any text. A ``facta serve`` line is
started in the background (the reader's second terminal) and waited for.

The whole tutorial runs four times in the same folder: twice on SQLite (its PostgreSQL step
left out) and twice on PostgreSQL (every step), so a second run must work as the first did.
Lines marked ``# once`` run the first time only. The reader's names are swapped for the
test's: the checkout's path for ``/path/to/facta``, a free port for 8000, a database of its
own for ``bank``.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import POSTGRES_URL, service_missing
from tests.http.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "tutorial.md"
POSTGRES_STEP = "## 6. Move to PostgreSQL"
_FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```\s*$", re.S | re.M)
_HEADING = re.compile(r"^## .*$", re.M)


@dataclass
class Step:
    """One thing the page tells the reader to do."""

    kind: str  # "file", "commands"
    section: str
    text: str
    name: str = ""
    expected: str | None = None


def steps(markdown: str) -> list[Step]:
    """The page's files and commands, in order, each with the output the page shows."""
    found: list[Step] = []
    for match in _FENCE.finditer(markdown):
        headings = _HEADING.findall(markdown, 0, match.start())
        section = headings[-1] if headings else ""
        info, body = match.group("info").strip(), match.group("body")
        title = re.search(r'title="([^"]+)"', info)
        if info.startswith("python") and title:
            found.append(Step("file", section, body, name=title.group(1)))
        elif info == "sh":
            found.append(Step("commands", section, body))
        elif info == "text" and found and found[-1].kind == "commands":
            found[-1].expected = body
    return found


def matches(expected: str, output: str) -> bool:
    """Whether ``output`` is what the page shows (``...`` as described above)."""
    pattern = []
    for line in expected.strip("\n").splitlines():
        if line.strip() == "...":
            pattern.append(r"(?:.*\n)*?")
        else:
            pattern.append(".*?".join(map(re.escape, line.split("..."))) + r"\n")
    return re.fullmatch("".join(pattern), output.strip("\n") + "\n") is not None


def _reader_path() -> str:
    """The PATH of a reader's terminal: this machine's, without the test run's own venv."""
    own = str(Path(sys.executable).parent)
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != own)


@dataclass
class Shell:
    """One bash session, as in a terminal: commands run one after another in it."""

    cwd: Path
    process: subprocess.Popen[str] = field(init=False)
    lines: queue.Queue[str] = field(init=False, default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=self.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={"PATH": _reader_path(), "HOME": str(self.cwd), "LANG": "C.UTF-8"},
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def run(self, command: str, timeout: float = 180.0) -> tuple[int, str]:
        """Run ``command``; its exit status and what it printed."""
        marker = f"__done_{uuid.uuid4().hex}__"
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\nprintf '\\n{marker} %s\\n' $?\n")
        self.process.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{command!r} still running after {timeout} s") from None
            if line.startswith(marker):  # printed after a newline of its own
                return int(line.split()[1]), "".join(output).rstrip("\n")
            output.append(line)

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)


class Reader:
    """Follows the page: writes its files, runs its commands, compares what they print."""

    def __init__(self, folder: Path, swaps: dict[str, str]) -> None:
        self.shell = Shell(folder)
        self.swaps = swaps
        self.done_once: set[str] = set()
        self.servers: list[tuple[int, int]] = []  # (pid, port)

    def swap(self, text: str) -> str:
        for old, new in self.swaps.items():
            text = text.replace(old, new)
        return text

    def follow(self, page: list[Step], *, postgres: bool) -> None:
        for step in page:
            if step.section == POSTGRES_STEP and not postgres:
                continue
            if step.kind == "file":
                _, cwd = self.shell.run("pwd")
                (Path(cwd.strip()) / step.name).write_text(step.text)
                continue
            outputs = [self.command(line) for line in step.text.splitlines() if line.strip()]
            printed = "\n".join(o for o in outputs if o)
            if step.expected is not None:
                assert matches(step.expected, printed), (
                    f"{step.section}: the page shows\n{step.expected}\nbut the commands"
                    f" printed\n{printed}"
                )
        self.stop_servers()

    def command(self, line: str) -> str:
        line = self.swap(line)
        if line.rstrip().endswith("# once"):
            if line in self.done_once:
                return ""
            self.done_once.add(line)
        if line.startswith("facta serve"):
            self.start_server(line)
            return ""
        status, output = self.shell.run(line)
        assert status == 0, f"{line!r} exited with {status}:\n{output}"
        return output

    def start_server(self, line: str) -> None:
        port = int(re.search(r"--port (\d+)", line).group(1))  # type: ignore[union-attr]
        _, pid = self.shell.run(f"{line} > serve-{port}.log 2>&1 & echo $!")
        self.servers.append((int(pid), port))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.shell.run(f"kill -0 {pid}")[0] == 0:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        _, log = self.shell.run(f"cat serve-{port}.log")
        raise AssertionError(f"{line!r} did not answer /health:\n{log}")

    def stop_servers(self) -> None:
        for pid, _ in self.servers:  # Ctrl-C, as the page says
            self.shell.run(f"kill -INT {pid}; while kill -0 {pid} 2>/dev/null; do sleep 0.1; done")
        self.servers.clear()


def _postgres_or_skip() -> None:
    parts = urlsplit(POSTGRES_URL)
    check = subprocess.run(
        ["pg_isready", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)],
        capture_output=True,
    )
    if check.returncode != 0:
        service_missing(f"PostgreSQL is unreachable at {parts.hostname}:{parts.port}")


@pytest.mark.timeout(600)
def test_the_tutorial_runs_as_written_twice_on_sqlite_and_on_postgres(tmp_path: Path) -> None:
    _postgres_or_skip()
    page = steps(PAGE.read_text())
    assert {s.name for s in page if s.kind == "file"} >= {"bank.py", "service.py"}
    database = f"tutorial_{uuid.uuid4().hex[:12]}"
    port = free_port()
    reader = Reader(
        tmp_path,
        {
            "/path/to/facta": str(ROOT),
            "-U postgres bank": f"-U postgres {database}",
            "localhost:5432/bank": f"localhost:5432/{database}",
            "localhost:8000": f"localhost:{port}",
            "--port 8000": f"--port {port}",
        },
    )
    try:
        for postgres in (False, False, True, True):
            reader.follow(page, postgres=postgres)
    finally:
        reader.stop_servers()
        reader.shell.close()
        subprocess.run(
            ["dropdb", "--if-exists", "--force", "-h", "127.0.0.1", "-U", "postgres", database],
            capture_output=True,
        )


def test_a_missing_line_of_output_is_noticed() -> None:
    assert matches("a\n...\nz", "a\nb\nc\nz")
    assert matches("acc-1: ... has 120", "acc-1: Alice has 120")
    assert not matches("a\nz", "a\nb\nz")
    assert not matches("acc-1: Alice has 120", "acc-1: Alice has 12")

"""Every Python sample in the documentation runs, page by page, as a reader would run it.

The fenced ``python`` blocks of a page run in order in one namespace (later blocks use what
earlier ones defined), in a fresh working directory, with top-level ``await`` allowed (one
event loop per page, as in an async REPL). A page that reads ``DATABASE_URL`` gets the
machine's PostgreSQL, in a schema of its own that is dropped afterwards. Samples check what
they claim with ``assert``, so a page whose claims drift from the code fails here.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import socket
import sys
import types
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import POSTGRES_URL, service_missing

DOCS = Path(__file__).resolve().parents[2] / "docs"
_FENCE = re.compile(
    r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```\s*$", re.S | re.M
)


def python_samples(markdown: str) -> list[tuple[int, str]]:
    """The ``python`` fenced blocks of a page: (line number, code without the indent)."""
    samples = []
    for match in _FENCE.finditer(markdown):
        language = match.group("info").strip().split(" ")[0].lstrip("{.")
        if language not in ("python", "py") or "title=" in match.group("info"):
            continue  # a titled block is a whole file to write (see test_tutorial.py)
        indent = len(match.group("indent"))
        code = "\n".join(line[indent:] for line in match.group("body").splitlines())
        samples.append((markdown.count("\n", 0, match.start()) + 2, code))
    return samples


PAGES = [p for p in sorted(DOCS.rglob("*.md")) if python_samples(p.read_text())]


def test_the_docs_have_samples() -> None:
    assert len(PAGES) >= 10, [str(p) for p in PAGES]


async def _drop_schema(schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


async def _reachable() -> str | None:
    import asyncpg

    try:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=3)
    except Exception as exc:
        return str(exc)
    await connection.close()
    return None


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or 4222), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_the_samples_of_a_page_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = page.read_text()
    monkeypatch.chdir(tmp_path)
    schema = None
    if "DATABASE_URL" in text:
        problem = asyncio.run(_reachable())
        if problem is not None:
            service_missing(f"PostgreSQL is unreachable: {problem}")
        schema = f"docs_{uuid.uuid4().hex[:12]}"
        separator = "&" if "?" in POSTGRES_URL else "?"
        monkeypatch.setenv("DATABASE_URL", f"{POSTGRES_URL}{separator}schema={schema}")
    if "NATS_URL" in text:
        nats_url = os.environ.get("FACTA_TEST_NATS", "nats://127.0.0.1:4222")
        if not _listening(nats_url):
            service_missing(f"NATS is unreachable at {nats_url}")
        monkeypatch.setenv("NATS_URL", nats_url)
    # A real module: msgspec and Litestar resolve annotations through sys.modules.
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    environment = dict(os.environ)  # what a sample sets (Django's settings) stays its own
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        for line, code in python_samples(text):
            compiled = compile(
                code,
                f"{page.relative_to(DOCS)}:{line}",
                "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            )
            result = eval(compiled, namespace)  # the sample's own code, as a reader runs it
            if inspect.iscoroutine(result):
                loop.run_until_complete(result)
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
        del sys.modules[module.__name__]
        os.environ.clear()
        os.environ.update(environment)
        if schema is not None:
            asyncio.run(_drop_schema(schema))

"""SQLite durability: an acknowledged append survives the process being killed mid-write."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from facta.store.sqlite import SQLiteEventStore

WRITER = """
import asyncio, sys
from facta import NewEvent
from facta.store.sqlite import SQLiteEventStore

async def main(path):
    store = await SQLiteEventStore.open(path)
    async def writer(w):
        version = await store.stream_version(f"tick-{w}")
        while True:
            event = NewEvent("Tick", b"{}")
            await store.append(f"tick-{w}", [event, NewEvent("Tock", b"{}")], version)
            version += 2
            print(event.event_id, flush=True)  # acknowledged: the append has committed
    await asyncio.gather(*(writer(w) for w in range(8)))

asyncio.run(main(sys.argv[1]))
"""


async def test_acknowledged_appends_survive_sigkill(tmp_path: Path) -> None:
    path = str(tmp_path / "crash.db")
    acknowledged: list[str] = []
    for _round in range(3):
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, path, stdout=asyncio.subprocess.PIPE
        )
        assert child.stdout is not None
        target = len(acknowledged) + 300
        while len(acknowledged) < target:
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line, "the writer died on its own"
            acknowledged.append(line.decode().strip())
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
        # Acknowledgements already in the pipe when the kill landed count too.
        acknowledged.extend(line.decode().strip() for line in await _rest(child.stdout))

    store = await SQLiteEventStore.open(path)
    try:
        missing = [i for i in acknowledged if await store.find_event(i) is None]
        assert missing == []
        log = await store.read_all(limit=1_000_000)
        assert len({e.event_id for e in log}) == len(log)
        for w in range(8):
            versions = [e.version for e in log if e.stream_id == f"tick-{w}"]
            assert versions == list(range(1, len(versions) + 1))
            assert len(versions) % 2 == 0  # both events of every append, or neither
    finally:
        await store.close()


async def _rest(stream: asyncio.StreamReader) -> list[bytes]:
    return [line for line in (await stream.read()).splitlines() if line.strip()]

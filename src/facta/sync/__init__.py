"""facta for synchronous code: the Application, the engine, read models and the projection
runner, called without asyncio (a Django view, a Flask route, a script, a notebook cell).

    from facta.sync import Application, open_store

    with open_store("sqlite:///bank.db") as engine:
        app = Application(engine)
        result = app.execute(Account(), "acc-1", OpenAccount("Alice", Decimal("100")))

How: each engine runs facta's async core unchanged on a private event loop in a thread of
its own, and a call hands its coroutine to that loop and waits for the result. So the
drivers stay the async ones (asyncpg, the SQLite engine's own writer), every guarantee of
the async API holds as it is (per-stream serialisation, retries on conflict, group commit
across threads), and calls from many threads at once run concurrently on the loop. The
price is one hand-over between threads per call (tens of microseconds; see
benchmarks/sync_facade.py): small beside a database round trip, large beside the memory
engine's. Everything is thread-safe; close the engine (or use ``with``) to end its thread.
"""

from facta.sync._loop import EngineClosed
from facta.sync.application import Application
from facta.sync.engine import Engine, open_store
from facta.sync.read_models import Documents, ReadStore
from facta.sync.runner import ProjectionRunner

__all__ = [
    "Application",
    "Documents",
    "Engine",
    "EngineClosed",
    "ProjectionRunner",
    "ReadStore",
    "open_store",
]

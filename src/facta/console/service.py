"""The console's view of one store: what its pages and JSON endpoints read, opened once per
server and closed with it.

It opens its own engine on the store's URL (the service's app is the factory's business, and
the console must work beside any of them), an Application to load aggregates at any version,
and a ReadStore for the catalog. While the server runs it samples the log's head and each
projection's lag every :data:`SAMPLE_EVERY` seconds, for the overview's charts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from facta.application import Application
from facta.codec import Codec
from facta.domain import Aggregate
from facta.projections import ProjectionStatus, ReadStore
from facta.projections._target import Handler
from facta.store import open_store
from facta.store.base import category_of
from facta.store.browse import Browser, Totals
from facta.store.engine import Browsing, Engine

log = logging.getLogger("facta.console")

SAMPLE_EVERY = 2.0
"""Seconds between two samples of the head and the lags (the charts' resolution)."""

SAMPLES_KEPT = 300
"""Samples kept: ten minutes of history at the default rate."""

IDLE_AFTER = 600.0
"""Seconds without a request to the console after which it stops sampling (a console nobody
looks at costs the store nothing); the next request starts it again."""

TOTALS_COST = 20
"""The overview's count of events and streams is reused for this many times as long as it
took (at least :data:`SAMPLE_EVERY` seconds): counting is a pass over an index, 1 ms on a
small store but a third of a second on PostgreSQL for a million events, too much for every
refresh there, so a large store's counts are kept for longer."""


@dataclass(slots=True)
class Sample:
    """The log's head and each projection's lag (events) at one moment."""

    at: float
    head: int
    lags: dict[str, int]


@dataclass
class ConsoleConfig:
    """What a console is given: the store, the projections and policies whose code it may
    run (to rebuild one or retry a parked event), and the aggregates whose state it shows."""

    store_url: str
    handlers: Sequence[Handler] = ()
    aggregates: Sequence[Aggregate[Any, Any, Any]] = ()
    title: str = "facta console"


@dataclass
class Rebuild:
    """A rebuild the console started: its task, and how far it got."""

    task: asyncio.Task[None]
    started_at: float
    events: int = 0
    error: str | None = None


class ConsoleService:
    """The open store and everything the console's routes read from it."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self.handlers = {type(h).name: h for h in config.handlers}
        self.aggregates = {a.name: a for a in config.aggregates}
        self.samples: deque[Sample] = deque(maxlen=SAMPLES_KEPT)
        self.rebuilds: dict[str, Rebuild] = {}
        self._opening = asyncio.Lock()
        self._store: Engine | None = None
        self._app: Application | None = None
        self._read_store: ReadStore | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._totals: tuple[float, Totals] | None = None  # (when to count again, counts)
        self._seen = time.monotonic()  # the last request

    async def open(self) -> Engine:
        """The engine, opened on first use (inside the server's event loop, which the
        drivers bind their connections to); every request to the console comes here, which
        keeps the sampler going."""
        self._seen = time.monotonic()
        if self._store is not None:
            if self._sampler is None or self._sampler.done():
                self._sampler = asyncio.get_running_loop().create_task(self._sample())
            return self._store
        async with self._opening:
            if self._store is None:
                store = await open_store(self.config.store_url, create=False)
                codec = Codec()
                for aggregate in self.config.aggregates:
                    codec.register_aggregate(aggregate)
                self._app = Application(store, codec=codec)
                self._read_store = ReadStore(store)
                self._store = store
                self._sampler = asyncio.get_running_loop().create_task(self._sample())
        return self._store

    async def application(self) -> Application:
        """An Application on the store (loads aggregates; executes a policy's commands)."""
        await self.open()
        assert self._app is not None
        return self._app

    async def read_store(self) -> ReadStore:
        """The ReadStore of the store's projection catalog."""
        await self.open()
        assert self._read_store is not None
        return self._read_store

    async def browser(self) -> Browser | None:
        """The engine's Browsing capability (None: an engine without it)."""
        return (await self.open()).capability(Browsing)

    async def totals(self) -> Totals | None:
        """The count of events and streams, reused for a while (:data:`TOTALS_COST`); None
        for an engine without browsing."""
        browser = await self.browser()
        if browser is None:
            return None
        started = time.monotonic()
        if self._totals is None or started >= self._totals[0]:
            counted = await browser.totals()
            took = time.monotonic() - started
            self._totals = (started + max(SAMPLE_EVERY, TOTALS_COST * took), counted)
        return self._totals[1]

    def aggregate_of(self, stream_id: str) -> Aggregate[Any, Any, Any] | None:
        """The registered aggregate whose streams ``stream_id`` is one of."""
        return self.aggregates.get(category_of(stream_id))

    async def statuses(self) -> list[ProjectionStatus]:
        """Every projection slot's status."""
        return await (await self.read_store()).status()

    async def _sample(self) -> None:
        while time.monotonic() - self._seen < IDLE_AFTER:
            with contextlib.suppress(Exception):  # a store outage leaves a hole in the chart
                await self.take_sample()
            await asyncio.sleep(SAMPLE_EVERY)

    async def take_sample(self) -> Sample:
        """Sample the head and the lags now (the overview also takes one per request)."""
        statuses = await self.statuses()
        head = statuses[0].head if statuses else await (await self.open()).head()
        lags: dict[str, int] = {}
        for s in statuses:
            if s.active:  # a partitioned one lags as much as its slowest partition
                lags[s.name] = max(lags.get(s.name, 0), s.lag_events)
        sample = Sample(time.time(), head.sequence, lags)
        if not self.samples or sample.at - self.samples[-1].at >= SAMPLE_EVERY / 2:
            self.samples.append(sample)
        return sample

    async def close(self) -> None:
        """Stop the sampler and the rebuilds, and close the store."""
        tasks = [t for t in (self._sampler, *(r.task for r in self.rebuilds.values())) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(Exception):
                await store.close()


@dataclass
class Series:
    """The overview's charts: times, events per second, and each projection's lag."""

    at: list[float] = field(default_factory=list)
    events_per_second: list[float] = field(default_factory=list)
    lags: dict[str, list[int]] = field(default_factory=dict)


def series(samples: Sequence[Sample]) -> Series:
    """The rates and lags between consecutive samples."""
    found = Series()
    names = sorted({name for s in samples for name in s.lags})
    for name in names:
        found.lags[name] = []
    for before, after in itertools.pairwise(samples):
        found.at.append(round(after.at, 3))
        elapsed = max(after.at - before.at, 1e-6)
        found.events_per_second.append(round(max(0, after.head - before.head) / elapsed, 2))
        for name in names:
            found.lags[name].append(after.lags.get(name, 0))
    return found

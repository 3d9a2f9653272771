"""Runs one workload for one library on one backend in this (fresh) process; prints JSON.

python -m benchmarks.worker LIBRARY BACKEND WORKLOAD SCALE SCRATCH_DIR
"""

from __future__ import annotations

import asyncio
import inspect
import os
import resource
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.raw_limits import RAW, RAW_SCHEMA
from benchmarks.telemetry import configure_from_env
from benchmarks.workloads import WORKLOADS, Measurement, Scale, Target

PG_DSN = os.environ.get("FACTA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def target_for(backend: str, scratch: Path) -> Target:
    if backend == "memory":
        return Target(backend, "memory://", {"PERSISTENCE_MODULE": "eventsourcing.popo"})
    if backend == "sqlite":
        return Target(
            backend,
            f"sqlite:///{scratch / 'facta.db'}",
            {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(scratch / "es.db")},
        )
    if backend == "postgres":
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        return Target(
            backend,
            f"{PG_DSN}?schema={schema}",
            {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": "test",
                "POSTGRES_HOST": "127.0.0.1",
                "POSTGRES_PORT": "5432",
                "POSTGRES_USER": "postgres",
                "POSTGRES_PASSWORD": "postgres",
                "POSTGRES_SCHEMA": schema,
            },
        )
    raise ValueError(f"unknown backend {backend!r}")


async def _schema(target: Target, create: bool) -> None:
    import asyncpg

    schema = target.es_env["POSTGRES_SCHEMA"]
    connection = await asyncpg.connect(PG_DSN)
    try:
        if create:
            await connection.execute(f"CREATE SCHEMA {schema}")
        else:
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


def run(library: str, backend: str, workload: str, scale: Scale, scratch: Path) -> Measurement:
    scratch.mkdir(parents=True, exist_ok=True)
    target = target_for(backend, scratch)
    if library == "raw":
        function: Any = RAW[(backend, workload)]
    elif library == "raw-schema":
        function = RAW_SCHEMA[(backend, workload)]
    else:
        _, facta_side, es_side = WORKLOADS[workload]
        function = facta_side if library == "facta" else es_side
        if function is None:
            raise NotImplementedError(f"no {library} side for {workload}")
    if backend == "postgres":
        asyncio.run(_schema(target, create=True))
    try:
        if inspect.iscoroutinefunction(function):
            result: Measurement = asyncio.run(function(target, scale))
        else:
            result = function(target, scale)
    finally:
        if backend == "postgres":
            asyncio.run(_schema(target, create=False))
    return result


def main() -> None:
    library, backend, workload, scale_name, scratch = sys.argv[1:6]
    configure_from_env()  # FACTA_BENCH_OTEL=1: with the OpenTelemetry SDK recording
    result = run(library, backend, workload, Scale.named(scale_name), Path(scratch))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(msgspec.json.encode({**asdict(result), "peak_mb": round(peak_mb, 1)}).decode())


if __name__ == "__main__":
    main()

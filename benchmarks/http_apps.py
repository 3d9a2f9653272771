"""Variants of the bank service for benchmarks/http.py (``--app benchmarks.http_apps:NAME``),
to show what each part of the service costs a deposit.

- ``commands_only``: the accounts resource alone, no read model, no saga: the command path.
- ``async_read_model``: the accounts read model and the transfer saga on a ProjectionRunner
  in the server process, instead of the inline read model.
"""

from __future__ import annotations

import asyncio
import contextlib

from litestar import Litestar

from facta import Application, open_store
from facta.examples.bank.read_model import AccountsProjection
from facta.examples.bank.service import ACCOUNTS, TRANSFERS
from facta.examples.bank.transfers import TransferSaga
from facta.http import Runtime, create_app
from facta.projections import ProjectionRunner


def commands_only(store_url: str, *, projections: bool = True) -> Litestar:
    """The accounts resource on a plain Application."""

    async def open_application() -> Application:
        return Application(await open_store(store_url))

    return create_app(Runtime(open_application), [ACCOUNTS])


def async_read_model(store_url: str, *, projections: bool = True) -> Litestar:
    """The accounts read model kept by an in-process runner (batched), not inline."""

    async def open_application() -> Application:
        store = await open_store(store_url)
        application = Application(store)
        runner = ProjectionRunner(store, [AccountsProjection(), TransferSaga()], app=application)
        task = asyncio.get_running_loop().create_task(runner.run())

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await runner.close()

        runtime.cleanup.push_async_callback(stop)
        return application

    runtime = Runtime(open_application)
    return create_app(runtime, [ACCOUNTS, TRANSFERS])

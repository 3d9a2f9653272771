"""The bank's facta objects: opened once per process, on the first request that needs them
(facta.sync closes engines still open when the process exits).

One engine serves every request thread (Django runs sync views in threads): the
synchronous facade is thread-safe, so the views share it rather than open a store each.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from django.conf import settings

from facta.examples.bank.domain import Account
from facta.examples.bank.read_model import AccountsProjection, AccountSummary
from facta.sync import Application, Documents, Engine, ReadStore, open_store


@dataclass(frozen=True)
class Bank:
    """What the views use: the engine, the application and the accounts read model."""

    engine: Engine
    app: Application
    accounts: Documents[AccountSummary]
    account: Account


_lock = threading.Lock()
_opened: list[Bank] = []


def bank() -> Bank:
    """The process's bank, opened on first use from ``settings.FACTA_STORE`` (thread-safe:
    requests racing for the first one open one store). Raises what opening the store raises
    (StoreUnavailable, StoreSetupError)."""
    if _opened:
        return _opened[0]
    with _lock:
        if not _opened:
            engine = open_store(settings.FACTA_STORE)
            try:
                # The accounts read model kept inline, as the Litestar bank service keeps it:
                # a list never lags a command that returned, and both may share the store.
                app = Application(engine, inline=[AccountsProjection()])
            except BaseException:
                engine.close()
                raise
            accounts = ReadStore(engine).documents(AccountsProjection)
            _opened.append(Bank(engine, app, accounts, Account()))
        return _opened[0]


def close() -> None:
    """Close the process's bank, if open (the next request opens it again): for tests, and
    for servers that end workers without ending the process."""
    with _lock:
        if _opened:
            _opened.pop().engine.close()

"""The bank-account HTTP service of the seed, on facta's HTTP layer.

``POST /accounts/{id}`` takes the seed's commands and answers with the account as ``GET
/accounts/{id}`` shows it: ``{"id": "acc-001", "owner": "Alice", "balance": 1300.0,
"version": 3}``. ``facta serve`` runs it (see :func:`create_app`).
"""

from __future__ import annotations

import os
from decimal import Decimal

import msgspec
from litestar import Litestar

from bank.domain import Account, AccountState, OpenAccount
from facta import Application, open_store
from facta.http import AggregateResource, Runtime
from facta.http import create_app as create_http_app

DEFAULT_STORE = "sqlite:///facta.db"
"""The embedded default: a SQLite file in the working directory."""


class AccountView(msgspec.Struct):
    """An account as the API shows it (the seed's shape)."""

    id: str
    owner: str
    balance: Decimal
    version: int


def account_view(entity_id: str, version: int, state: AccountState) -> AccountView:
    """The API's view of an account's state at a version."""
    return AccountView(entity_id, state.owner, state.balance, version)


ACCOUNTS = AggregateResource(
    Account(),
    "/accounts",
    account_view,
    AccountView,
    creation_commands=(OpenAccount,),
    tag="accounts",
    noun="account",
)


def create_app(store_url: str | None = None, *, projections: bool = True) -> Litestar:
    """The bank service on the store at ``store_url`` (default: ``FACTA_STORE``, else a SQLite
    file ``facta.db`` in the working directory). The store is opened when the server starts.
    """
    url = store_url or os.environ.get("FACTA_STORE") or DEFAULT_STORE

    async def open_application() -> Application:
        return Application(await open_store(url))

    return create_http_app(
        Runtime(open_application),
        [ACCOUNTS],
        title="facta bank",
        description="Bank accounts, event-sourced: open, deposit, withdraw; state at any"
        " version or time; the full history; the global event feed.",
    )

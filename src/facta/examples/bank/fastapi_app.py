"""The bank accounts on FastAPI: the seed's account routes, as the Litestar service has them.

Served by uvicorn, on the store in ``FACTA_STORE`` (default: a SQLite file ``facta.db`` in
the working directory)::

    FACTA_STORE=sqlite:///bank.db uvicorn --factory facta.examples.bank.fastapi_app:create_app

``POST /accounts/{id}``, ``GET /accounts/{id}`` and ``GET /accounts/{id}/events`` answer as
the Litestar service's routes do (the same bodies, headers and errors); ``GET /accounts``
lists accounts from the ``accounts`` read model, kept inline, with a FastAPI route of the
app's own; ``/health`` says the process answers. Needs only the ``fastapi`` extra.
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import FastAPI, Query

from facta import Application, open_store
from facta.examples.bank.domain import Account, OpenAccount
from facta.examples.bank.read_model import Accounts, AccountsProjection
from facta.examples.bank.views import AccountView, account_view
from facta.fastapi import (
    AggregateResource,
    Runtime,
    add_error_handlers,
    aggregate_router,
    lifespan,
)
from facta.projections import InlineProjections, ReadStore

DEFAULT_STORE = "sqlite:///facta.db"
"""The embedded default: a SQLite file in the working directory."""

ACCOUNTS = AggregateResource(
    Account(),
    "/accounts",
    account_view,
    AccountView,
    creation_commands=(OpenAccount,),
    tag="accounts",
    noun="account",
)


def create_app(store_url: str | None = None) -> FastAPI:
    """The bank accounts on the store at ``store_url`` (default: ``FACTA_STORE``, else
    ``sqlite:///facta.db``), opened when the server starts."""
    url = store_url or os.environ.get("FACTA_STORE") or DEFAULT_STORE
    accounts: list[Accounts] = []

    async def open_application() -> Application:
        store = await open_store(url)
        inline = InlineProjections(store, [AccountsProjection()])
        await inline.setup()
        read_store = ReadStore(store)
        runtime.cleanup.push_async_callback(inline.close)
        runtime.cleanup.push_async_callback(read_store.close)
        accounts[:] = [Accounts(read_store)]
        return Application(store, transaction_hook=inline)

    runtime = Runtime(open_application)
    app = FastAPI(
        title="facta bank on FastAPI",
        description="Bank accounts, event-sourced: open, deposit, withdraw; state at any"
        " version or time; the full history.",
        lifespan=lifespan(runtime),
    )
    add_error_handlers(app)
    app.include_router(aggregate_router(ACCOUNTS, runtime))

    @app.get("/accounts", tags=["accounts"], summary="Account ids and owners, by id")
    async def list_accounts(
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[dict[str, str]]:
        runtime.application  # noqa: B018 - 503 until the store is open
        page = await accounts[0].list(limit=limit)
        return [{"id": item.account_id, "owner": item.owner} for item in page.items]

    @app.get("/health", tags=["operations"], summary="The process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app

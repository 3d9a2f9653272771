"""The bank-account HTTP service of the seed, on facta's HTTP layer.

``POST /accounts/{id}`` takes the seed's commands and answers with the account as ``GET
/accounts/{id}`` shows it: ``{"id": "acc-001", "owner": "Alice", "balance": 1300.0,
"version": 3}``. ``GET /accounts`` lists accounts from the ``accounts`` read model, kept
inline (in each append's transaction, so a list never lags a command that returned).
``POST /transfers/{id}`` requests a transfer that the transfer saga carries out; ``GET
/transfers`` lists transfers from the ``transfers`` read model, kept asynchronously (it may
lag a transfer's last step by a moment). The saga and that read model run in-process unless
the service is started with ``projections=False`` (``facta serve --no-projections``; then run
them with ``facta projections run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

import msgspec
from litestar import Litestar, get
from litestar.params import Parameter

from facta import Application, open_store
from facta.examples.bank.domain import MAX_AMOUNT, Account, OpenAccount, as_money
from facta.examples.bank.read_model import (
    Accounts,
    AccountsProjection,
    AccountSummary,
    Transfers,
    TransfersProjection,
    TransferSummary,
)
from facta.examples.bank.transfers import RequestTransfer, Transfer, TransferSaga
from facta.examples.bank.views import AccountView, TransferView, account_view, transfer_view
from facta.http import (
    AggregateResource,
    ApiError,
    ApiKeys,
    PositionParameter,
    Runtime,
    caught_up,
    timestamp,
)
from facta.http import create_app as create_http_app
from facta.http.errors import ErrorsAsSent, documented_errors
from facta.projections import InlineProjections, ProjectionRunner, ReadStore
from facta.store.engine import Engine

DEFAULT_STORE = "sqlite:///facta.db"
"""The embedded default: a SQLite file in the working directory."""

MAX_LIST_PAGE = 500


class AccountListItem(msgspec.Struct):
    """An account in a list: the seed's shape plus when it was opened and last changed."""

    id: str
    owner: str
    balance: Decimal
    version: int
    opened_at: str
    updated_at: str

    def __post_init__(self) -> None:
        self.balance = as_money(self.balance)  # 1300.0 and 10.25 however it was computed


class TransferListItem(msgspec.Struct):
    """A transfer in a list, from the read model: its request, status and when it changed."""

    id: str
    status: str
    source: str
    target: str
    amount: Decimal
    reason: str | None
    version: int
    requested_at: str
    updated_at: str

    def __post_init__(self) -> None:
        self.amount = as_money(self.amount)  # 5.0, as the seed writes money


class TransferList(msgspec.Struct):
    """A page of transfers; pass ``next`` as ``after`` for the following page (null: last)."""

    transfers: list[TransferListItem]
    next: str | None


def _transfer_item(summary: TransferSummary) -> TransferListItem:
    return TransferListItem(
        summary.transfer_id,
        summary.status,
        summary.source,
        summary.target,
        summary.amount,
        summary.reason,
        summary.version,
        timestamp(summary.requested_at),
        timestamp(summary.updated_at),
    )


class AccountList(msgspec.Struct):
    """A page of accounts; pass ``next`` as ``after`` for the following page (null: last)."""

    accounts: list[AccountListItem]
    next: str | None


def _list_item(summary: AccountSummary) -> AccountListItem:
    return AccountListItem(
        summary.account_id,
        summary.owner,
        summary.balance,
        summary.version,
        timestamp(summary.opened_at),
        timestamp(summary.updated_at),
    )


ACCOUNTS = AggregateResource(
    Account(),
    "/accounts",
    account_view,
    AccountView,
    creation_commands=(OpenAccount,),
    tag="accounts",
    noun="account",
)

TRANSFERS = AggregateResource(
    Transfer(),
    "/transfers",
    transfer_view,
    TransferView,
    commands=(RequestTransfer,),  # the other transfer commands are the saga's own
    creation_commands=(RequestTransfer,),
    tag="transfers",
    noun="transfer",
)


def _min_balance(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ApiError(422, f"min_balance must be a number, not {text[:40]!r}") from None
    if not value.is_finite() or abs(value) > MAX_AMOUNT:
        raise ApiError(422, f"min_balance must be a finite number within ±{MAX_AMOUNT}")
    return value


class _Queries:
    """The read side's queries, set when the service opens its store."""

    accounts: Accounts
    transfers: Transfers
    read_store: ReadStore
    log: Engine  # the store commands append to (the read store's may be a standby)


def create_app(
    store_url: str | None = None,
    *,
    projections: bool = True,
    api_keys: ApiKeys | None = None,
    cors_origins: Sequence[str] = (),
    read_store: str | None = None,
) -> Litestar:
    """The bank service on the store at ``store_url`` (default: ``FACTA_STORE``, else a SQLite
    file ``facta.db`` in the working directory). The store is opened when the server starts.
    With ``projections``, the transfer saga runs in this process. With ``api_keys``, every
    request but the health probes must present one. ``cors_origins``: the origins whose
    browser pages may call the API (CORS is off without them; see facta.http.create_app).
    ``read_store``: the URL of a standby of the store's database (a streaming replica) that
    the read-model lists are queried on; with a command's position they wait for the standby
    to have replayed it, so they never answer older than the command.
    """
    url = store_url or os.environ.get("FACTA_STORE") or DEFAULT_STORE
    read_replica = read_store or os.environ.get("FACTA_READ_STORE") or None
    queries = _Queries()

    async def open_application() -> Application:
        store = await open_store(url)
        inline = InlineProjections(store, [AccountsProjection()])
        try:
            await inline.setup()
            application = Application(store, transaction_hook=inline)
            read_store = ReadStore(store)
        except BaseException:
            await inline.close()
            await store.close()
            raise
        # Closed last (first in, last out): the saga's commands append through it.
        runtime.cleanup.push_async_callback(inline.close)
        runtime.cleanup.push_async_callback(read_store.close)
        queries.log = store
        if read_replica is not None:
            replica = await open_store(read_replica, create=False)
            runtime.cleanup.push_async_callback(replica.close)
            read_store = ReadStore(replica, replica=True)
        queries.read_store = read_store
        queries.accounts = Accounts(read_store)
        queries.transfers = Transfers(read_store)
        if projections:
            runner = ProjectionRunner(
                store, [TransferSaga(), TransfersProjection()], app=application
            )
            task = asyncio.get_running_loop().create_task(runner.run())

            async def stop_runner() -> None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                await runner.close()

            runtime.cleanup.push_async_callback(stop_runner)
        return application

    runtime = Runtime(open_application)

    @get(
        "/accounts",
        summary="List accounts from the read model",
        description="Filtered by owner and minimum balance, sorted, one page at a time.",
        tags=["accounts"],
        operation_id="list_accounts",
        responses=documented_errors(422, 503),
        operation_class=ErrorsAsSent,
    )
    async def list_accounts(
        owner: Annotated[
            str | None, Parameter(required=False, max_length=200, pattern=r"^[^\x00]*$")
        ] = None,
        min_balance: Annotated[
            str | None,
            Parameter(
                required=False,
                max_length=40,
                pattern=r"^-?[0-9]{1,12}(\.[0-9]{1,10})?$",
                description="A number.",
            ),
        ] = None,
        sort: Annotated[
            Literal["account_id", "owner", "balance"], Parameter(description="The sort key.")
        ] = "account_id",
        descending: Annotated[bool, Parameter(description="Largest first.")] = False,
        after: Annotated[
            str | None,
            Parameter(required=False, max_length=1000, description="`next` of the last page."),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIST_PAGE)] = 50,
        position: PositionParameter = None,
    ) -> AccountList:
        runtime.application  # noqa: B018 - 503 until the store is open
        await caught_up(queries.read_store, AccountsProjection.name, position, log=queries.log)
        minimum = None if min_balance is None else _min_balance(min_balance)
        try:
            page = await queries.accounts.list(
                owner=owner,
                min_balance=minimum,
                sort=sort,
                descending=descending,
                after=after,
                limit=limit,
            )
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        return AccountList([_list_item(s) for s in page.items], page.next)

    @get(
        "/transfers",
        summary="List transfers from the read model",
        description="Filtered by source, target and status, by transfer id, one page at a"
        " time. The read model is kept asynchronously: it may lag a transfer's last step.",
        tags=["transfers"],
        operation_id="list_transfers",
        responses=documented_errors(422, 503),
    )
    async def list_transfers(
        source: Annotated[str | None, Parameter(required=False, max_length=200)] = None,
        target: Annotated[str | None, Parameter(required=False, max_length=200)] = None,
        status: Annotated[
            Literal["requested", "debited", "rejected", "completed", "refunding", "refunded"]
            | None,
            Parameter(required=False, description="Where the saga has got to."),
        ] = None,
        after: Annotated[
            str | None,
            Parameter(required=False, max_length=1000, description="`next` of the last page."),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIST_PAGE)] = 50,
        position: PositionParameter = None,
    ) -> TransferList:
        runtime.application  # noqa: B018 - 503 until the store is open
        await caught_up(queries.read_store, TransfersProjection.name, position, log=queries.log)
        try:
            page = await queries.transfers.list(
                source=source, target=target, status=status, after=after, limit=limit
            )
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        return TransferList([_transfer_item(s) for s in page.items], page.next)

    return create_http_app(
        runtime,
        [ACCOUNTS, TRANSFERS],
        route_handlers=[list_accounts, list_transfers],
        api_keys=api_keys,
        cors_origins=cors_origins,
        title="facta bank",
        description="Bank accounts, event-sourced: open, deposit, withdraw; state at any"
        " version or time; the full history; a read model to list accounts; transfers run by"
        " a saga; the global event feed.",
    )

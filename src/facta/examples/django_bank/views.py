"""JSON views of the bank, with the Litestar bank service's shapes and error semantics: a
command a business rule rejects is 400, an unknown account 404, a conflict that outlasted the
retries 409, malformed input 422, an unreachable store 503; every error a JSON body
``{"status", "error", "message"}``, never an HTML page, never a 500 for what a client sends.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from facta import (
    DomainError,
    InvalidStreamId,
    StoreUnavailable,
    WrongExpectedVersion,
    check_entity_id,
)
from facta.examples.bank.domain import MAX_AMOUNT, AccountCommand, OpenAccount, as_money
from facta.examples.django_bank.bank import bank

log = logging.getLogger("facta.examples.django_bank")

MAX_LIST_PAGE = 500
_encode = msgspec.json.Encoder(decimal_format="number").encode  # 1300.0, as the seed writes
_decode_command = msgspec.json.Decoder(AccountCommand).decode
_CODES = {400: "command_rejected", 404: "not_found", 405: "method_not_allowed", 409: "conflict"}
_CODES |= {413: "too_large", 422: "invalid_input", 500: "internal_error", 503: "unavailable"}


class AccountView(msgspec.Struct):
    """An account as the API shows it (the seed's shape)."""

    id: str
    owner: str
    balance: Decimal
    version: int


class AccountListItem(msgspec.Struct):
    """An account in a list (from the read model)."""

    id: str
    owner: str
    balance: Decimal
    version: int


class AccountList(msgspec.Struct):
    """A page of accounts; pass ``next`` as ``after`` for the following page (null: last)."""

    accounts: list[AccountListItem]
    next: str | None


class ApiError(Exception):
    """Answer with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(data: Any, status: int = 200, **headers: str) -> HttpResponse:
    return HttpResponse(
        _encode(data), status=status, content_type="application/json", headers=headers
    )


def _error(status: int, message: str, **headers: str) -> HttpResponse:
    body = {"status": status, "error": _CODES.get(status, "error"), "message": message}
    return _json(body, status, **headers)


def json_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view`` with every error it raises answered as JSON (see the module's doc)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ApiError as exc:
            return _error(exc.status, exc.message)
        except DomainError as exc:
            return _error(400, str(exc) or type(exc).__name__)
        except WrongExpectedVersion as exc:
            message = f"the account changed concurrently (version {exc.actual}); try again"
            return _error(409, message)
        except InvalidStreamId as exc:
            return _error(422, str(exc))
        except RequestDataTooBig:
            return _error(413, "the request body is too large")
        except (StoreUnavailable, OSError, sqlite3.OperationalError) as exc:
            log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
            return _error(503, "the event store is unavailable; retry shortly", retry_after="1")

    # Commands come from API clients, not from forms of this site: no CSRF cookie to check.
    return csrf_exempt(wrapped)


def _account_id(text: str) -> str:
    try:
        return check_entity_id(text, "the account id")
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None


@json_errors
def account(request: HttpRequest, account_id: str) -> HttpResponse:
    """``GET``: the account now; ``POST``: execute a command on it, answer the account after."""
    account_id = _account_id(account_id)
    the_bank = bank()
    if request.method == "GET":
        loaded = the_bank.app.load(the_bank.account, account_id)
        if loaded.version == 0:
            raise ApiError(404, f"account {account_id!r} not found")
        state, version = loaded.state, loaded.version
    elif request.method == "POST":
        try:
            command = _decode_command(request.body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ApiError(422, f"{exc} (in the request body)") from None
        try:
            result = the_bank.app.execute(the_bank.account, account_id, command)
        except DomainError:
            # A command other than opening, on an account that does not exist: unknown.
            if not isinstance(command, OpenAccount):
                stream = the_bank.app.stream_id(the_bank.account, account_id)
                if the_bank.engine.stream_version(stream) == 0:
                    raise ApiError(404, f"account {account_id!r} not found") from None
            raise
        state, version = result.state, result.version
    else:
        return _error(405, f"{request.method} is not allowed here", allow="GET, POST")
    view = AccountView(account_id, state.owner, as_money(state.balance), version)
    return _json(view, etag=f'"{version}"')


def _limit(text: str | None) -> int:
    try:
        limit = 50 if text is None else int(text)
    except ValueError:
        raise ApiError(422, f"limit must be a whole number, not {str(text)[:40]!r}") from None
    if not 1 <= limit <= MAX_LIST_PAGE:
        raise ApiError(422, f"limit must be 1 to {MAX_LIST_PAGE}")
    return limit


def _min_balance(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ApiError(422, f"min_balance must be a number, not {text[:40]!r}") from None
    if not value.is_finite() or abs(value) > MAX_AMOUNT:
        raise ApiError(422, f"min_balance must be a finite number within ±{MAX_AMOUNT}")
    return value


@json_errors
def accounts(request: HttpRequest) -> HttpResponse:
    """``GET``: a page of accounts from the read model, by ``owner`` and ``min_balance``,
    sorted by ``sort`` (account_id, owner, balance), ``after`` a page's ``next``."""
    if request.method != "GET":
        return _error(405, f"{request.method} is not allowed here", allow="GET")
    query = request.GET
    filters: list[tuple[str, str, object]] = []
    owner = query.get("owner")
    if owner is not None:
        filters.append(("owner", "=", owner))
    min_balance = query.get("min_balance")
    if min_balance is not None:
        filters.append(("balance", ">=", _min_balance(min_balance)))
    sort = query.get("sort", "account_id")
    if sort not in ("account_id", "owner", "balance"):
        raise ApiError(422, "sort must be account_id, owner or balance")
    try:
        page = bank().accounts.query(
            filters,
            order_by="key" if sort == "account_id" else sort,
            descending=query.get("descending") in ("1", "true"),
            after=query.get("after"),
            limit=_limit(query.get("limit")),
        )
    except ValueError as exc:  # a foreign cursor
        raise ApiError(422, str(exc)) from None
    items = [
        AccountListItem(s.account_id, s.owner, as_money(s.balance), s.version) for s in page.items
    ]
    return _json(AccountList(items, page.next))


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 400 (a request it refuses before any view: a bad Host header), as JSON."""
    return _error(400, "bad request")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 (a path no route takes), as JSON."""
    return _error(404, f"no route for {request.path[:200]!r}")


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 (a bug: the views answer every error they know), as JSON."""
    return _error(500, "internal server error")

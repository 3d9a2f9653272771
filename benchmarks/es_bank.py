"""The bank account domain written for the `eventsourcing` library, for side-by-side runs."""

from __future__ import annotations

from decimal import Decimal
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection


class BankAccount(Aggregate):
    @event("Opened")
    def __init__(self, owner: str, balance: Decimal) -> None:
        self.owner = owner
        self.balance = balance

    @event("Deposited")
    def deposit(self, amount: Decimal) -> None:
        self.balance += amount


class Bank(Application[UUID]):
    def open(self, owner: str, balance: Decimal) -> UUID:
        account = BankAccount(owner, balance)
        self.save(account)
        return account.id

    def deposit(self, account_id: UUID, amount: Decimal) -> None:
        account: BankAccount = self.repository.get(account_id)
        account.deposit(amount)
        self.save(account)

    def balance(self, account_id: UUID, version: int | None = None) -> Decimal:
        account: BankAccount = self.repository.get(account_id, version=version)
        return account.balance


class SnapshottingBank(Bank):
    # The same name as Bank: on PostgreSQL the tables are named after the application, and
    # the loads without snapshots must read the very events this one wrote.
    name = "Bank"
    is_snapshotting_enabled = True


def accounts_view_class(persistence_module: str) -> Any:
    """A tracking recorder holding an `accounts` table, on the same database as the events:
    each event updates a row and records its tracking in one transaction."""
    if persistence_module == "eventsourcing.sqlite":
        from eventsourcing.sqlite import SQLiteTrackingRecorder

        class SQLiteAccountsView(SQLiteTrackingRecorder):
            def construct_create_table_statements(self) -> list[str]:
                return [
                    *super().construct_create_table_statements(),
                    "CREATE TABLE IF NOT EXISTS accounts"
                    " (id TEXT PRIMARY KEY, owner TEXT, balance TEXT)",
                ]

            def upsert(
                self, key: str, owner: str | None, delta: Decimal, tracking: Tracking
            ) -> None:
                with self.datastore.transaction(commit=True) as c:
                    c.execute("SELECT owner, balance FROM accounts WHERE id = ?", (key,))
                    row = c.fetchone()
                    balance = Decimal(row[1]) + delta if row else delta
                    c.execute(
                        "INSERT OR REPLACE INTO accounts VALUES (?, ?, ?)",
                        (key, owner or (row[0] if row else ""), str(balance)),
                    )
                    self._insert_tracking(c, tracking)

        return SQLiteAccountsView
    if persistence_module == "eventsourcing.postgres":
        from eventsourcing.postgres import PostgresTrackingRecorder

        class PostgresAccountsView(PostgresTrackingRecorder):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                from psycopg.sql import SQL, Identifier

                super().__init__(*args, **kwargs)
                table = SQL("{0}.accounts").format(Identifier(self.datastore.schema))
                self.sql_create_statements.append(
                    SQL(
                        "CREATE TABLE IF NOT EXISTS {0}"
                        " (id TEXT PRIMARY KEY, owner TEXT, balance NUMERIC)"
                    ).format(table)
                )
                self.upsert_statement = SQL(
                    "INSERT INTO {0} AS a VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE"
                    " SET balance = a.balance + EXCLUDED.balance"
                ).format(table)

            def upsert(
                self, key: str, owner: str | None, delta: Decimal, tracking: Tracking
            ) -> None:
                with self.datastore.transaction(commit=True) as curs:
                    curs.execute(self.upsert_statement, (key, owner or "", delta))
                    self._insert_tracking(curs, tracking)

        return PostgresAccountsView
    from eventsourcing.popo import POPOTrackingRecorder

    class POPOAccountsView(POPOTrackingRecorder):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.accounts: dict[str, tuple[str, Decimal]] = {}

        def upsert(self, key: str, owner: str | None, delta: Decimal, tracking: Tracking) -> None:
            with self._database_lock:
                old_owner, balance = self.accounts.get(key, ("", Decimal(0)))
                self.accounts[key] = (owner or old_owner, balance + delta)
                self._insert_tracking(tracking)

    return POPOAccountsView


class AccountsProjection(Projection[Any]):
    name = "accounts"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        if isinstance(domain_event, BankAccount.Opened):
            self.view.upsert(
                str(domain_event.originator_id), domain_event.owner, domain_event.balance, tracking
            )
        elif isinstance(domain_event, BankAccount.Deposited):
            self.view.upsert(str(domain_event.originator_id), None, domain_event.amount, tracking)
        else:
            self.view.insert_tracking(tracking)

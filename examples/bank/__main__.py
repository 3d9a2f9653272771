"""Run the seed's walkthrough against the embedded default store (until the HTTP service lands)."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal

from bank.domain import Account, Deposit, OpenAccount, Withdraw
from facta import Application, open_store


async def main() -> None:
    store = await open_store(os.environ.get("FACTA_STORE", "sqlite:///facta.db"))
    app = Application(store)
    account = Account()
    entity = f"acc-{os.getpid()}"
    await app.execute(account, entity, OpenAccount("Alice", Decimal("1000.0")))
    await app.execute(account, entity, Deposit(Decimal("500.0")))
    result = await app.execute(account, entity, Withdraw(Decimal("200.0")))
    print(f"{entity}: owner={result.state.owner} balance={result.state.balance} v{result.version}")
    for envelope in await app.history(account, entity):
        print(f"  v{envelope.recorded.version} {envelope.event}")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())

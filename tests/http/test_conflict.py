"""409: a conflict that outlasts the retries. Provoked deterministically in-process: the
service's Application (no retries) caches an account's state, another writer moves the
stream on, and the service's next command appends against the cached version."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from litestar.testing import AsyncTestClient

from facta import Application, open_store
from facta.examples.bank.domain import Account, Deposit
from facta.examples.bank.service import ACCOUNTS
from facta.http import Runtime, create_app


async def test_a_conflict_past_the_retries_is_409_and_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'facta.db'}"

    async def open_application() -> Application:
        return Application(await open_store(url), max_retries=0)

    app = create_app(Runtime(open_application), [ACCOUNTS], metrics=False)
    other_store = await open_store(url)
    try:
        async with AsyncTestClient(app) as client:
            opened = await client.post(
                "/accounts/acc-1",
                json={"type": "OpenAccount", "owner": "Kim", "initial_balance": 10.0},
            )
            assert opened.status_code == 200
            await Application(other_store).execute(Account(), "acc-1", Deposit(Decimal("1.0")))

            conflict = await client.post("/accounts/acc-1", json={"type": "Deposit", "amount": 5.0})
            assert conflict.status_code == 409, conflict.text
            body = conflict.json()
            assert body["error"] == "version_conflict"
            assert body["current_version"] == 2
            assert "try again" in body["message"]

            state = (await client.get("/accounts/acc-1")).json()
            assert (state["balance"], state["version"]) == (11.0, 2)
            retried = await client.post("/accounts/acc-1", json={"type": "Deposit", "amount": 5.0})
            assert retried.json()["version"] == 3
    finally:
        await other_store.close()

"""The bank's accounts read model on every backend: filters by owner and minimum balance,
sorting, pagination and totals, all answered from the read model."""

from __future__ import annotations

from decimal import Decimal

import pytest

from facta import Application, EventStore
from facta.examples.bank.domain import Account, Deposit, OpenAccount, Withdraw
from facta.examples.bank.read_model import Accounts, AccountsProjection, AccountSummary
from facta.projections import ProjectionRunner, ReadStore

account = Account()


@pytest.fixture
async def accounts(store: EventStore):  # type: ignore[no-untyped-def]
    app = Application(store)
    owners = ["Alice", "Bob", "Carol"]
    for i in range(12):
        await app.execute(account, f"acc-{i:02}", OpenAccount(owners[i % 3], Decimal(i * 10)))
    await app.execute(account, "acc-03", Deposit(Decimal("0.50")))
    last = await app.execute(account, "acc-04", Withdraw(Decimal("40.0")))
    runner = ProjectionRunner(store, [AccountsProjection()], codec=app.codec, batch_size=5)
    await runner.catch_up(until=last.position)
    await runner.close()
    read_store = ReadStore(store)
    yield Accounts(read_store)
    await read_store.close()


def balances(page_items: list[AccountSummary]) -> list[tuple[str, Decimal]]:
    return [(a.account_id, a.balance) for a in page_items]


async def test_get_shows_the_account_after_all_its_events(accounts: Accounts) -> None:
    summary = await accounts.get("acc-03")
    assert summary is not None
    assert (summary.owner, summary.balance, summary.version) == ("Alice", Decimal("30.50"), 2)
    assert await accounts.get("acc-99") is None


async def test_list_filters_by_owner_and_minimum_balance_sorted(accounts: Accounts) -> None:
    page = await accounts.list(owner="Bob", sort="balance", descending=True)
    assert balances(page.items) == [
        ("acc-10", Decimal("100")),
        ("acc-07", Decimal("70")),
        ("acc-01", Decimal("10")),
        ("acc-04", Decimal("0.0")),
    ]
    page = await accounts.list(min_balance=Decimal("80"), sort="balance")
    assert balances(page.items) == [
        ("acc-08", Decimal("80")),
        ("acc-09", Decimal("90")),
        ("acc-10", Decimal("100")),
        ("acc-11", Decimal("110")),
    ]
    page = await accounts.list(owner="Alice", min_balance=Decimal("30.5"))
    assert [a.account_id for a in page.items] == ["acc-03", "acc-06", "acc-09"]


async def test_list_pages_through_everything_once(accounts: Accounts) -> None:
    seen: list[str] = []
    after = None
    while True:
        page = await accounts.list(sort="owner", after=after, limit=5)
        seen.extend(a.account_id for a in page.items)
        if page.next is None:
            break
        after = page.next
    by_owner = sorted((["Alice", "Bob", "Carol"][i % 3], f"acc-{i:02}") for i in range(12))
    assert seen == [account_id for _, account_id in by_owner]


async def test_totals_count_and_sum_exactly(accounts: Accounts) -> None:
    everything = await accounts.totals()
    assert everything.accounts == 12
    assert everything.balance == Decimal("620.50")  # 660 opened + 0.50 - 40
    bobs = await accounts.totals(owner="Bob")
    assert (bobs.accounts, bobs.balance) == (4, Decimal("180.0"))
    rich = await accounts.totals(min_balance=Decimal("1000"))
    assert (rich.accounts, rich.balance) == (0, Decimal(0))


async def test_bad_paging_input_is_refused(accounts: Accounts) -> None:
    with pytest.raises(ValueError, match="limit"):
        await accounts.list(limit=0)
    with pytest.raises(ValueError, match="cursor"):
        await accounts.list(after="garbage!")

"""The console in a real browser (Debian's chromium, driven by Playwright, with no network
but the service) on a ``facta serve`` holding the bank example's data: find an account's
stream, open an event, travel its state, see a transfer's causation graph, watch a
projection's lag fall to 0, rebuild a projection from its button, retry a parked event,
follow the tail, read the relay. Each page is saved as a screenshot (into
``$FACTA_CONSOLE_SCREENSHOTS`` when set: ``make console-screenshots`` refreshes the docs')."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, Route

from facta import open_store
from tests.console.conftest import (
    ACCOUNTS_INLINE,
    API,
    CONSOLE_PROJECTIONS,
    ROOT,
    projection_args,
    start_runner,
    stop,
    wait_until,
)
from tests.http.conftest import Server, start_server
from tests.http.test_browser import browser  # noqa: F401  (the fixture)

TAG = uuid.uuid4().hex[:6]
ACCOUNTS = [f"acc-{TAG}-{n:02d}" for n in range(12)]
TRANSFERS = [f"t-{TAG}-{n}" for n in range(4)]
BLOCKED = f"Mallory{TAG}"


@dataclass
class Bank:
    """``facta serve`` without its own runner (the console holds the code), the bank's data,
    and the runner this module starts when a test needs the read side to move."""

    server: Server
    workdir: Path
    runners: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run_projections(self) -> None:
        if not self.runners:
            self.runners.append(
                start_runner(
                    self.server.store_url, self.workdir, ACCOUNTS_INLINE, *CONSOLE_PROJECTIONS
                )
            )


def seed(client: httpx.Client) -> None:
    """Accounts with deposits and withdrawals, transfers between them, and an account whose
    owner the ``owners`` projection cannot handle yet (it parks it)."""
    for n, account in enumerate(ACCOUNTS):
        body = {"type": "OpenAccount", "owner": f"Owner {n}", "initial_balance": 100.0 + n}
        assert client.post(f"/accounts/{account}", json=body).status_code == 200
        for amount in (5, 7):
            client.post(f"/accounts/{account}", json={"type": "Deposit", "amount": amount})
        client.post(f"/accounts/{account}", json={"type": "Withdraw", "amount": 3})
    for n, transfer in enumerate(TRANSFERS):
        body = {
            "type": "RequestTransfer",
            "source": ACCOUNTS[n],
            "target": ACCOUNTS[-1 - n],
            "amount": 10 + n,
        }
        assert client.post(f"/transfers/{transfer}", json=body).status_code == 200
    body = {"type": "OpenAccount", "owner": BLOCKED, "initial_balance": 1.0}
    assert client.post(f"/accounts/acc-{TAG}-blocked", json=body).status_code == 200


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bank]:
    workdir = tmp_path_factory.mktemp("console-browser")
    blocked = workdir / "blocked.txt"
    blocked.write_text(f"{BLOCKED}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("FACTA_TEST_BLOCKED", str(blocked))
        server = start_server(
            f"sqlite:///{workdir / 'facta.db'}", workdir, "--no-projections", *projection_args()
        )
        running = Bank(server, workdir)
        try:
            with server.client() as client:
                # A runner has run once (its projections are in the catalog), then stopped:
                # the bank's data comes in while nobody runs the read side.
                running.run_projections()
                wait_until(
                    lambda: (
                        {"transfers", "transfer_saga", "owners"}
                        <= set(client.get(f"{API}/overview").json()["projections"])
                    ),
                    "the runner to claim its projections",
                )
                stop(running.runners.pop())
                seed(client)
            yield running
        finally:
            for runner in running.runners:
                stop(runner)
            server.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("FACTA_CONSOLE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def open_console(browser: Browser, bank: Bank, hash: str) -> Page:  # noqa: F811
    """A page of the console, cut off from everything but the service."""
    page = await browser.new_page(viewport={"width": 1360, "height": 860})
    page.set_default_timeout(20_000)
    elsewhere: list[str] = []

    async def only_the_service(route: Route) -> None:
        if route.request.url.startswith(f"{bank.server.url}/"):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort("internetdisconnected")

    await page.route("**/*", only_the_service)
    await page.goto(f"{bank.server.url}/console#{hash}")
    page.on("close", lambda _: None)
    page.elsewhere = elsewhere  # type: ignore[attr-defined]
    return page


async def confirm(page: Page, operator: str, name: str) -> None:
    """Fill the confirmation dialog and confirm."""
    await page.wait_for_selector("#confirm-dialog[open]")
    await page.fill("#confirm-operator", operator)
    await page.fill("#confirm-name", name)
    await page.click("#confirm-ok")


async def test_a_projections_lag_falls_to_zero_when_its_runner_starts(
    browser: Browser,  # noqa: F811
    bank: Bank,
    shots: Path,
) -> None:
    legend = '#chart-lag .legend span[data-series="{}"]'
    last = "() => Number(document.querySelector('{}')?.dataset.last) {}"
    overview = await open_console(browser, bank, "/")
    # Nobody runs the read side: the saga and the read models lag by the bank's data.
    await overview.wait_for_function(last.format(legend.format("transfers"), "> 0"))
    page = await open_console(browser, bank, "/projections")
    lags = page.locator('tr[data-projection][data-active="true"] td[data-lag]')
    await page.wait_for_selector('tr[data-projection="transfers"] td[data-lag]')
    assert (
        int(
            await page.get_attribute('tr[data-projection="transfers"] td[data-lag]', "data-lag")
            or 0
        )
        > 0
    )
    bank.run_projections()
    await page.wait_for_function(
        """() => ((cells) => cells.length >= 4 && cells.every((td) => td.dataset.lag === "0"))(
              [...document.querySelectorAll(
                  'tr[data-projection][data-active="true"] td[data-lag]')])""",
        timeout=30_000,
    )
    assert await lags.count() >= 4
    await page.screenshot(path=shots / "console-projections.png", full_page=True)
    # The chart shows the fall: the lag was above 0, and is 0 now.
    await overview.wait_for_function(
        last.format(legend.format("transfers"), "=== 0"), timeout=30_000
    )
    events = await overview.inner_text("#card-events .value")
    assert int(events.replace(",", "")) >= len(ACCOUNTS) * 4
    line = overview.locator('#chart-lag polyline[data-series="transfers"]')
    points = [p.split(",") for p in (await line.get_attribute("points") or "").split()]
    heights = [float(y) for _, y in points]
    assert min(heights) < heights[-1]  # y grows downwards: the line came down to 0
    await overview.screenshot(path=shots / "console-overview.png", full_page=True)
    assert page.elsewhere == overview.elsewhere == []  # type: ignore[attr-defined]


async def test_find_an_accounts_stream_open_an_event_and_travel_in_time(
    browser: Browser,  # noqa: F811
    bank: Bank,
    shots: Path,
) -> None:
    page = await open_console(browser, bank, "/streams")
    await page.fill("#stream-search input[name=category]", "account")
    await page.fill("#stream-search input[name=prefix]", f"acc-{TAG}-0")
    await page.click("#stream-search button")
    rows = page.locator("#stream-results tr[data-stream]")
    await rows.first.wait_for()
    found = await rows.evaluate_all("(rows) => rows.map((r) => r.dataset.stream)")
    assert found == [f"account-{a}" for a in ACCOUNTS[:10]]
    await page.screenshot(path=shots / "console-streams.png", full_page=True)
    await page.click(f'tr[data-stream="account-{ACCOUNTS[3]}"]')
    table = page.locator("#stream-events tbody tr")
    await table.first.wait_for()
    types = await table.evaluate_all("(rows) => rows.map((r) => r.children[1].textContent)")
    assert types[:4] == ["AccountOpened", "MoneyDeposited", "MoneyDeposited", "MoneyWithdrawn"]
    # Time travel: version 1 is the opening balance, version 3 after both deposits.
    await page.wait_for_selector("#travel-state pre")
    slider = page.locator("#travel-slider")
    await slider.fill("1")
    await page.wait_for_function(
        "() => document.querySelector('#travel-state pre')?.textContent.includes('103')"
    )
    assert '"balance": 103' in await page.inner_text("#travel-state pre")
    await slider.fill("3")
    await page.wait_for_function(
        "() => document.querySelector('#travel-state pre')?.textContent.includes('115')"
    )
    await page.screenshot(path=shots / "console-stream.png", full_page=True)
    await page.click('#stream-events tr[data-version="2"]')
    await page.wait_for_selector("#event-data pre")
    assert '"amount": 5' in await page.inner_text("#event-data pre")
    metadata = await page.inner_text("#event-metadata pre")
    assert "correlation_id" in metadata
    assert "causation_id" in metadata
    await page.screenshot(path=shots / "console-event.png", full_page=True)
    assert page.elsewhere == []  # type: ignore[attr-defined]


async def test_a_transfers_causation_graph(
    browser: Browser,  # noqa: F811
    bank: Bank,
    shots: Path,
) -> None:
    bank.run_projections()
    transfer = TRANSFERS[0]
    async with httpx.AsyncClient(base_url=bank.server.url) as http:
        for _ in range(300):
            if (await http.get(f"/transfers/{transfer}")).json()["status"] == "completed":
                break
            await asyncio.sleep(0.1)
        events = (await http.get(f"/console/api/streams/transfer-{transfer}/events")).json()
    requested = events["events"][0]["event_id"]
    page = await open_console(browser, bank, f"/event/{requested}")
    await page.click("#open-causation")
    await page.wait_for_selector("#causation-svg g.node")
    streams = await page.locator("#causation-svg g.node.event").evaluate_all(
        "(nodes) => [...new Set(nodes.map((n) => n.dataset.stream))].sort()"
    )
    assert streams == sorted(
        [f"account-{ACCOUNTS[0]}", f"account-{ACCOUNTS[-1]}", f"transfer-{transfer}"]
    )
    assert await page.locator("#causation-svg g.node.command").count() >= 5
    nodes = await page.locator("#causation-svg g.node").count()
    assert await page.locator("#causation-svg path.edge").count() == nodes - 1  # a tree
    assert "across 3 streams" in await page.inner_text("#causation-summary")
    await page.screenshot(path=shots / "console-causation.png", full_page=True)
    assert page.elsewhere == []  # type: ignore[attr-defined]


async def test_rebuild_a_projection_from_its_button(
    browser: Browser,  # noqa: F811
    bank: Bank,
    shots: Path,
) -> None:
    bank.run_projections()
    page = await open_console(browser, bank, "/projections")
    row = page.locator('tr[data-projection="transfers"][data-active="true"]')
    await row.first.wait_for()
    before = int(await row.first.get_attribute("data-slot") or 0)
    saga = page.locator('button[data-action="rebuild"][data-projection="transfer_saga"]')
    assert await saga.is_disabled()  # a policy is not rebuilt
    await page.click('button[data-action="rebuild"][data-projection="transfers"]')
    await confirm(page, "Ada", "transfers")
    await page.wait_for_selector("#action-result")
    assert "rebuild transfers: started" in await page.inner_text("#action-result")
    await page.wait_for_function(
        f"""() => Number(document.querySelector(
                  'tr[data-projection="transfers"][data-active="true"]')?.dataset.slot)
              > {before}""",
        timeout=30_000,
    )
    # The new slot holds every transfer, and the audit trail says who rebuilt it.
    await page.wait_for_selector("#actions-table td:has-text('Ada')")
    await page.screenshot(path=shots / "console-rebuild.png", full_page=True)
    assert page.elsewhere == []  # type: ignore[attr-defined]


async def test_retry_a_parked_event(
    browser: Browser,  # noqa: F811
    bank: Bank,
    shots: Path,
) -> None:
    bank.run_projections()
    page = await open_console(browser, bank, "/projections")
    letter = page.locator(
        f'#parked-table tr[data-projection="owners"]:has-text("acc-{TAG}-blocked")'
    )
    await letter.wait_for(timeout=30_000)
    assert "is blocked" in await letter.inner_text()
    await page.screenshot(path=shots / "console-parked.png", full_page=True)
    (bank.workdir / "blocked.txt").write_text("")  # the fix is deployed
    await letter.locator('button[data-action="retry"]').click()
    await confirm(page, "Bob", "owners")
    await page.wait_for_selector("#action-result")
    assert "retry owners" in await page.inner_text("#action-result")
    assert "handled" in await page.inner_text("#action-result")
    await letter.wait_for(state="detached")
    assert page.elsewhere == []  # type: ignore[attr-defined]


async def test_the_live_tail_and_the_relay(
    browser: Browser,  # noqa: F811
    bank: Bank,
    shots: Path,
) -> None:
    page = await open_console(browser, bank, "/tail?category=account")
    await page.wait_for_selector("#tail-status:has-text('at ')")
    async with httpx.AsyncClient(base_url=bank.server.url) as http:
        await http.post(f"/accounts/{ACCOUNTS[5]}", json={"type": "Deposit", "amount": 1})
        await http.post(
            f"/transfers/t-{TAG}-tail",
            json={
                "type": "RequestTransfer",
                "source": ACCOUNTS[6],
                "target": ACCOUNTS[7],
                "amount": 1,
            },
        )
    await page.wait_for_selector('#tail-table tr[data-type="MoneyDeposited"]')
    streams = await page.locator("#tail-table tbody tr").evaluate_all(
        "(rows) => rows.map((r) => r.children[1].textContent)"
    )
    assert f"account-{ACCOUNTS[5]}" in streams
    assert not any(s.startswith("transfer-") for s in streams)  # filtered by category
    await page.screenshot(path=shots / "console-tail.png", full_page=True)

    store = await open_store(bank.server.store_url, create=False)
    try:
        await store.relay_checkpoints.acquire("amqp://broker/facta", "relay-1", 300)
        await store.relay_checkpoints.record_error(
            "amqp://broker/facta", "PublishError: lost the connection <b>to</b> the broker"
        )
    finally:
        await store.close()
    relay = await open_console(browser, bank, "/relay")
    await relay.wait_for_selector('#relay-table tr[data-relay="amqp://broker/facta"]')
    table = await relay.inner_text("#relay-table")
    assert "relay-1" in table
    # The last error, as text (never markup): the tags show as typed.
    assert "lost the connection <b>to</b> the broker" in table
    await relay.screenshot(path=shots / "console-relay.png", full_page=True)
    assert page.elsewhere == relay.elsewhere == []  # type: ignore[attr-defined]

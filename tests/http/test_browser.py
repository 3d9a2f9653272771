"""The service from a real browser: Debian's chromium, driven by Playwright, with no network
but the service itself.

- ``/docs`` renders every operation offline (its scripts come from the service, not a CDN).
- A dashboard on another origin calls the API and follows ``/events/live`` through CORS,
  with ``EventSource.onmessage`` in the plain ``message`` form and typed listeners in the
  named form.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from playwright.async_api import Browser, Route, async_playwright

from tests.conftest import service_missing
from tests.http.conftest import Server, start_server

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class _Dashboard(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>dashboard</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def dashboard() -> Iterator[str]:
    """The origin of a page on another port of this machine: a dashboard beside the service.

    (Served for real, on loopback: Chromium refuses a page on a public origin, or one it
    cannot place, access to loopback addresses without the user's permission.)
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dashboard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, dashboard: str) -> Iterator[Server]:
    """``facta serve`` on SQLite that lets pages from the dashboard's origin call it."""
    workdir = tmp_path_factory.mktemp("browser")
    running = start_server(
        f"sqlite:///{workdir / 'facta.db'}", workdir, "--cors-origins", dashboard
    )
    yield running
    running.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        service_missing("chromium is not installed (make test installs it)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def test_docs_render_every_operation_offline(service: Server, browser: Browser) -> None:
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
        document = (await http.get("/docs/openapi.json")).json()
    page = await browser.new_page()
    elsewhere: list[str] = []

    async def only_the_service(route: Route) -> None:
        if route.request.url.startswith(f"{service.url}/"):
            await route.continue_()
        else:  # the internet is not there
            elsewhere.append(route.request.url)
            await route.abort("internetdisconnected")

    await page.route("**/*", only_the_service)
    await page.goto(f"{service.url}/docs", wait_until="load")
    await page.wait_for_selector(".opblock", timeout=20_000)
    operations = [
        (method, operation)
        for item in document["paths"].values()
        for method, operation in item.items()
    ]
    assert len(operations) >= 10
    for method, operation in operations:
        # Swagger UI renders each operation as a block with its tag and operation id.
        block = page.locator(f"#operations-{operation['tags'][0]}-{operation['operationId']}")
        assert await block.count() == 1, operation["operationId"]
        assert f"opblock-{method}" in (await block.get_attribute("class") or "")
        assert operation["summary"] in await block.inner_text()
    assert elsewhere == []
    await page.close()


DASHBOARD_SCRIPT = """
async ([base, account]) => {
  const seen = {message: [], named: [], namedOnMessage: 0};
  const head = (await (await fetch(base + "/ready")).json()).head;
  const live = base + "/events/live?category=account&after=" + head;
  const plain = new EventSource(live + "&format=message");
  const named = new EventSource(live);
  const mine = (data) => JSON.parse(data).stream_id === "account-" + account;
  plain.onmessage = (e) => { if (mine(e.data)) seen.message.push(JSON.parse(e.data).type); };
  named.onmessage = () => { seen.namedOnMessage += 1; };
  for (const type of ["AccountOpened", "MoneyDeposited"]) {
    named.addEventListener(type, (e) => { if (mine(e.data)) seen.named.push(e.type); });
  }
  const post = (body, headers) => fetch(base + "/accounts/" + account, {
    method: "POST", headers: {"Content-Type": "application/json", ...headers},
    body: JSON.stringify(body),
  });
  const opened = await post({type: "OpenAccount", owner: "Dee", initial_balance: 10.0}, {});
  seen.etag = opened.headers.get("ETag");
  const deposited = await post({type: "Deposit", amount: 2.5}, {"If-Match": seen.etag});
  seen.deposit = await deposited.json();
  for (let i = 0; i < 200 && (seen.message.length < 2 || seen.named.length < 2); i++) {
    await new Promise((done) => setTimeout(done, 50));
  }
  plain.close();
  named.close();
  return seen;
}
"""


async def test_a_dashboard_on_another_origin_calls_the_api_and_follows_the_feed(
    service: Server, dashboard: str, browser: Browser
) -> None:
    page = await browser.new_page()
    await page.goto(f"{dashboard}/")
    account = f"acc-{uuid.uuid4().hex[:10]}"
    seen = await page.evaluate(DASHBOARD_SCRIPT, [service.url, account])
    # Cross-origin: a preflighted POST with If-Match, its ETag readable, the answer's JSON.
    assert seen["etag"] == '"1"'
    assert seen["deposit"] == {"id": account, "owner": "Dee", "balance": 12.5, "version": 2}
    # The plain form reaches onmessage, with the type in the data; the named form reaches
    # typed listeners and never onmessage.
    assert seen["message"] == ["AccountOpened", "MoneyDeposited"]
    assert seen["named"] == ["AccountOpened", "MoneyDeposited"]
    assert seen["namedOnMessage"] == 0
    await page.close()

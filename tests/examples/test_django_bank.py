"""The Django example over real HTTP: ``python -m django runserver`` (threaded: each request in
a thread of its own, as Django runs sync views) on a free port, on SQLite and PostgreSQL,
driven with httpx.

Django's development server rather than gunicorn: it is what a Django team starts first, it
runs each request in its own thread (what the facade must survive), and it adds no dependency.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from facta.examples.bank.domain import Account
from facta.sync import Application, open_store
from tests.http.conftest import drop_schema, free_port, store_url_for

pytest.importorskip("django", reason="Django is the facta[django] extra")


@dataclass
class DjangoServer:
    url: str
    store_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_django(store_url: str, workdir: Path, timeout: float = 30.0) -> DjangoServer:
    port = free_port()
    log = workdir / f"django-{port}.log"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "FACTA_STORE": store_url,
        "DJANGO_SETTINGS_MODULE": "facta.examples.django_bank.settings",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",  # whatever the test process has set
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=workdir,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = DjangoServer(f"http://127.0.0.1:{port}", store_url, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"runserver exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/accounts", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"runserver did not answer within {timeout}s:\n{log.read_text()}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def django_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DjangoServer]:
    """The Django example on each backend, shared by this module's tests (which keep apart by
    their own account ids)."""
    workdir = tmp_path_factory.mktemp(f"django-{request.param}")
    running = start_django(store_url_for(request.param, workdir), workdir)
    yield running
    running.stop()
    assert "Traceback" not in running.log.read_text(), running.log.read_text()
    drop_schema(running.store_url)


def new_id() -> str:
    return f"acc-{uuid.uuid4().hex[:10]}"


def test_open_deposit_withdraw_read_and_list(django_server: DjangoServer) -> None:
    account, owner = new_id(), f"Owner {uuid.uuid4().hex[:6]}"
    with django_server.client() as http:
        opened = http.post(
            f"/accounts/{account}",
            json={"type": "OpenAccount", "owner": owner, "initial_balance": 1000.0},
        )
        assert opened.status_code == 200, opened.text
        assert opened.json() == {"id": account, "owner": owner, "balance": 1000.0, "version": 1}
        assert opened.headers["etag"] == '"1"'
        http.post(f"/accounts/{account}", json={"type": "Deposit", "amount": 500.0})
        withdrawn = http.post(f"/accounts/{account}", json={"type": "Withdraw", "amount": 200.0})
        assert withdrawn.json() == {"id": account, "owner": owner, "balance": 1300.0, "version": 3}

        got = http.get(f"/accounts/{account}")
        assert got.status_code == 200
        assert got.json() == withdrawn.json()
        # The read model is kept inline: the list never lags a command that returned.
        listed = http.get("/accounts", params={"owner": owner}).json()
        assert listed == {
            "accounts": [{"id": account, "owner": owner, "balance": 1300.0, "version": 3}],
            "next": None,
        }
        rich = http.get("/accounts", params={"owner": owner, "min_balance": "2000"}).json()
        assert rich["accounts"] == []


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == status
    message: str = body["message"]
    return message


def test_errors_are_json_with_the_bank_services_statuses(django_server: DjangoServer) -> None:
    account = new_id()
    with django_server.client() as http:
        url = f"/accounts/{account}"
        # Unknown account: reading it, or a command other than opening it.
        assert "not found" in error(http.get(url), 404)
        assert "not found" in error(http.post(url, json={"type": "Deposit", "amount": 1}), 404)
        http.post(url, json={"type": "OpenAccount", "owner": "Bo", "initial_balance": 10})
        # A business rule: 400, nothing written.
        overdraft = http.post(url, json={"type": "Withdraw", "amount": 11})
        assert error(overdraft, 400) == "Insufficient funds"
        again = http.post(url, json={"type": "OpenAccount", "owner": "Bo", "initial_balance": 1})
        assert error(again, 400) == "Account already open"
        assert http.get(url).json()["version"] == 1
        # Malformed input: 422.
        assert "positive" in error(http.post(url, json={"type": "Deposit", "amount": -5}), 422)
        assert "two decimal places" in error(
            http.post(url, json={"type": "Deposit", "amount": 0.001}), 422
        )
        error(http.post(url, json={"type": "Steal", "amount": 5}), 422)
        error(http.post(url, json={"type": "Deposit", "amount": 5, "note": "x"}), 422)
        error(http.post(url, content=b"{not json"), 422)
        error(http.post(url, content=b""), 422)
        error(http.get("/accounts/bad id"), 422)
        error(http.get("/accounts", params={"limit": "0"}), 422)
        error(http.get("/accounts", params={"min_balance": "lots"}), 422)
        error(http.get("/accounts", params={"after": "not-a-cursor"}), 422)
        error(http.get("/accounts", params={"sort": "secret"}), 422)
        # Too large, a wrong method, a path no route takes.
        big = {"type": "OpenAccount", "owner": "x" * 100_000, "initial_balance": 1}
        error(http.post(f"/accounts/{new_id()}", json=big), 413)
        error(http.delete(url), 405)
        error(http.get("/nowhere"), 404)
        assert http.get(url).json()["version"] == 1


def test_concurrent_requests_lose_and_duplicate_nothing(django_server: DjangoServer) -> None:
    """Many request threads depositing into one account at once: every deposit lands once."""
    account, deposits, clients = new_id(), 60, 12
    with django_server.client() as http:
        http.post(
            f"/accounts/{account}",
            json={"type": "OpenAccount", "owner": "Cy", "initial_balance": 0},
        )

    def deposit_some(client: int) -> list[int]:
        with django_server.client() as http:
            return [
                http.post(
                    f"/accounts/{account}", json={"type": "Deposit", "amount": 1.25}
                ).status_code
                for _ in range(deposits // clients)
            ]

    with ThreadPoolExecutor(clients) as pool:
        statuses = [s for batch in pool.map(deposit_some, range(clients)) for s in batch]
    assert statuses == [200] * deposits
    with django_server.client() as http:
        final = http.get(f"/accounts/{account}").json()
    assert final == {"id": account, "owner": "Cy", "balance": 75.0, "version": 1 + deposits}

    # The same store, read from outside the server: the events, once each, in order.
    with open_store(django_server.store_url) as engine:
        history = Application(engine).history(Account(), account)
    assert [e.recorded.version for e in history] == list(range(1, deposits + 2))

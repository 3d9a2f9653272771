"""Forgetting seen from the edges, on every engine: the relay publishes no name in clear
(read back from RabbitMQ's copy), the HTTP history and feed show the redacted value, an
inline read model is redacted in the forgetting's transaction, and ``facta events show``
and ``facta forget`` on a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pika
import pytest
from click.testing import CliRunner

from facta import REDACTED, Application, Engine, StoreUnavailable, forget
from facta.cli import cli
from facta.examples.bank.read_model import Accounts, AccountsProjection
from facta.examples.bank.service import ACCOUNTS
from facta.http import Runtime, create_app
from facta.projections import InlineProjections, ReadStore
from facta.relay import Relay
from facta.relay.rabbitmq import RabbitMQPublisher
from tests.cli.test_cli import facta
from tests.conftest import BACKENDS, POSTGRES_URL, service_missing
from tests.http.conftest import BACKEND_NAMES, drop_schema, start_server, store_url_for
from tests.personal.test_forget import NAME, SUBJECT, bank, whole_log
from tests.relay.conftest import RABBITMQ_URL


def _declare(exchange: str, queue: str) -> None:
    try:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    except pika.exceptions.AMQPConnectionError as exc:
        service_missing(f"RabbitMQ is unreachable at {RABBITMQ_URL}: {exc!r}")
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange, "topic", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange, "#")
    finally:
        connection.close()


def _drain(exchange: str, queue: str) -> list[bytes]:
    """Every message body in ``queue``, as another service's client reads them; then the
    exchange and queue are deleted."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        bodies = []
        while (got := channel.basic_get(queue, auto_ack=True))[0] is not None:
            bodies.append(got[2])
        channel.queue_delete(queue)
        channel.exchange_delete(exchange)
        return bodies
    finally:
        connection.close()


async def test_the_relay_publishes_no_name_in_clear_after_forget(store: Engine) -> None:
    tag = uuid.uuid4().hex[:10]
    exchange, queue = f"test-forget-{tag}", f"test-forget-{tag}"
    await asyncio.to_thread(_declare, exchange, queue)
    try:
        await bank(store)
        await forget(store, SUBJECT)
        await whole_log(store, 4)
        relay = Relay(store, RabbitMQPublisher(RABBITMQ_URL, exchange=exchange))
        try:
            await relay.catch_up()
        finally:
            await relay.close()
    finally:
        bodies = await asyncio.to_thread(_drain, exchange, queue)
    assert len(bodies) == 4  # three bank events and the forgetting
    assert all(NAME not in body for body in bodies)
    assert sum(b'"owner":"[redacted]"' in body for body in bodies) == 1
    assert sum(b"Grace Hopper" in body for body in bodies) == 1


@pytest.mark.parametrize("engine", list(BACKENDS))
async def test_http_history_feed_and_inline_read_model_show_the_redacted_name(
    engine: str, tmp_path: Path
) -> None:
    store = await BACKENDS[engine](tmp_path)
    inline = InlineProjections(store, [AccountsProjection()])
    await inline.setup()
    read_store = ReadStore(store)

    async def open_application() -> Application:
        # Closed at shutdown, before the runtime closes the store.
        runtime.cleanup.push_async_callback(inline.close)
        runtime.cleanup.push_async_callback(read_store.close)
        return Application(store, transaction_hook=inline)

    runtime = Runtime(open_application)
    app = create_app(runtime, [ACCOUNTS], metrics=False)
    # In this event loop (the drivers' connections belong to the loop that opened them):
    # the app's own lifespan, and requests through httpx's ASGI transport.
    transport = httpx.ASGITransport(app=app)
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        opened = await client.post(
            "/accounts/acc-1",
            json={"type": "OpenAccount", "owner": NAME.decode(), "initial_balance": 3.0},
        )
        assert opened.json()["owner"] == NAME.decode()
        summary = await Accounts(read_store).get("acc-1")
        assert summary is not None
        assert summary.owner == NAME.decode()

        await forget(store, SUBJECT, app=runtime.application)

        summary = await Accounts(read_store).get("acc-1")
        assert summary is not None
        assert summary.owner == REDACTED
        account = await client.get("/accounts/acc-1")
        assert (account.json()["owner"], account.json()["balance"]) == (REDACTED, 3.0)
        history = await client.get("/accounts/acc-1/events")
        assert history.status_code == 200
        assert NAME not in history.content
        assert history.json()[0]["owner"] == REDACTED
        await whole_log(store, 2)
        feed = await client.get("/events")
        assert feed.status_code == 200
        assert NAME not in feed.content
        types = [e["type"] for e in feed.json()["events"]]
        assert types == ["AccountOpened", "SubjectForgotten"]


async def _drop(schema: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


async def _fill(url: str) -> None:
    from facta import open_store

    store = await open_store(url)
    try:
        await bank(store)
    finally:
        await store.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_cli_forget_then_events_show_has_no_name(engine: str, tmp_path: Path) -> None:
    """The CLI opens the store itself, so only engines another process can open."""
    schema = None
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path / 'cli.db'}"
    else:
        schema = f"test_{uuid.uuid4().hex[:16]}"
        url = f"{POSTGRES_URL}?schema={schema}"
    try:
        try:
            asyncio.run(_fill(url))
        except StoreUnavailable as exc:
            service_missing(f"PostgreSQL is unreachable: {exc}")
        runner = CliRunner()
        shown = runner.invoke(cli, ["events", "show", SUBJECT, "--store", url, "--json"])
        assert shown.exit_code == 0, shown.output
        assert NAME.decode() in shown.output  # in clear until forgotten

        done = runner.invoke(cli, ["forget", SUBJECT, "--store", url, "--yes"])
        assert done.exit_code == 0, done.output
        assert "1 key(s) deleted" in done.output
        assert "rebuilt projection accounts" in done.output

        table = runner.invoke(cli, ["events", "show", SUBJECT, "--store", url])
        assert table.exit_code == 0, table.output
        assert "Lovelace" not in table.output  # (the table may wrap a name)
        shown = runner.invoke(cli, ["events", "show", SUBJECT, "--store", url, "--json"])
        assert shown.exit_code == 0, shown.output
        assert NAME.decode() not in shown.output
        assert '"owner":"[redacted]"' in shown.output
        refused = runner.invoke(cli, ["forget", "no spaces allowed", "--store", url, "--yes"])
        assert refused.exit_code == 1
        assert "stream id" in refused.output
    finally:
        if schema is not None:
            asyncio.run(_drop(schema))


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_facta_forget_against_a_running_service(backend: str, tmp_path: Path) -> None:
    """`facta forget` as a process of its own beside `facta serve`: the service's inline read
    model is redacted in the forgetting's transaction, and the service's other read paths
    once its key cache has expired (Vault.cache_seconds, 5 s)."""
    url = store_url_for(backend, tmp_path)
    server = start_server(url, tmp_path)
    try:
        with server.client() as client:
            opened = client.post(
                "/accounts/acc-1",
                json={"type": "OpenAccount", "owner": NAME.decode(), "initial_balance": 7},
            )
            assert opened.status_code == 200, opened.text
            assert client.get("/accounts/acc-1").json()["owner"] == NAME.decode()

            done = facta("forget", SUBJECT, "--yes", "--store", url, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            assert "1 key(s) deleted" in done.stdout

            listed = client.get("/accounts").json()["accounts"]
            assert [a["owner"] for a in listed] == [REDACTED]
            paths = ("/accounts/acc-1", "/accounts/acc-1/events", "/events")

            def answers() -> list[bytes]:
                reads = [client.get(path) for path in paths]
                deposit = client.post("/accounts/acc-1", json={"type": "Deposit", "amount": 1})
                for answer in (*reads, deposit):
                    assert answer.status_code == 200, answer.text
                return [answer.content for answer in (*reads, deposit)]

            deadline = time.monotonic() + 20
            while any(NAME in content for content in answers()):
                assert time.monotonic() < deadline, "the service still decrypts after 20 s"
                time.sleep(0.2)
            assert client.get("/accounts/acc-1").json()["owner"] == REDACTED
    finally:
        server.stop()
        drop_schema(url)

"""What retrying cannot fix stops the relay at once, with one clear error (``facta relay run``
exits 1 with one line); what may pass is retried with back-off. Against the machine's
RabbitMQ and NATS, and a nats-server with users of its own that a test starts on a free
port (a copy of the binary, so that the harness never takes it for the machine's one).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import nats
import pytest

from facta import (
    NewEvent,
    Position,
    open_store,
)
from facta.relay import BrokerRefused, Publisher, Relay
from facta.relay.nats import NatsPublisher
from facta.relay.rabbitmq import RabbitMQPublisher
from facta.store.memory import MemoryEngine
from tests.conftest import service_missing
from tests.http.conftest import free_port
from tests.relay.conftest import (
    NATS_URL,
    RABBITMQ_URL,
    _nats_answers,
    _rabbitmq_up,
    relay_environment,
)

pytestmark = pytest.mark.timeout(90)

NATS_SERVER = "/usr/sbin/nats-server"


def _rabbitmq(password: str | None = None, vhost: str = "") -> str:
    parts = urlsplit(RABBITMQ_URL)
    netloc = f"{parts.username}:{password or parts.password}@{parts.hostname}:{parts.port}"
    return parts._replace(netloc=netloc, path=f"/{vhost}").geturl()


@pytest.fixture
async def rabbitmq() -> None:
    if not await _rabbitmq_up():
        service_missing(f"RabbitMQ is unreachable at {RABBITMQ_URL}")


@pytest.fixture
async def shared_nats() -> None:
    if not await _nats_answers():
        service_missing(f"NATS JetStream is unreachable at {NATS_URL}")


async def _refused(publisher: Publisher) -> BrokerRefused:
    """The error that stops a relay to ``publisher`` at once, its checkpoint unmoved."""
    store = MemoryEngine()
    await store.append("account-1", [NewEvent("Opened", b"{}")])
    relay = Relay(store, publisher, name="refused")
    try:
        with pytest.raises(BrokerRefused) as refused:
            await asyncio.wait_for(relay.catch_up(), 30)
        assert relay.status.reconnects == 0  # not retried
        row = await relay.checkpoints.get("refused")
        assert row is not None
        assert row.position == Position(0, 0)
        assert row.owner is None
    finally:
        await relay.close()
    assert "\n" not in str(refused.value)
    return refused.value


def _run_cli(tmp_path: Path, destination: str) -> subprocess.CompletedProcess[str]:
    """``facta relay run`` to ``destination`` on a store with one event (it must stop)."""
    path = tmp_path / "events.db"

    async def prepare() -> None:
        store = await open_store(f"sqlite:///{path}")
        await store.append("account-1", [NewEvent("Opened", b"{}")])
        await store.close()

    asyncio.run(prepare())
    command = [sys.executable, "-m", "facta.cli", "relay", "run", "--store", f"sqlite:///{path}"]
    return subprocess.run(
        [*command, "--to", destination, "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env=relay_environment(public_api=False),
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: relay stopped")
    for text in expected:
        assert text in lines[0]
    return lines[0]


@pytest.mark.usefixtures("rabbitmq")
async def test_rabbitmq_wrong_password_or_vhost_stops_the_relay() -> None:
    exchange = f"test-{uuid.uuid4().hex[:10]}"
    wrong = await _refused(RabbitMQPublisher(_rabbitmq("not-the-password"), exchange=exchange))
    assert "refused the login of user 'guest'" in str(wrong)
    assert "ACCESS_REFUSED" in str(wrong)
    assert "not-the-password" not in str(wrong)
    vhost = f"no-such-vhost-{uuid.uuid4().hex[:6]}"
    missing = await _refused(RabbitMQPublisher(_rabbitmq(vhost=vhost), exchange=exchange))
    assert f"refused to open virtual host {vhost!r}" in str(missing)


@pytest.mark.usefixtures("rabbitmq")
async def test_rabbitmq_access_refused_or_a_clashing_exchange_stops_the_relay() -> None:
    reserved = f"amq.test-{uuid.uuid4().hex[:10]}"  # a name RabbitMQ reserves for itself
    refused = await _refused(RabbitMQPublisher(RABBITMQ_URL, exchange=reserved))
    assert "refused user 'guest' access" in str(refused)
    assert "ACCESS_REFUSED" in str(refused)

    clashing = f"test-{uuid.uuid4().hex[:10]}"
    connection = await aio_pika.connect(RABBITMQ_URL)
    try:
        channel = await connection.channel()
        await channel.declare_exchange(clashing, aio_pika.ExchangeType.FANOUT)
        refused = await _refused(RabbitMQPublisher(RABBITMQ_URL, exchange=clashing))
        assert f"exchange {clashing!r} exists with other settings" in str(refused)
        await channel.exchange_delete(clashing)
    finally:
        await connection.close()


@pytest.mark.usefixtures("rabbitmq")
def test_cli_exits_with_one_line_for_a_wrong_password_or_vhost(tmp_path: Path) -> None:
    result = _run_cli(tmp_path, f"{_rabbitmq('not-the-password')}?exchange=test-cli")
    line = _one_line_error(result, "refused the login of user 'guest'")
    assert "not-the-password" not in result.stdout + line
    result = _run_cli(tmp_path, f"{_rabbitmq(vhost='no-such-vhost')}?exchange=test-cli")
    _one_line_error(result, "refused to open virtual host 'no-such-vhost'")


@pytest.fixture
def nats_with_users(tmp_path: Path) -> Iterator[str]:
    """A nats-server with JetStream and two users on a free port: ``good`` may do anything,
    ``limited`` may not publish to ``denied.>``; yields its ``host:port``."""
    if shutil.which(NATS_SERVER) is None:
        service_missing(f"{NATS_SERVER} is not installed")
    binary = tmp_path / "nats-server-for-test"
    shutil.copy(NATS_SERVER, binary)
    port = free_port()
    config = tmp_path / "nats.conf"
    config.write_text(
        f"listen: 127.0.0.1:{port}\n"
        f'jetstream {{ store_dir: "{tmp_path / "jetstream"}" }}\n'
        "accounts { A: { jetstream: enabled, users: [\n"
        "  {user: good, password: pw},\n"
        '  {user: limited, password: pw, permissions: {publish: {deny: ["denied.>"]}}}\n'
        "] } }\n"
    )
    server = subprocess.Popen(
        [str(binary), "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert server.poll() is None, "the test's nats-server exited"
            assert time.monotonic() < deadline, "the test's nats-server did not start"
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            server.kill()
            server.wait()


async def test_nats_authorization_and_permissions_violations_stop_the_relay(
    nats_with_users: str, tmp_path: Path
) -> None:
    server = nats_with_users
    for url in (f"nats://good:wrong@{server}", f"nats://{server}"):
        refused = await _refused(NatsPublisher(url, stream="RELAY", subject="relay"))
        assert "authorization violation" in str(refused)
        assert "wrong" not in str(refused)
    refused = await _refused(
        NatsPublisher(f"nats://limited:pw@{server}", stream="DENIED", subject="denied")
    )
    assert 'permissions violation for publish to "denied.account.opened"' in str(refused).lower()
    # Allowed elsewhere: the same user relays to another subject.
    store = MemoryEngine()
    await store.append("account-1", [NewEvent("Opened", b"{}")])
    relay = Relay(store, NatsPublisher(f"nats://limited:pw@{server}", stream="OK", subject="ok"))
    try:
        assert await asyncio.wait_for(relay.catch_up(), 30) == await store.head()
    finally:
        await relay.close()

    result = await asyncio.to_thread(
        _run_cli, tmp_path, f"nats://good:wrong@{server}?stream=RELAY&subject=relay"
    )
    _one_line_error(result, "authorization violation")


@pytest.mark.usefixtures("shared_nats")
async def test_a_missing_or_mismatched_jetstream_stream_stops_the_relay() -> None:
    tag = uuid.uuid4().hex[:10]
    missing = await _refused(
        NatsPublisher(NATS_URL, stream=f"TEST_{tag}", subject=f"test{tag}", create="false")
    )
    assert f"has no stream 'TEST_{tag}'" in str(missing)

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        await js.add_stream(name=f"TEST_{tag}", subjects=[f"other{tag}.>"])
        mismatched = await _refused(
            NatsPublisher(NATS_URL, stream=f"TEST_{tag}", subject=f"test{tag}")
        )
        assert f"takes the subjects ['other{tag}.>']" in str(mismatched)
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(f"TEST_{tag}")
        await nc.close()


@pytest.mark.parametrize("kind", ["rabbitmq", "nats"])
async def test_a_broker_that_cannot_be_reached_is_retried_with_back_off(kind: str) -> None:
    closed_port = free_port()  # nothing listens on it
    publisher: Publisher
    if kind == "rabbitmq":
        publisher = RabbitMQPublisher(f"amqp://guest:guest@127.0.0.1:{closed_port}/")
    else:
        publisher = NatsPublisher(f"nats://127.0.0.1:{closed_port}")
    store = MemoryEngine()
    await store.append("account-1", [NewEvent("Opened", b"{}")])
    relay = Relay(store, publisher, name="unreachable")
    task = asyncio.create_task(relay.run())
    try:
        deadline = time.monotonic() + 20
        while relay.status.reconnects < 3:
            assert not task.done(), task
            assert time.monotonic() < deadline, relay.status
            await asyncio.sleep(0.05)
        assert "cannot connect" in str(relay.status.last_error)
        assert not task.done()  # still trying
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await relay.close()


async def test_a_relay_keeps_its_last_error_in_its_row(tmp_path: Path) -> None:
    """A broker that cannot be reached: the relay keeps retrying, and its row says why (for
    the console and `facta relay status`), without a broker to run."""
    store = await open_store(f"sqlite:///{tmp_path / 'events.db'}")
    port = free_port()  # nothing listens there
    relay = Relay(store, NatsPublisher(f"nats://127.0.0.1:{port}"), name="unreachable")
    task = asyncio.create_task(relay.run())
    try:
        deadline = time.monotonic() + 20
        while True:
            row = await store.relay_checkpoints.get("unreachable")
            if row is not None and row.error is not None:
                break
            assert time.monotonic() < deadline, "no error recorded"
            await asyncio.sleep(0.05)
        assert "cannot connect to NATS" in row.error
        assert row.error_at is not None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await relay.close()
        await store.close()

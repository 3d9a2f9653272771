"""The fast paths run only with the library versions they were checked against: any other
version, a missing attribute, or FACTA_RELAY_PUBLIC_API sends the publisher through its
client library's public API, which then relays to the real broker (every broker test runs
on both paths; see the ``broker`` fixture)."""

from __future__ import annotations

import logging
from importlib import metadata

import pytest

from facta import NewEvent
from facta.relay import Relay
from facta.relay._fastpath import CHECKED_VERSIONS, PUBLIC_API, refusal
from facta.store.memory import MemoryEngine
from tests.relay.conftest import Harness

PACKAGES = {"rabbitmq": "aiormq", "nats": "nats-py"}


async def _relay_one(broker: Harness) -> bool | None:
    """Relay one event through the harness's publisher; whether it took the fast path."""
    store = MemoryEngine()
    await store.append("account-1", [NewEvent("Opened", b"{}")])
    publisher = broker.publisher()
    if broker.kind == "rabbitmq":
        publisher.unroutable = "drop"  # type: ignore[attr-defined]  # no queue here
    relay = Relay(store, publisher, name=broker.relay_name)
    try:
        assert await relay.catch_up() == await store.head()
    finally:
        await relay.close()
    fast: bool | None = getattr(publisher, "fast_path", None)
    return fast


async def test_another_library_version_takes_the_public_api(
    plain_broker: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    package = PACKAGES[plain_broker.kind]
    installed = metadata.version(package)
    monkeypatch.setitem(CHECKED_VERSIONS, package, "0.0.1")  # as if another were installed
    with caplog.at_level(logging.INFO, logger="facta.relay"):
        assert await _relay_one(plain_broker) is False
    assert (
        f"publishing through {package}'s public API: {package} {installed} is installed;"
        " the fast path was checked against 0.0.1"
    ) in caplog.text


async def test_the_environment_variable_forces_the_public_api(
    plain_broker: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PUBLIC_API, "1")
    assert await _relay_one(plain_broker) is False


async def test_the_checked_versions_take_the_fast_path(plain_broker: Harness) -> None:
    # With another version installed (a newer release), the public API is the right path.
    assert await _relay_one(plain_broker) is plain_broker.fast_path_expected()


def test_a_missing_attribute_refuses_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PUBLIC_API, raising=False)
    monkeypatch.setitem(CHECKED_VERSIONS, "aiormq", metadata.version("aiormq"))

    class Client:
        lock = None

    assert refusal("aiormq", Client(), ("lock",)) is None
    assert refusal("aiormq", Client(), ("lock", "_on_confirm_frame")) == (
        f"aiormq {metadata.version('aiormq')} lacks _on_confirm_frame"
    )

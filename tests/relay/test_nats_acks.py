"""JetStream acks settled per batch: every message's ack resolves the batch, an error reply
or a status message fails it (the broker tests prove it end to end)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from facta.relay import Message, PublishError
from facta.relay.nats import NatsPublisher
from facta.store.base import Position


@dataclass
class _Reply:
    """What the publisher reads of a nats-py Msg on its inbox."""

    subject: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _messages(count: int) -> list[Message]:
    return [
        Message(f"e-{n}", "s-1", Position(0, n), "s.T", b"{}", {"event-type": "T"})
        for n in range(count)
    ]


async def test_acks_settle_their_batch_and_errors_fail_it() -> None:
    publisher = NatsPublisher("nats://127.0.0.1:4222", timeout=30)
    publisher._inbox = "_INBOX.t."
    first, first_token = publisher._track(_messages(2))
    second, second_token = publisher._track(_messages(2))
    third, third_token = publisher._track(_messages(1))
    assert (first_token, second_token, third_token) == (1, 3, 5)

    acked = b'{"stream":"error","seq":%d}'  # a stream may be named "error"
    await publisher._on_ack(_Reply("_INBOX.t.2", acked % 2))
    assert not first.acked.done()
    await publisher._on_ack(_Reply("_INBOX.t.1", acked % 1))
    assert first.acked.result() is None

    await publisher._on_ack(_Reply("_INBOX.t.3", acked % 3))
    await publisher._on_ack(_Reply("_INBOX.t.4", b'{"error":{"code":503,"description":"x"}}'))
    with pytest.raises(PublishError, match="refused"):
        second.acked.result()

    await publisher._on_ack(_Reply("_INBOX.t.5", b"", {"Status": "503"}))
    with pytest.raises(PublishError, match="503"):
        third.acked.result()
    assert not publisher._batches


async def test_unacked_batches_fail_when_the_publisher_closes() -> None:
    publisher = NatsPublisher("nats://127.0.0.1:4222", timeout=30)
    batch, _ = publisher._track(_messages(3))
    await publisher.close()
    with pytest.raises(PublishError, match="closed"):
        await batch.acked

"""Publisher confirms settled per batch: the broker's acks and nacks, in ranges or one by one,
against the batches the RabbitMQ publisher sent (the broker tests prove it end to end)."""

from __future__ import annotations

import asyncio

import pytest
from pamqp import commands as spec

from facta.relay import Message, PublishError
from facta.relay._aiormq import Unconfirmed
from facta.store.base import Position


def _batch(first: int, size: int) -> list[Message]:
    return [
        Message(f"e-{tag}", "s-1", Position(0, tag), "s.T", b"{}", {"event-type": "T"})
        for tag in range(first, first + size)
    ]


async def test_ranges_and_single_acks_settle_whole_batches() -> None:
    unconfirmed = Unconfirmed("amqp://test", timeout=30)
    first = unconfirmed.add(1, _batch(1, 10))  # tags 1-10
    second = unconfirmed.add(11, _batch(11, 10))  # tags 11-20
    third = unconfirmed.add(21, _batch(21, 5))  # tags 21-25

    await unconfirmed.on_confirm_frame(spec.Basic.Ack(delivery_tag=4, multiple=True))
    await unconfirmed.on_confirm_frame(spec.Basic.Ack(delivery_tag=6))
    await unconfirmed.on_confirm_frame(spec.Basic.Ack(delivery_tag=12))
    assert not first.done()
    await unconfirmed.on_confirm_frame(spec.Basic.Ack(delivery_tag=5))  # 1-6 now all in
    await unconfirmed.on_confirm_frame(spec.Basic.Ack(delivery_tag=15, multiple=True))
    assert first.done()
    assert first.result() is None
    assert not second.done()  # 16-20 outstanding
    await unconfirmed.on_confirm_frame(spec.Basic.Ack(delivery_tag=25, multiple=True))
    assert second.done()
    assert third.done()
    assert not unconfirmed.batches
    await unconfirmed.on_confirm_frame(spec.Basic.Ack(delivery_tag=25, multiple=True))  # again


async def test_a_nack_fails_its_batch_and_names_the_event() -> None:
    unconfirmed = Unconfirmed("amqp://test", timeout=30)
    first = unconfirmed.add(1, _batch(1, 3))
    second = unconfirmed.add(4, _batch(4, 3))
    third = unconfirmed.add(7, _batch(7, 3))
    await unconfirmed.on_confirm_frame(spec.Basic.Ack(delivery_tag=3, multiple=True))
    await unconfirmed.on_confirm_frame(spec.Basic.Nack(delivery_tag=5))
    await unconfirmed.on_confirm_frame(spec.Basic.Ack(delivery_tag=9, multiple=True))
    assert first.result() is None
    with pytest.raises(PublishError, match="e-5"):
        second.result()
    assert third.result() is None


async def test_unconfirmed_batches_fail_on_close_and_on_timeout() -> None:
    unconfirmed = Unconfirmed("amqp://test", timeout=0.01)
    late = unconfirmed.add(1, _batch(1, 2))
    with pytest.raises(PublishError, match="confirmed nothing"):
        await asyncio.wait_for(late, 5)

    unconfirmed = Unconfirmed("amqp://test", timeout=30)
    pending = [unconfirmed.add(1, _batch(1, 2)), unconfirmed.add(3, _batch(3, 2))]
    await unconfirmed.on_confirm_frame(spec.Basic.Ack(delivery_tag=1))
    unconfirmed.fail("the connection was closed")
    for confirmed in pending:
        with pytest.raises(PublishError, match="closed"):
            await confirmed

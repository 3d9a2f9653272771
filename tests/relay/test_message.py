"""The message a relay publishes: the current shape of each event, the envelope in headers."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import msgspec
import pytest

from facta import Codec, NewEvent
from facta.relay import EnvelopeError, to_message, to_messages, to_recorded
from facta.store.memory import MemoryEngine
from tests.evolution import wallet_v3


async def _stored(*events: NewEvent) -> list:  # type: ignore[type-arg]
    store = MemoryEngine()
    await store.append("wallet.eu-1", list(events))
    return await store.read_all()


async def test_codec_publishes_the_current_shape() -> None:
    codec = Codec()
    codec.register_aggregate(wallet_v3.Wallet())
    opened, added, frozen, unknown = await _stored(
        NewEvent("WalletOpened", b'{"owner":"ann"}', schema_version=1),
        NewEvent("FundsAdded", b'{"cents":150}', schema_version=1),
        NewEvent("WalletFrozen", b'{"reason":"x"}', schema_version=1),
        NewEvent("SomethingElse", b'{"a":1}', schema_version=4),
    )
    message = to_message(opened, codec)
    assert message is not None
    assert message.topic == "wallet_eu.WalletOpened"
    assert message.headers["schema-version"] == "3"
    assert to_recorded(message.body, message.headers).type == "WalletOpened"
    event = codec.decode(to_recorded(message.body, message.headers))
    assert event == wallet_v3.WalletOpened(owner="ann", currency="EUR", tier="basic")

    renamed = to_message(added, codec)
    assert renamed is not None
    assert renamed.topic == "wallet_eu.MoneyDeposited"
    assert renamed.headers["event-type"] == "MoneyDeposited"
    assert renamed.headers["schema-version"] == "2"
    assert isinstance(
        codec.decode(to_recorded(renamed.body, renamed.headers)), wallet_v3.MoneyDeposited
    )

    assert to_message(frozen, codec) is None  # deprecated: not published
    other = to_message(unknown, codec)  # not the codec's: as stored
    assert other is not None
    assert other.body == b'{"a":1}'
    assert other.headers["schema-version"] == "4"


async def test_current_events_go_out_as_stored_and_round_trip() -> None:
    codec = Codec([wallet_v3.MoneyDeposited])
    (recorded,) = await _stored(
        NewEvent(
            "MoneyDeposited",
            b'{"amount":"2.50"}',
            schema_version=2,
            metadata=b'{"correlation_id":"c","causation_id":"k","user":"u"}',
        )
    )
    message = to_message(recorded, codec)
    assert message is not None
    assert message.body is recorded.data  # no decode, no re-encode
    assert message.event_id == recorded.event_id
    assert message.headers["correlation-id"] == "c"
    assert message.headers["causation-id"] == "k"
    rebuilt = to_recorded(message.body, message.headers)
    # recorded-at is ISO 8601 to the microsecond: the time survives to the microsecond.
    assert rebuilt.recorded_at == pytest.approx(recorded.recorded_at, abs=1e-6)
    assert msgspec.structs.replace(rebuilt, recorded_at=recorded.recorded_at) == recorded
    assert to_message(recorded) == message  # without a codec: the same


async def test_recorded_at_is_iso_8601_as_in_the_http_api() -> None:
    from facta.http._json import timestamp

    (recorded,) = await _stored(NewEvent("Opened", b"{}"))
    message = to_message(recorded)
    assert message is not None
    text = message.headers["recorded-at"]
    assert text == timestamp(recorded.recorded_at)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", text)
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    assert moment.utcoffset() == timedelta(0)
    assert moment.timestamp() == pytest.approx(recorded.recorded_at, abs=1e-6)
    # A message from a relay before ISO 8601 (Unix seconds) still rebuilds.
    old = dict(message.headers, **{"recorded-at": "1733130000.25"})
    assert to_recorded(message.body, old).recorded_at == 1733130000.25


async def test_the_trace_context_of_the_command_goes_in_the_headers() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    traced, with_state, plain, broken = await _stored(
        NewEvent("A", b"{}", metadata=b'{"traceparent":"%s"}' % traceparent.encode()),
        NewEvent(
            "B",
            b"{}",
            metadata=b'{"traceparent":"%s","tracestate":"k=v"}' % traceparent.encode(),
        ),
        NewEvent("C", b"{}", metadata=b'{"correlation_id":"c"}'),
        NewEvent("D", b"{}", metadata=b'{"traceparent":"not one"}'),
    )
    messages = to_messages([traced, with_state, plain, broken])
    assert messages[0].headers["traceparent"] == traceparent
    assert "tracestate" not in messages[0].headers
    assert messages[1].headers["traceparent"] == traceparent
    assert messages[1].headers["tracestate"] == "k=v"
    assert "traceparent" not in messages[2].headers  # appended without tracing
    assert "traceparent" not in messages[3].headers  # nothing valid to continue


async def test_a_batch_gives_each_event_its_own_message() -> None:
    """to_messages remembers what repeats within a batch (topics, metadata, timestamps, the
    codec's verdict on a type): nothing of one event may leak into the next."""
    codec = Codec()
    codec.register_aggregate(wallet_v3.Wallet())
    store = MemoryEngine()
    for n, metadata in enumerate(
        (b'{"correlation_id":"a"}', b'{"correlation_id":"a"}', b"{}", b'{"causation_id":7}')
    ):
        await store.append(
            f"wallet.eu-{n % 2}",
            [
                NewEvent("FundsAdded", b'{"cents":1}', metadata=metadata),
                NewEvent("WalletFrozen", b'{"reason":"x"}', metadata=metadata),
                NewEvent("Other", b"{}", metadata=metadata),
            ],
        )
        await store.append(f"ledger-{n}", [NewEvent("Other", b"{}", metadata=metadata)])
    events = await store.read_all()
    for with_codec in (codec, None):
        one_by_one = [m for e in events if (m := to_message(e, with_codec)) is not None]
        assert to_messages(events, with_codec) == one_by_one
        assert len(one_by_one) == len(events) - (4 if with_codec else 0)
    ledger = to_messages(events)[-1]
    assert ledger.topic == "ledger.Other"
    assert ledger.headers["causation-id"] == "7"
    assert "correlation-id" not in ledger.headers


def test_a_message_without_an_envelope_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="event-id"):
        to_recorded(b"{}", {})
    headers = {
        "event-id": "e",
        "event-type": "T",
        "stream-id": "s-1",
        "stream-version": "1",
        "position": "not a position",
        "schema-version": "1",
    }
    with pytest.raises(EnvelopeError, match="malformed"):
        to_recorded(b"{}", headers)


def test_amqp_frames_are_the_bytes_pamqp_writes() -> None:
    """The relay's own encoder of basic.publish (its hot path) against aiormq's encoder."""
    from pamqp import commands as spec
    from pamqp import frame
    from pamqp.body import ContentBody
    from pamqp.header import ContentHeader

    from facta.relay._amqp import EncodeError, PublishEncoder
    from facta.relay.message import Message
    from facta.store.base import Position

    headers = {
        "event-id": "e-1",
        "event-type": "MoneyDeposited",
        "stream-id": "account-7",
        "stream-version": "3",
        "position": "12:40",
        "metadata": '{"correlation_id":"c","note":"é ü"}',
        "correlation-id": "c",
    }
    odd = {  # not ASCII, a long value, a correlation id too long for its property
        "event-type": "Überweisung",
        "zeta": "ü" * 3000,
        "alpha": "",
        "correlation-id": "c" * 300,
    }

    def pamqp_frames(message: Message, channel: int, max_body: int, mandatory: bool) -> bytes:
        correlation = message.headers.get("correlation-id")
        properties = spec.Basic.Properties(
            content_type="application/json",
            headers=message.headers,  # type: ignore[arg-type]
            delivery_mode=2,
            correlation_id=correlation if correlation and len(correlation) <= 255 else None,
            message_id=message.event_id,
            message_type=message.headers["event-type"],
            app_id="facta",
        )
        body = message.body
        frames = [
            spec.Basic.Publish(exchange="facta", routing_key=message.topic, mandatory=mandatory),
            ContentHeader(properties=properties, body_size=len(body)),
            *(ContentBody(body[i : i + max_body]) for i in range(0, len(body), max_body)),
        ]
        return b"".join(frame.marshal(f, channel) for f in frames)

    messages = [
        Message("e-1", "account-7", Position(12, 40), "account.MoneyDeposited", body, headers)
        for body in (b'{"amount":"1.00"}', b"x" * 300, b"")
    ]
    messages.append(Message("é-2", "konto-1", Position(0, 9), "konto.Ü", b"y" * 5000, odd))
    for channel, max_body, mandatory in ((5, 128, True), (300, 131064, False)):
        encoder = PublishEncoder(channel, "facta", max_body, mandatory=mandatory)
        for message in messages:
            assert encoder.encode([message]) == pamqp_frames(message, channel, max_body, mandatory)
        batch = b"".join(pamqp_frames(m, channel, max_body, mandatory) for m in messages)
        assert encoder.encode(messages) == batch
        assert encoder.encode(messages) == batch  # again, from what it remembered
    too_long = Message("e", "s-1", Position(0, 1), "s.T", b"{}", {"event-type": "T" * 256})
    with pytest.raises(EncodeError):
        PublishEncoder(1, "facta", 128, mandatory=True).encode([too_long])


def test_nats_hpub_is_the_command_nats_py_writes() -> None:
    """The relay's own HPUB (its hot path) against nats-py's for the same headers."""
    from nats.protocol.command import hpub_cmd

    from facta.relay._hpub import hpubs
    from facta.relay.message import Message
    from facta.store.base import Position

    headers = {"event-id": "e-1", "stream-id": "account-7", "metadata": '{"n":"é\\nx"}'}
    message = Message("e-1", "account-7", Position(0, 4), "account.X", b'{"a":1}', headers)
    expected_headers = (
        "NATS/1.0\r\nNats-Msg-Id: e-1\r\nevent-id: e-1\r\nstream-id: account-7\r\n"
        'metadata: {"n":"é\\nx"}\r\n\r\n'
    ).encode()
    expected = hpub_cmd("facta.account.X", "_INBOX.abc.1", expected_headers, b'{"a":1}')
    assert hpubs("facta.", "_INBOX.abc.", 1, [message]) == expected
    crlf = Message("e-1", "s-1", Position(0, 1), "s.X", b"{}", {"correlation-id": " a\r\nb "})
    odd = Message("é", "s-2", Position(0, 2), "s.Ü", "ä".encode() * 5, {"k": "ü"})
    batch = hpubs("facta.", "_INBOX.abc.", 7, [message, crlf, odd])
    assert batch.startswith(hpubs("facta.", "_INBOX.abc.", 7, [message]))
    assert b"_INBOX.abc.8 " in batch
    assert b"correlation-id: a  b\r\n" in batch
    odd_headers = "NATS/1.0\r\nNats-Msg-Id: é\r\nk: ü\r\n\r\n".encode()
    assert batch.endswith(hpub_cmd("facta.s.Ü", "_INBOX.abc.9", odd_headers, "ä".encode() * 5))

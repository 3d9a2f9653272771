"""NATS JetStream (nats-py): the relay's publisher and a consumer for other services.

Publishing: the subject is ``{subject}.{category}.{type}`` (``facta.account.MoneyDeposited``)
in a JetStream stream (default ``FACTA``, subjects ``facta.>``, file storage), created if
absent. Every message carries ``Nats-Msg-Id`` = the event id, so the server drops a resend of
an event it stored within the stream's duplicate window (default two minutes): after a relay
restart or reconnect, the stream holds each event once. The envelope is in the headers (see
:mod:`facta.relay.message`). ``publish`` returns when JetStream acked every message (stored).

A batch goes out as one write of ``HPUB`` commands through nats-py's outgoing buffer, a fast
path on the client's internals taken only with the nats-py version it was checked against
(:mod:`facta.relay._fastpath`); otherwise each message goes through ``Client.publish``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from facta._retry import backoff
from facta.codec import Codec
from facta.relay import _fastpath
from facta.relay._hpub import MSG_ID, hpubs
from facta.relay.consumer import (
    DeadLetter,
    Deduplicator,
    Dispatcher,
    Handler,
    _reraise_cancellation,
)
from facta.relay.message import Message
from facta.relay.nats_servers import servers, where
from facta.relay.nats_streams import ensure_stream, takes_every
from facta.relay.publisher import BrokerRefused, PublishError

log = logging.getLogger("facta.relay")

_NATS_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.Error,
    ConnectionError,
    OSError,
    TimeoutError,
)


def _refused(exc: BaseException | None, destination: str) -> BrokerRefused | None:
    """The BrokerRefused that a NATS error amounts to, if retrying cannot fix it: an
    authorization or permissions violation, credentials the server does not take, a TLS
    setting the server does not agree with."""
    text = str(exc).lower()
    credentials = nats.errors.AuthorizationError | nats.errors.InvalidUserCredentialsError
    if isinstance(exc, credentials) or (
        isinstance(exc, nats.errors.Error) and "authorization violation" in text
    ):
        return BrokerRefused(
            f"NATS at {destination} refused the connection: authorization violation (check the"
            " user and password, token or credentials in the URL)"
        )
    if isinstance(exc, nats.errors.Error) and "permissions violation" in text:
        reason = str(exc).strip().removeprefix("nats: ")
        return BrokerRefused(f"NATS at {destination} refused the relay: {reason}")
    if isinstance(exc, nats.errors.SecureConnRequiredError | nats.errors.SecureConnWantedError):
        return BrokerRefused(f"NATS at {destination} refused the connection: {exc!r}")
    return None


class _Batch:
    """A published batch waiting for JetStream's acks, one per message."""

    __slots__ = ("acked", "messages", "remaining", "timer")

    def __init__(self, messages: Sequence[Message], acked: asyncio.Future[None]) -> None:
        self.messages = messages
        self.acked = acked
        self.remaining = len(messages)
        self.timer: asyncio.TimerHandle | None = None


class NatsPublisher:
    """Publishes to a JetStream stream with ``Nats-Msg-Id`` de-duplication.

    ``url``: ``nats://host:port``, or a cluster's servers ``nats://h1:p1,h2:p2,h3:p3`` (tried
    in turn, on every connect); ``stream`` and ``subject`` (the subjects' first token);
    ``timeout`` seconds to wait for a batch's acks; ``duplicate_window`` seconds and
    ``replicas`` (servers that keep a copy, in a cluster) for a stream this creates;
    ``name`` shows in the server's connection list; ``create``: create the stream if it does
    not exist (the default), else a missing stream is an error.
    ``public_api``: publish through ``Client.publish`` even where the fast path could run (as
    the environment variable ``FACTA_RELAY_PUBLIC_API`` does).

    Connecting raises BrokerRefused for an authorization violation, a stream that does not
    exist (with ``create`` false) or does not take the publisher's subjects; so does
    publishing after a permissions violation.
    """

    OPTIONS = ("stream", "subject", "timeout", "duplicate_window", "replicas", "name", "create")

    def __init__(
        self,
        url: str,
        *,
        stream: str = "FACTA",
        subject: str = "facta",
        timeout: float | str = 10.0,
        duplicate_window: float | str = 120.0,
        replicas: int | str = 1,
        name: str = "facta-relay",
        create: bool | str = True,
        public_api: bool = False,
    ) -> None:
        if not stream or not subject or "." in subject:
            raise ValueError(f"stream and subject must be one token, not {stream!r}, {subject!r}")
        if isinstance(create, str):
            if create.lower() not in ("true", "false"):
                raise ValueError(f"create must be true or false, not {create!r}")
            create = create.lower() == "true"
        self.url = url
        self.stream = stream
        self.subject = subject
        self.timeout = float(timeout)
        self.duplicate_window = float(duplicate_window)
        self.replicas = int(replicas)
        if not 1 <= self.replicas <= 5:
            raise ValueError(f"replicas must be 1 to 5 (JetStream's bound), not {replicas!r}")
        self.name = name
        self.create = create
        self.public_api = public_api
        self.fast_path: bool | None = None
        """Whether the last connection publishes on the fast path (None: not connected yet)."""
        self._refused: BrokerRefused | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._broken: asyncio.Future[None] | None = None
        self._inbox = ""
        self._pending: dict[str, _Batch] = {}  # reply token -> the batch of its message
        self._batches: set[_Batch] = set()
        self._sequence = 0
        self._raw = False

    @property
    def destination(self) -> str:
        return f"{where(self.url)}?stream={self.stream}"

    @property
    def is_connected(self) -> bool:
        return self._broken is not None and not self._broken.done()

    async def connect(self) -> None:
        broken = self._broken = asyncio.get_running_loop().create_future()
        self._refused = None
        failure: list[BaseException] = []

        async def lost() -> None:
            if not broken.done():
                broken.set_result(None)
            if self._broken is broken:  # not an old connection closing after a reconnect
                self._fail_all("lost the connection")

        async def error(exc: Exception) -> None:
            failure[:] = [exc]
            refusal = _refused(exc, self.destination)
            if refusal is not None and self._broken is broken:
                # A permissions violation leaves the connection open, and what it refused
                # is never acked: fail it now, with what retrying cannot fix.
                self._refused = refusal
                self._fail_all(refusal)
            log.debug("NATS connection of %s: %r", self.destination, exc)

        try:
            # No automatic reconnect: nats-py would resend what it buffered after a gap in
            # what reached the server; the relay reconnects itself and resends from its
            # checkpoint, which keeps the order within a stream. A server that cannot be
            # reached fails the connect at once (two tries), for the relay's own back-off.
            self._nc = await nats.connect(
                servers(self.url),
                name=self.name,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                connect_timeout=min(self.timeout, 5.0),
                disconnected_cb=lost,
                closed_cb=lost,
                error_cb=error,
            )
            self._js = self._nc.jetstream(timeout=self.timeout)
            await self._check_stream(self._js)
            self._inbox = f"{self._nc.new_inbox()}."
            self._pending, self._batches = {}, set()
            await self._nc.subscribe(f"{self._inbox}*", cb=self._on_ack)
            # The hot path writes a batch's HPUB commands itself (see hpubs) through nats-py's
            # outgoing buffer, with the nats-py version it was checked against.
            self._raw = (
                not self.public_api
                and _fastpath.refusal("nats-py", self._nc, ("_send_command", "_flush_pending"))
                is None
            )
            self.fast_path = self._raw
        except BrokerRefused:
            await self.close()
            raise
        except _NATS_ERRORS as exc:
            await self.close()
            refusal = self._refused or _refused(exc, self.destination)
            if refusal is not None:
                raise refusal from exc
            cause = f" ({failure[0]!r})" if failure and failure[0] is not exc else ""
            raise PublishError(
                f"cannot connect to NATS at {self.destination}: {exc!r}{cause}"
            ) from exc

    async def _check_stream(self, js: JetStreamContext) -> None:
        try:
            subjects = await ensure_stream(
                js,
                self.stream,
                [f"{self.subject}.>"],
                self.duplicate_window,
                create=bool(self.create),
                replicas=self.replicas,
            )
        except nats.js.errors.NotFoundError:
            raise BrokerRefused(
                f"JetStream at {self.destination} has no stream {self.stream!r}: create it, or"
                " let the relay create it (create=true)"
            ) from None
        if not takes_every(subjects, self.subject):
            raise BrokerRefused(
                f"JetStream stream {self.stream!r} at {self.destination} takes the subjects"
                f" {subjects}, not every {self.subject}.{{category}}.{{type}}: change its"
                " subjects or the relay's subject"
            )

    async def publish(self, messages: Sequence[Message]) -> Awaitable[None]:
        nc, broken = self._nc, self._broken
        if self._refused is not None:
            raise self._refused
        if nc is None or broken is None or broken.done():
            raise PublishError(f"not connected to NATS at {self.destination}")
        # JetStream acks come back to this connection's own inbox, one reply subject per
        # message (what nats-py's publish_async does too, minus its per-header checks); the
        # batch has one future, resolved by its last ack.
        batch, first = self._track(messages)
        if not messages:
            return batch.acked
        inbox, prefix = self._inbox, f"{self.subject}."
        try:
            if self._raw:
                await nc._send_command(hpubs(prefix, inbox, first, messages))
                await nc._flush_pending()
            else:
                for token, m in enumerate(messages, first):
                    headers = dict(m.headers)
                    headers[MSG_ID] = m.event_id
                    await nc.publish(
                        prefix + m.topic, m.body, reply=f"{inbox}{token}", headers=headers
                    )
        except _NATS_ERRORS as exc:
            self._fail(batch, f"failed: {exc!r}")
            raise PublishError(f"NATS at {self.destination} failed: {exc!r}") from exc
        return batch.acked

    def _track(self, messages: Sequence[Message]) -> tuple[_Batch, int]:
        """A batch waiting for the acks of ``messages``, under reply tokens from the returned
        one on; it fails by itself after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        batch = _Batch(messages, loop.create_future())
        first = self._sequence + 1
        if not messages:
            batch.acked.set_result(None)
            return batch, first
        self._sequence += len(messages)
        pending = self._pending
        for token in range(first, first + len(messages)):
            pending[str(token)] = batch
        self._batches.add(batch)
        batch.timer = loop.call_later(self.timeout, self._expire, batch)
        return batch, first

    async def _on_ack(self, msg: Msg) -> None:
        batch = self._pending.pop(msg.subject[len(self._inbox) :], None)
        if batch is None or batch.acked.done():
            return
        data = msg.data
        if not data:  # a status message: no stream listens on the subject (503)
            status = (msg.headers or {}).get("Status", "?")
            self._fail(batch, f"found no JetStream stream (status {status})")
            return
        if b'"error"' in data:  # a PubAck without one needs no decoding
            reply = msgspec.json.decode(data)
            if isinstance(reply, dict) and "error" in reply:
                self._fail(batch, f"refused a message: {reply['error']}")
                return
        batch.remaining -= 1
        if batch.remaining == 0:
            self._done(batch)
            batch.acked.set_result(None)

    def _done(self, batch: _Batch) -> None:
        self._batches.discard(batch)
        if batch.timer is not None:
            batch.timer.cancel()

    def _expire(self, batch: _Batch) -> None:
        self._fail(batch, f"acked nothing for {self.timeout}s")

    def _fail(self, batch: _Batch, reason: str | PublishError) -> None:
        self._done(batch)
        if not batch.acked.done():
            batch.acked.set_exception(
                reason
                if isinstance(reason, PublishError)
                else PublishError(f"JetStream at {self.destination} {reason}")
            )
            # The relay awaits the oldest batch and reconnects on its error; the later ones
            # fail with it and may never be awaited: no "exception never retrieved" noise.
            batch.acked.exception()

    def _fail_all(self, reason: str | PublishError) -> None:
        for batch in list(self._batches):
            self._fail(batch, reason)
        self._pending = {}

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        self._fail_all("closed the connection")
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await nc.close()


class NatsConsumer:
    """Feeds relayed events from a durable JetStream pull consumer to ``handler``.

    ``durable`` names the consumer (its position survives restarts); ``filter`` narrows the
    subjects after ``{subject}.`` (``account.*``; default everything). Messages are handled in
    turn, in the stream's order (the log's order within a stream), and acked only after the
    handler returned; a repeat of an event id already handled is acked and skipped; a handler
    that fails ``max_tries`` times publishes the message, with its error in the
    ``Facta-Error`` header, to ``{subject}-dlq.{durable}.{category}.{type}`` (stream
    ``{stream}_DLQ``, created if absent), then it is acked. The client reconnects by itself;
    what was not acked comes back after ``ack_wait`` seconds.
    """

    def __init__(
        self,
        url: str,
        durable: str,
        handler: Handler,
        *,
        stream: str = "FACTA",
        subject: str = "facta",
        filter: str = ">",
        codec: Codec | None = None,
        deduplicator: Deduplicator | None = None,
        max_tries: int = 5,
        retry_delay: float = 0.05,
        batch: int = 256,
        ack_wait: float = 30.0,
        name: str = "facta-consumer",
    ) -> None:
        self.url = url
        self.durable = durable
        self.stream = stream
        self.subject = subject
        self.filter = filter
        self.batch = batch
        self.ack_wait = ack_wait
        self.name = name
        self.dispatcher = Dispatcher(
            handler,
            codec=codec,
            deduplicator=deduplicator,
            max_tries=max_tries,
            retry_delay=retry_delay,
        )
        self.connected = asyncio.Event()
        """Set once the consumer is subscribed (for readiness checks)."""

    async def run(self) -> None:
        """Consume until cancelled."""
        failures = 0
        while True:
            try:
                await self._consume()
            except _NATS_ERRORS as exc:
                _reraise_cancellation()
                self.connected.clear()
                failures += 1
                delay = backoff(failures)
                log.warning("consumer %s lost NATS (%r); again in %.2fs", self.durable, exc, delay)
                await asyncio.sleep(delay)

    async def _consume(self) -> None:
        async def error(exc: Exception) -> None:
            log.debug("NATS connection of consumer %s: %r", self.durable, exc)

        nc = await nats.connect(
            servers(self.url),
            name=self.name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            error_cb=error,
        )
        try:
            js = nc.jetstream()
            await ensure_stream(js, self.stream, [f"{self.subject}.>"], 120.0)
            # Dead letters kept as the events are: on as many servers of a cluster (a stream
            # on one server could be placed on one that is down, and never be created).
            replicas = (await js.stream_info(self.stream)).config.num_replicas or 1
            dead_stream, dead_subject = f"{self.stream}_DLQ", f"{self.subject}-dlq"
            await ensure_stream(js, dead_stream, [f"{dead_subject}.>"], 120.0, replicas=replicas)
            subscription = await js.pull_subscribe(
                f"{self.subject}.{self.filter}",
                durable=self.durable,
                stream=self.stream,
                config=api.ConsumerConfig(
                    ack_policy=api.AckPolicy.EXPLICIT,
                    ack_wait=self.ack_wait,
                    max_ack_pending=max(1000, self.batch * 4),
                ),
            )
            self.connected.set()
            while True:
                try:
                    messages = await subscription.fetch(self.batch, timeout=1.0)
                except nats.errors.TimeoutError:
                    continue
                for message in messages:
                    await self._handle(js, f"{dead_subject}.{self.durable}", message)
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await nc.close()

    async def _handle(self, js: JetStreamContext, dead_prefix: str, message: Msg) -> None:
        headers: dict[str, Any] = dict(message.headers or {})
        failure = await self.dispatcher.deliver(
            message.data, headers, keep_alive=message.in_progress
        )
        if failure is not None:
            await self._dead_letter(js, dead_prefix, message, failure)
        await message.ack()

    async def _dead_letter(
        self, js: JetStreamContext, dead_prefix: str, message: Msg, failure: DeadLetter
    ) -> None:
        headers = dict(message.headers or {})
        headers["Facta-Error"] = failure.error.replace("\r", " ").replace("\n", " ")
        headers["Facta-Tries"] = str(failure.tries)
        headers["Facta-Subject"] = message.subject
        tail = message.subject.removeprefix(f"{self.subject}.")
        await js.publish(f"{dead_prefix}.{tail}", message.data, headers=headers)

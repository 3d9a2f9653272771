"""``facta relay run --to URL``: publish the log to a broker from the relay's checkpoint, and
``facta relay status``: where each relay is."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import click

from facta.cli._common import (
    StoreError,
    console,
    load_object,
    opened_store,
    redact,
    run,
    store_option,
    timestamp,
)
from facta.errors import FactaError
from facta.store.read_models import MAX_PARTITIONS


@click.group()
def relay() -> None:
    """The broker relay: the event log is the outbox."""


def _codec(aggregates: tuple[str, ...]) -> Any:
    """A codec with the aggregates named ``MODULE:NAME`` registered, or None."""
    if not aggregates:
        return None
    from facta.codec import Codec

    codec = Codec()
    for spec in aggregates:
        aggregate: Any = load_object(spec, "--aggregate")
        try:
            # The class or an instance of it: the codec reads what the class declares.
            codec.register_aggregate(aggregate() if isinstance(aggregate, type) else aggregate)
        except (AttributeError, TypeError):
            raise click.BadParameter(
                f"{spec!r} is not an aggregate", param_hint="--aggregate"
            ) from None
    return codec


@relay.command("run")
@store_option
@click.option(
    "--to",
    "destination",
    required=True,
    envvar="FACTA_BROKER",
    show_envvar=True,
    metavar="URL",
    help="amqp://USER:PASS@HOST:PORT/VHOST?exchange=facta or nats://HOST:PORT?stream=FACTA",
)
@click.option("--name", default=None, help="The checkpoint's name [default: the destination].")
@click.option(
    "--aggregate",
    "aggregates",
    multiple=True,
    metavar="MODULE:NAME",
    help="Publish the current shape of this aggregate's events (upcast); repeatable.",
)
@click.option("--category", "categories", multiple=True, help="Publish only this category.")
@click.option("--type", "types", multiple=True, help="Publish only this event type.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--max-in-flight",
    default=5000,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Events sent but not yet confirmed by the broker, at most.",
)
@click.option(
    "--lease-ttl",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds before another relay takes over from a silent one (SQLite).",
)
@click.option(
    "--partition",
    default=None,
    metavar="P/N",
    help="Publish only partition P of N of the log (by stream: each stream's events stay in"
    " order), with its own checkpoint NAME#P/N; run one relay per partition to publish on N"
    " connections, in one host or several.",
)
@click.option(
    "--partitions",
    "fleet_partitions",
    default=None,
    type=click.IntRange(2, MAX_PARTITIONS),
    metavar="N",
    help="Share N partitions of the log with every other `relay run --partitions N` of this"
    " name: each process publishes its fair share on a connection per partition, a process"
    " that joins takes its share, a dead one's are taken over from their checkpoints.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
def run_relay(
    store_url: str,
    destination: str,
    name: str | None,
    aggregates: tuple[str, ...],
    categories: tuple[str, ...],
    types: tuple[str, ...],
    batch_size: int,
    max_in_flight: int,
    lease_ttl: float,
    partition: str | None,
    fleet_partitions: int | None,
    quiet: bool,
) -> None:
    """Publish the global log to the broker from the relay's checkpoint, until interrupted."""
    part, partitions = _partition(partition)
    if fleet_partitions is not None and partition is not None:
        raise click.BadParameter("give --partition P/N or --partitions N, not both")
    try:
        from facta.relay import Relay, RelayFleet, open_publisher
    except ImportError as exc:  # pragma: no cover - without the brokers extra
        raise click.ClickException(f"the relay needs facta[brokers]: {exc}") from None
    try:
        publisher = open_publisher(destination)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None
    codec = _codec(aggregates)
    if max_in_flight < batch_size:
        raise click.BadParameter("must be at least --batch-size", param_hint="--max-in-flight")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    async def work() -> None:
        async with opened_store(store_url) as store:
            options: dict[str, Any] = {
                "codec": codec,
                "name": name,
                "batch_size": batch_size,
                "max_in_flight": max_in_flight,
                "categories": categories,
                "types": types,
                "lease_ttl": lease_ttl,
            }
            relayer: Relay | RelayFleet
            try:
                if fleet_partitions is None:
                    relayer = Relay(
                        store, publisher, partitions=partitions, partition=part, **options
                    )
                    checkpoint = repr(relayer.name)
                else:
                    relayer = RelayFleet(
                        store,
                        lambda: open_publisher(destination),
                        partitions=fleet_partitions,
                        **options,
                    )
                    base = relayer.relays[0].name.rpartition("#")[0]
                    checkpoint = f"{base!r}#P/{fleet_partitions}, shared"
            except TypeError as exc:
                raise StoreError(str(exc)) from None
            console.print(
                f"[bold]facta relay[/] {redact(store_url)} -> {redact(destination)}"
                f"  (checkpoint {checkpoint})"
            )
            task = asyncio.create_task(relayer.run())
            loop = asyncio.get_running_loop()
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signal.SIGTERM, task.cancel)
            try:
                shown = ""
                while not task.done():
                    await asyncio.wait([task], timeout=1.0)
                    line = _progress(relayer)
                    if not quiet and line != shown:
                        shown = line
                        console.print(line)
                await task
            except asyncio.CancelledError:
                pass
            except (FactaError, ValueError) as exc:
                # What a retry cannot fix: the broker refusing the relay (login, access, a
                # missing virtual host or stream, a message no queue takes), an event the
                # codec cannot upcast, a routing key the broker cannot take. The checkpoint
                # stays before it.
                at = relayer.status.position if isinstance(relayer, Relay) else None
                raise click.ClickException(
                    f"relay stopped{f' at {at}' if at is not None else ''}: {exc}"
                ) from None
            finally:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                await relayer.close()

    run(work)


def _progress(relayer: Any) -> str:
    """The progress line of a relay, or of this process's part of a fleet."""
    statuses = [relayer.status] if hasattr(relayer, "status") else relayer.statuses
    held = [s for s in statuses if s.holding]
    published = sum(s.published for s in statuses)
    reconnects = sum(s.reconnects for s in statuses)
    if len(statuses) == 1:
        s = statuses[0]
        state = "connected" if s.connected else "down" if s.holding else "waiting"
        return f"published {published}  at {s.position}  {state}  reconnects {reconnects}"
    holding = ", ".join(s.name.rpartition("#")[2] for s in held) or "none"
    return f"published {published}  holding {holding}  reconnects {reconnects}"


def _partition(text: str | None) -> tuple[int, int]:
    """``--partition P/N`` as (P, N); (0, 1) without it."""
    if text is None:
        return 0, 1
    part, _, count = text.partition("/")
    if not (part.isdigit() and count.isdigit() and 0 <= int(part) < int(count) <= MAX_PARTITIONS):
        raise click.BadParameter(
            f"{text!r} is not P/N with 0 <= P < N <= {MAX_PARTITIONS}", param_hint="--partition"
        )
    return int(part), int(count)


def _checkpoint_names(name: str) -> list[str]:
    """Where relay NAME's checkpoint may be: a broker URL as given to ``relay run --to``
    names it by its destination, without credentials and publisher options."""
    if "://" not in name:
        return [name]
    from facta.relay import open_publisher

    try:
        destination = open_publisher(name).destination
    except ValueError:
        return [name]
    return list(dict.fromkeys([destination, name]))


@relay.command("status")
@store_option
@click.argument("name")
def relay_status(store_url: str, name: str) -> None:
    """Show relay NAME's checkpoint (NAME: the URL given to ``relay run --to``, its
    destination as ``relay run`` shows it, or the ``--name`` it ran with)."""

    async def work() -> None:
        async with opened_store(store_url) as store:
            row = None
            for candidate in _checkpoint_names(name):
                row = await store.relay_checkpoints.get(candidate)
                if row is not None:
                    break
            if row is None:
                raise click.ClickException(f"no relay named {redact(name)!r} has run on this store")
            head = await store.head()
            when = timestamp(row.updated_at) if row.updated_at else "never"
            console.print(
                f"{row.name}: at {row.position} (head {head}), {row.published} published,"
                f" last checkpoint {when}, held by {row.owner or 'nobody'}",
                markup=False,
            )
            if row.error is not None:
                at = timestamp(row.error_at) if row.error_at else "?"
                console.print(f"last error ({at}): {row.error}", markup=False, soft_wrap=True)

    run(work)


command = relay

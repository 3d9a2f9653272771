"""``facta projections status | run | rebuild NAME | restart NAME | pause NAME | resume NAME
| parked NAME``: the read side's runner.

Which projections and policies exist is application code, named with ``--projection
MODULE:CLASS`` (default: the bank example's). A projection the store says is maintained
inline (by ``facta serve``) is not run here: it joins this process's transaction hook
instead, so that the commands policies execute keep it current too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from facta.application import Application
from facta.cli._common import (
    console,
    errors,
    load_object,
    opened_store,
    redact,
    run,
    store_option,
    timestamp,
)
from facta.cli._projection_status import status_table, trouble_lines
from facta.codec import Codec
from facta.projections import (
    DeadLetter,
    InlineProjections,
    Policy,
    Projection,
    ProjectionNotFound,
    ProjectionRunner,
    ProjectionStatus,
    ReadStore,
    RebuildProgress,
)
from facta.store.engine import Engine

DEFAULT_PROJECTIONS = (
    "facta.examples.bank.read_model:AccountsProjection",
    "facta.examples.bank.read_model:TransfersProjection",
    "facta.examples.bank.transfers:TransferSaga",
)
"""The bank example's read side: the accounts and transfers read models, the transfer saga."""

Handler = Projection[Any] | Policy

projection_option = click.option(
    "--projection",
    "projection_specs",
    multiple=True,
    default=DEFAULT_PROJECTIONS,
    show_default=True,
    envvar="FACTA_PROJECTIONS",
    show_envvar=True,
    metavar="MODULE:CLASS",
    help="A Projection or Policy class to run; repeat it (the env var: space-separated).",
)

batch_option = click.option(
    "--batch-size",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Events read, handled and committed at a time.",
)


def load_handler(spec: str, option: str = "--projection") -> Handler:
    """The Projection or Policy class named ``MODULE:CLASS``, instantiated; a one-line
    error (naming ``option``) if it cannot be."""
    kind = load_object(spec, option)
    if not (isinstance(kind, type) and issubclass(kind, Projection | Policy)):
        raise click.ClickException(f"{option} {spec!r} is not a Projection or Policy class")
    handler: Handler = kind()
    return handler


def load_handlers(specs: Sequence[str], option: str = "--projection") -> list[Handler]:
    handlers: list[Handler] = []
    names: set[str] = set()
    for spec in specs:
        handler = load_handler(spec, option)
        name = type(handler).name
        if name in names:
            raise click.ClickException(f"{option}: two projections are named {name!r}")
        names.add(name)
        handlers.append(handler)
    return handlers


async def inline_names(read_store: ReadStore) -> set[str]:
    return {s.name for s in await read_store.status() if s.active and s.state == "inline"}


# -- status ------------------------------------------------------------------------------


async def _status(url: str) -> list[ProjectionStatus]:
    async with opened_store(url) as store:
        read_store = ReadStore(store)
        try:
            return await read_store.status()
        finally:
            await read_store.close()


# -- run ---------------------------------------------------------------------------------


class _OneLine(logging.Handler):
    """The runner's log as one line per record on stderr (its retries log tracebacks)."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().strip().splitlines()
        errors.print(f"{record.levelname.lower()}: {text[0] if text else ''}", markup=False)


@contextlib.contextmanager
def _one_line_logs() -> Any:
    logger = logging.getLogger("facta.projections")
    handler = _OneLine(logging.INFO)
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


async def _runner_for(
    store: Engine,
    handlers: Sequence[Handler],
    batch_size: int,
    lease_ttl: float,
    read_store: ReadStore,
    declared_inline: Sequence[Projection[Any]] = (),
) -> tuple[ProjectionRunner, list[str]]:
    """The runner of ``handlers`` that are not maintained inline, and the names of those that
    are (wired into the Application's transaction hook): those the store says are, and
    ``declared_inline`` (set up inline here if no service has yet)."""
    codec = Codec()
    declared = {type(p).name for p in declared_inline}
    handlers = [h for h in handlers if type(h).name not in declared]
    held_inline = await inline_names(read_store) | declared
    inline: list[Projection[Any]] = [*declared_inline]
    inline += [h for h in handlers if isinstance(h, Projection) and type(h).name in held_inline]
    _refuse_policies_that_would_skip_inline([*handlers, *declared_inline], held_inline)
    hook = None
    if inline:
        hook = InlineProjections(store, inline, codec=codec)
        await hook.setup()
    app = Application(store, codec=codec, transaction_hook=hook)
    rest = [h for h in handlers if type(h).name not in held_inline or isinstance(h, Policy)]
    runner = ProjectionRunner(
        store, rest, app=app, codec=codec, batch_size=batch_size, lease_ttl=lease_ttl
    )
    return runner, [type(h).name for h in inline]


def _refuse_policies_that_would_skip_inline(
    handlers: Sequence[Handler], held_inline: set[str]
) -> None:
    """A policy's commands are appended by this process: a read model the service keeps
    inline must be in this process's transaction hook too, or its rows silently miss those
    events (and a rebuild is refused for inline read models). Refused, not warned."""
    policies = [type(h).name for h in handlers if isinstance(h, Policy)]
    given = {type(h).name for h in handlers if isinstance(h, Projection)}
    missing = sorted(held_inline - given)
    if policies and missing:
        raise click.ClickException(
            f"{', '.join(policies)} executes commands, but {', '.join(missing)} is maintained"
            " inline by the service and not given here: its rows would miss those commands'"
            " events. Add its class with --projection MODULE:CLASS (or --inline, which also"
            " sets it up inline when this runner starts before the service)"
        )


async def _run(
    url: str,
    specs: tuple[str, ...],
    inline_specs: tuple[str, ...],
    batch_size: int,
    lease_ttl: float,
) -> None:
    handlers = load_handlers(specs)
    declared: list[Projection[Any]] = []
    for handler in load_handlers(inline_specs, "--inline"):
        if not isinstance(handler, Projection):
            raise click.ClickException(f"--inline: {type(handler).name!r} is a policy")
        declared.append(handler)
    async with opened_store(url) as store:
        read_store = ReadStore(store)
        try:
            runner, inline = await _runner_for(
                store, handlers, batch_size, lease_ttl, read_store, declared
            )
        finally:
            await read_store.close()
        # SIGTERM ends the runner like Ctrl-C, so that its leases are released at once and
        # another runner can take over without waiting for them to expire. (Set before the
        # line below says the runner runs: a SIGTERM sent on seeing it must find it set.)
        loop = asyncio.get_running_loop()
        work = asyncio.ensure_future(runner.run())
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, work.cancel)
        names = [type(h).name for h in handlers if type(h).name not in inline]
        kept = f" (kept inline: {', '.join(inline)})" if inline else ""
        console.print(
            f"[bold]facta[/] running {', '.join(names) or 'nothing'}{kept}"
            f" on {redact(url)} as {runner.owner}; Ctrl-C stops"
        )
        try:
            with _one_line_logs():
                await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # Ctrl-C: asyncio.run ends with KeyboardInterrupt, exit 130
            console.print("stopped (SIGTERM)")
        finally:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signal.SIGTERM)
            work.cancel()  # releases the leases
            with contextlib.suppress(BaseException):
                await work
            await runner.close()


# -- rebuild -----------------------------------------------------------------------------


async def _rebuild(
    url: str, name: str, specs: tuple[str, ...], batch_size: int
) -> ProjectionStatus:
    handlers = {type(h).name: h for h in load_handlers(specs)}
    handler = handlers.get(name)
    if handler is None:
        known = ", ".join(sorted(handlers)) or "none"
        raise click.ClickException(
            f"no projection named {name!r} (known: {known}; name others with --projection)"
        )
    if isinstance(handler, Policy):
        raise click.ClickException(f"{name!r} is a policy: policies are not rebuilt")
    async with opened_store(url) as store:
        read_store = ReadStore(store)
        try:
            if name in await inline_names(read_store):
                raise click.ClickException(
                    f"{name!r} is maintained inline by the service: it is rebuilt when the"
                    " service starts with a new version of it"
                )
            runner = ProjectionRunner(store, [handler], batch_size=batch_size)
            try:
                await _rebuild_with_progress(runner, name)
            except ProjectionNotFound as exc:
                raise click.ClickException(str(exc)) from None
            except RuntimeError as exc:  # a handler failed: the old version keeps answering
                raise click.ClickException(str(exc).splitlines()[0]) from None
            finally:
                await runner.close()
            return next(s for s in await read_store.status(name) if s.active)
        finally:
            await read_store.close()


async def _rebuild_with_progress(runner: ProjectionRunner, name: str) -> None:
    with Progress(
        TextColumn(f"rebuilding {name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[events]} events"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("rebuild", total=None, events=0)

        def update(step: RebuildProgress) -> None:
            # Positions count the whole log, so the bar's total is the head's sequence.
            total = max(step.head.sequence, step.position.sequence) or None
            progress.update(task, total=total, completed=step.position.sequence, events=step.events)

        await runner.rebuild(name, progress=update)


# -- commands ----------------------------------------------------------------------------


@click.group()
def projections() -> None:
    """Projections: where each one is, run them, rebuild or restart one."""


@projections.command()
@store_option
def status(store_url: str) -> None:
    """Show each projection's position, lag, state and parked events (from the store's
    catalog), and what needs an operator: failed projections, parked events."""
    statuses = run(_status, store_url)
    if not statuses:
        console.print("no projections in this store yet (start `facta projections run`)")
        return
    console.print(status_table(statuses))
    for line in trouble_lines(statuses):
        console.print(f"[red]![/] {line}", highlight=False)


@projections.command("run")
@store_option
@projection_option
@batch_option
@click.option(
    "--lease-ttl",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    metavar="SECONDS",
    help="Seconds after this runner goes silent (dies, hangs, loses the database) before"
    " another runner takes its projections and partitions over; it renews its leases every"
    " third of that.",
)
@click.option(
    "--inline",
    "inline_specs",
    multiple=True,
    envvar="FACTA_INLINE",
    show_envvar=True,
    metavar="MODULE:CLASS",
    help="A projection the service keeps inline: kept inline here too (set up inline if no"
    " service has yet), so that the commands this runner's policies execute update it;"
    " repeat it.",
)
def run_projections(
    store_url: str,
    projection_specs: tuple[str, ...],
    inline_specs: tuple[str, ...],
    batch_size: int,
    lease_ttl: float,
) -> None:
    """Run the async projections and policies until interrupted (Ctrl-C)."""
    run(_run, store_url, projection_specs, inline_specs, batch_size, lease_ttl)


@projections.command()
@store_option
@projection_option
@batch_option
@click.argument("name")
def rebuild(store_url: str, projection_specs: tuple[str, ...], batch_size: int, name: str) -> None:
    """Rebuild projection NAME from the start of the log beside the current version, then
    switch to it (queries keep answering from the old one meanwhile)."""
    done = run(_rebuild, store_url, name, projection_specs, batch_size)
    console.print(
        f"rebuilt [bold]{done.name}[/]: version {done.version}, slot {done.slot},"
        f" position {done.position} of {done.head}, {done.handled} events handled"
    )


async def _restart(url: str, name: str) -> int:
    async with opened_store(url) as store:
        read_store = ReadStore(store)
        try:
            if not await read_store.status(name):
                raise click.ClickException(f"no projection named {name!r} in this store")
            return await read_store.restart(name)
        finally:
            await read_store.close()


@projections.command()
@store_option
@click.argument("name")
def restart(store_url: str, name: str) -> None:
    """Clear failed projection NAME's error: a runner resumes it from its checkpoint."""
    cleared = run(_restart, store_url, name)
    if cleared:
        console.print(f"restarted {name}: a runner resumes it at the event that failed")
    else:
        console.print(f"{name} has not failed: nothing to restart")


async def _pause(url: str, name: str, resume: bool) -> int:
    import getpass

    from facta.console.audit import Action, record

    async with opened_store(url) as store:
        read_store = ReadStore(store)
        if not await read_store.status(name):
            raise click.ClickException(f"no projection named {name!r} in this store")
        count = await (read_store.resume(name) if resume else read_store.pause(name))
        if count:  # recorded as the console records its actions: who, what, when
            action = "resume" if resume else "pause"
            done = f"{action}d {count} partition(s)"
            await record(store, Action(action, name, f"{getpass.getuser()} (cli)", result=done))
        return count


@projections.command()
@store_option
@click.argument("name")
def pause(store_url: str, name: str) -> None:
    """Pause projection NAME: the runner that holds it lets go (within a third of its lease)
    and none takes it up until `facta projections resume NAME`. Recorded in the stream
    console-audit, as the console's actions are."""
    if run(_pause, store_url, name, False):
        console.print(f"paused {name}: `facta projections resume {name}` lets runners take it up")
    else:
        console.print(f"{name} is paused already, failed or inline: nothing to pause")


@projections.command()
@store_option
@click.argument("name")
def resume(store_url: str, name: str) -> None:
    """Resume paused projection NAME: runners take it up again from its checkpoint."""
    if run(_pause, store_url, name, True):
        console.print(f"resumed {name}")
    else:
        console.print(f"{name} is not paused: nothing to resume")


async def _parked(url: str, name: str, limit: int, clear: bool) -> tuple[list[DeadLetter], int]:
    async with opened_store(url) as store:
        read_store = ReadStore(store)
        try:
            if not await read_store.status(name):
                raise click.ClickException(f"no projection named {name!r} in this store")
            letters = await read_store.dead_letters(name, limit)
            cleared = 0
            if clear and letters:  # exactly those shown: one parked meanwhile stays
                cleared = await read_store.clear_dead_letters(name, [d.event_id for d in letters])
            return letters, cleared
        finally:
            await read_store.close()


@projections.command()
@store_option
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--clear", is_flag=True, help="Forget the events shown, once dealt with.")
@click.argument("name")
def parked(store_url: str, limit: int, clear: bool, name: str) -> None:
    """List the events projection or policy NAME parked in the dead-letter table (oldest
    first), and with --clear forget them: they are not handled again."""
    letters, cleared = run(_parked, store_url, name, limit, clear)
    if not letters:
        console.print(f"{name} has no parked events")
        return
    title = f"{len(letters)} parked event{'' if len(letters) == 1 else 's'} of {name}"
    table = Table(title=title, title_justify="left")
    for column in ("position", "stream", "type", "event id", "parked at", "error"):
        table.add_column(column)
    for d in letters:
        table.add_row(d.position, d.stream_id, d.type, d.event_id, timestamp(d.parked_at), d.error)
    console.print(table)
    if clear:
        console.print(f"cleared {cleared} parked event(s) of {name}")


command = projections

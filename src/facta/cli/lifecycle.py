"""``facta streams delete|truncate|retention|scavenge`` and ``facta archive run|status``:
a log's data lifecycle from the command line (see :mod:`facta.lifecycle`).

The stream commands join the ``streams`` group (whose own listing stays ``facta streams``);
``archive`` is a group of its own. The archive's directory is given with ``--archive DIR``
(or as ``archive=DIR`` in the store's URL, as a service reading it through is given it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from facta.cli._common import console, load_object, opened_store, progress_bar, run, store_option
from facta.cli.console import aggregate_option
from facta.errors import InvalidStreamId, StreamNotFound
from facta.store.engine import CapabilityMissing, Engine

T = TypeVar("T")

REFUSALS = (CapabilityMissing, InvalidStreamId, StreamNotFound, ValueError)
"""What a lifecycle command says in one line: a missing capability, a bad, unknown or
deleted stream (StreamGone is a StreamNotFound), a version or rule out of range."""


async def _refusing(url: str, work: Callable[[Engine], Awaitable[T]]) -> T:
    """``work`` on the store at ``url``, with what it refuses said in one line."""
    async with opened_store(url) as store:
        try:
            return await work(store)
        except REFUSALS as exc:
            raise click.ClickException(str(exc)) from None


def _aggregates(specs: tuple[str, ...]) -> list[Any]:
    found = []
    for spec in specs:
        loaded: Any = load_object(spec, "--aggregate")
        found.append(loaded() if isinstance(loaded, type) else loaded)
    return found


def _with_archive(url: str, archive: str | None) -> str:
    if archive is None:
        return url
    return f"{url}{'&' if '?' in url else '?'}archive={archive}"


async def _delete(url: str, stream_id: str, hard: bool, reason: str) -> Any:
    from facta.lifecycle import delete_stream

    return await _refusing(
        url, lambda store: delete_stream(store, stream_id, hard=hard, reason=reason)
    )


@click.command("delete")
@store_option
@click.argument("stream_id")
@click.option("--hard", is_flag=True, help="Erase its events for good (legal erasure).")
@click.option("--reason", default="", help="Why, recorded in the tombstone.")
@click.option("--archive", metavar="DIR", help="The archive, to erase its copy too (--hard).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(
    store_url: str, stream_id: str, hard: bool, reason: str, archive: str | None, yes: bool
) -> None:
    """Delete STREAM_ID: a tombstone ends it (no command runs on it again); with --hard its
    events are erased, and the tombstone records that they existed."""
    if not yes:
        what = "erase its events for good" if hard else "end it with a tombstone"
        click.confirm(f"Delete {stream_id!r} ({what})?", abort=True)
    done = run(_delete, _with_archive(store_url, archive), stream_id, hard, reason)
    kind = "hard" if done.hard else "soft"
    console.print(
        f"deleted {done.stream_id} ({kind}): tombstone at version {done.version},"
        f" position {done.position}; {done.erased} event(s) erased"
    )


async def _truncate(url: str, stream_id: str, before: int, aggregates: list[Any]) -> Any:
    from facta.lifecycle import truncate_stream
    from facta.store.base import category_of

    mine = [a for a in aggregates if a.name == category_of(stream_id)]
    aggregate = mine[0] if mine else None
    return await _refusing(
        url, lambda store: truncate_stream(store, stream_id, before, aggregate=aggregate)
    )


@click.command("truncate")
@store_option
@aggregate_option
@click.argument("stream_id")
@click.option("--before", type=click.IntRange(2), required=True, help="The first version kept.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def truncate(
    store_url: str, aggregate_specs: tuple[str, ...], stream_id: str, before: int, yes: bool
) -> None:
    """Erase the events of STREAM_ID before version --before. A stream of one of the
    aggregates keeps a snapshot there, so it still loads."""
    if not yes:
        click.confirm(f"Erase the events of {stream_id!r} before version {before}?", abort=True)
    done = run(_truncate, store_url, stream_id, before, _aggregates(aggregate_specs))
    kept = "no snapshot" if done.snapshot is None else f"a snapshot at version {done.snapshot}"
    console.print(f"truncated {done.stream_id}: {done.erased} event(s) erased, {kept}")


async def _retention(
    url: str, target: str, category: bool, max_age: float | None, max_count: int | None
) -> Any:
    from facta.lifecycle import set_retention

    return await _refusing(
        url,
        lambda store: set_retention(
            store, target, category=category, max_age=max_age, max_count=max_count
        ),
    )


@click.command("retention")
@store_option
@click.argument("target")
@click.option("--category", is_flag=True, help="TARGET is a category: every stream of it.")
@click.option("--max-age", type=click.FloatRange(min=0, min_open=True), help="Seconds.")
@click.option("--max-count", type=click.IntRange(1), help="Events kept at most.")
def retention(
    store_url: str, target: str, category: bool, max_age: float | None, max_count: int | None
) -> None:
    """Set the retention rule of a stream (or --category); neither bound clears it. The
    scavenger (facta streams scavenge) applies the rules."""
    rule = run(_retention, store_url, target, category, max_age, max_count)
    kind = "category" if rule.category else "stream"
    console.print(
        f"retention of {kind} {rule.target}: max age {rule.max_age or '-'} s,"
        f" max count {rule.max_count or '-'}"
    )


async def _scavenge(url: str, aggregates: list[Any]) -> Any:
    from facta.lifecycle import scavenge

    return await _refusing(url, lambda store: scavenge(store, aggregates=aggregates))


@click.command("scavenge")
@store_option
@aggregate_option
def scavenge_command(store_url: str, aggregate_specs: tuple[str, ...]) -> None:
    """Truncate every stream with a retention rule to what its rule keeps."""
    done = run(_scavenge, store_url, _aggregates(aggregate_specs))
    console.print(
        f"scavenged: {done.visited} stream(s) with a rule, {done.truncated} truncated,"
        f" {done.erased} event(s) erased"
    )


STREAM_COMMANDS = (delete, truncate, retention, scavenge_command)
"""What joins the ``facta streams`` group."""


async def _archive_run(
    url: str, older_than: float | None, deleted: bool, categories: tuple[str, ...], compact: bool
) -> Any:
    from facta.lifecycle import archive_streams

    with progress_bar() as progress:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total or None)
            progress.update(tasks[stage], completed=done, total=total or None)

        return await _refusing(
            url,
            lambda store: archive_streams(
                store,
                older_than=older_than,
                deleted=deleted,
                categories=list(categories) or None,
                compact=compact,
                progress=report,
            ),
        )


archive_option = click.option(
    "--archive", metavar="DIR", help="The archive's directory (or archive=DIR in the URL)."
)


@click.group("archive")
def archive() -> None:
    """Move the history of closed or old streams to cold storage, read through as before."""


@archive.command("run")
@store_option
@archive_option
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    metavar="DAYS",
    help="Streams whose last event is older than this many days.",
)
@click.option("--no-deleted", is_flag=True, help="Leave deleted streams in the database.")
@click.option("--category", "categories", multiple=True, help="Only streams of this category.")
@click.option("--compact", is_flag=True, help="Give the freed space back to the file system.")
def archive_run(
    store_url: str,
    archive: str | None,
    older_than: float | None,
    no_deleted: bool,
    categories: tuple[str, ...],
    compact: bool,
) -> None:
    """Archive every chosen stream's events but its last (deleted streams, and with
    --older-than idle ones), up to what every projection and relay has read."""
    seconds = None if older_than is None else older_than * 86_400
    url = _with_archive(store_url, archive)
    done = run(_archive_run, url, seconds, not no_deleted, categories, compact)
    console.print(
        f"archived {done.events} event(s) of {done.streams} stream(s) in {done.chunks}"
        f" chunk(s), up to position {done.horizon}; the database held {done.before.events}"
        f" events in {done.before.total_bytes:,} bytes, now {done.after.events} in"
        f" {done.after.total_bytes:,}"
    )


async def _archive_status(url: str) -> dict[str, int]:
    from facta.lifecycle import archive_status

    return await _refusing(url, archive_status)


@archive.command("status")
@store_option
@archive_option
def archive_status_command(store_url: str, archive: str | None) -> None:
    """What the archive holds, and what the database still holds."""
    status = run(_archive_status, _with_archive(store_url, archive))
    for name, value in status.items():
        console.print(f"{name.replace('_', ' ')}: {value:,}")


command = archive

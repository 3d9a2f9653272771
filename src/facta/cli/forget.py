"""``facta forget SUBJECT``: forget a data subject for good (crypto-shredding).

Deletes the subject's keys (its personal fields then read as redacted everywhere), purges
the snapshots of its streams, records ``SubjectForgotten`` in ``forgotten-SUBJECT``, and
rebuilds the projections named with ``--projection`` (default: the bank example's), so that
their read models hold no personal data of it. A projection the store says is maintained
inline by a service is not rebuilt here (the service owns it): the command says so.
"""

from __future__ import annotations

import click

from facta.cli._common import console, errors, opened_store, run, store_option
from facta.cli.projections import inline_names, load_handlers, projection_option
from facta.errors import InvalidStreamId
from facta.forgetting import Forgetting, forget
from facta.projections import Projection, ReadStore
from facta.store.engine import CapabilityMissing


async def _forget(url: str, subject: str, specs: tuple[str, ...]) -> tuple[Forgetting, list[str]]:
    handlers = [h for h in load_handlers(specs) if isinstance(h, Projection)]
    async with opened_store(url) as store:
        read_store = ReadStore(store)
        try:
            inline = await inline_names(read_store)
        finally:
            await read_store.close()
        rebuilt = [h for h in handlers if type(h).name not in inline]
        skipped = [type(h).name for h in handlers if type(h).name in inline]
        try:
            done = await forget(store, subject, projections=rebuilt)
        except (CapabilityMissing, InvalidStreamId) as exc:
            raise click.ClickException(str(exc)) from None
        return done, skipped


@click.command()
@store_option
@projection_option
@click.argument("subject")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def forget_command(
    store_url: str, projection_specs: tuple[str, ...], subject: str, yes: bool
) -> None:
    """Forget the data subject SUBJECT: its personal data can never be read again."""
    if not yes:
        click.confirm(
            f"Forget {subject!r} for good? Its personal data cannot be recovered", abort=True
        )
    done, skipped = run(_forget, store_url, subject, projection_specs)
    console.print(
        f"forgot {subject}: {len(done.key_ids)} key(s) deleted, {len(done.streams)} stream(s)"
        f" hold its fields (now redacted), {done.snapshots_purged} snapshot(s) purged,"
        f" recorded at {done.position}"
    )
    for name in done.rebuilt:
        console.print(f"rebuilt projection {name}")
    for name in skipped:
        errors.print(
            f"projection {name} is maintained inline by a service: not rebuilt here (raise its"
            " version, or restart the service after `facta projections rebuild` there)"
        )


command = forget_command

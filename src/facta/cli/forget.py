"""``facta forget SUBJECT``: forget a data subject for good (crypto-shredding).

Deletes the subject's keys (its personal fields then read as redacted everywhere), purges
the snapshots of its streams, records ``SubjectForgotten`` in ``forgotten-SUBJECT``, and
rebuilds the projections named with ``--projection`` (default: the bank example's), so that
their read models hold no personal data of it. A projection the store says is maintained
inline by a service is not rebuilt: it handles the forgetting in its transaction instead.
"""

from __future__ import annotations

import click

from facta.cli._common import console, opened_store, run, store_option
from facta.cli.projections import inline_names, load_handlers, projection_option
from facta.errors import InvalidStreamId
from facta.forgetting import Forgetting, forget
from facta.projections import InlineProjections, Projection, ReadStore
from facta.store.engine import CapabilityMissing


async def _forget(url: str, subject: str, specs: tuple[str, ...]) -> Forgetting:
    handlers = [h for h in load_handlers(specs) if isinstance(h, Projection)]
    async with opened_store(url) as store:
        read_store = ReadStore(store)
        try:
            held_inline = await inline_names(read_store)
        finally:
            await read_store.close()
        # As `facta projections run` does: a projection a service keeps inline joins this
        # append's transaction (and redacts there, if it handles SubjectForgotten); the
        # others are rebuilt from the log.
        inline = [h for h in handlers if type(h).name in held_inline]
        hook = None
        if inline:
            hook = InlineProjections(store, inline)
            await hook.setup()
        try:
            rebuilt = [h for h in handlers if type(h).name not in held_inline]
            return await forget(store, subject, projections=rebuilt, hook=hook)
        except (CapabilityMissing, InvalidStreamId) as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            if hook is not None:
                await hook.close()


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
    done = run(_forget, store_url, subject, projection_specs)
    console.print(
        f"forgot {subject}: {len(done.key_ids)} key(s) deleted, {len(done.streams)} stream(s)"
        f" hold its fields (now redacted), {done.snapshots_purged} snapshot(s) purged,"
        f" recorded at {done.position}"
    )
    for name in done.rebuilt:
        console.print(f"rebuilt projection {name}")


command = forget_command

"""Commands whose work lands with other parts of facta: they say so and exit with 1."""

from __future__ import annotations

import click


def not_yet(what: str) -> None:
    """Stop with a one-line error: ``what`` is not part of this build yet."""
    raise click.ClickException(f"{what} is not available in this build of facta yet")

"""The ``facta`` command (the package's console script is :func:`main`).

The commands live in ``facta.cli._app`` and need facta's ``cli`` extra (click and rich):
this module imports neither, so that a ``facta`` installed without the extra says which one
to install instead of failing with an import error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

NEEDS = ("click", "rich")
"""What the command needs beyond facta's own dependencies: its ``cli`` extra."""


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``facta`` command line (``argv`` defaults to ``sys.argv[1:]``). Without the
    ``cli`` extra, or a command without the extra it needs (``http`` to serve, ``postgres``
    for a PostgreSQL store, ``brokers`` for the relay): one line on stderr saying which
    extra to install, and exit code 1."""
    try:
        from facta.cli._app import cli
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in NEEDS:
            raise
        sys.stderr.write(
            f"facta: the facta command needs facta's cli extra ({exc.name} is not installed):"
            " pip install 'facta[cli]'\n"
        )
        raise SystemExit(1) from None
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="facta")
    except ModuleNotFoundError as exc:  # a command that needs another extra of facta
        from facta.cli._common import missing_extra

        error = missing_extra(exc)
        if error is None:
            raise
        error.show()
        raise SystemExit(error.exit_code) from None


def __getattr__(name: str) -> Any:
    # ``facta.cli.cli``, the click group, for tests that invoke it in process.
    if name == "cli":
        from facta.cli._app import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["main"]

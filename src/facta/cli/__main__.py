"""``python -m facta.cli``: the same as the ``facta`` command."""

from facta.cli import main

main()

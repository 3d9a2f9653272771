"""``python -m facta.examples.bank [--store URL] [--host H] [--port P]``: serve the bank API
(what ``facta serve`` does)."""

from __future__ import annotations

import sys

from facta.cli import main

if __name__ == "__main__":
    main(["serve", *sys.argv[1:]])

"""MkDocs hook: put the current benchmark table (benchmarks/RESULTS.md) where a page says
``<!-- benchmark-results -->``.

RESULTS.md is written by ``make bench`` and links a chart kept out of git, so the table is
included (headings demoted under the page's own) and image lines become a note; without the
file the page says how to make it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MARKER = "<!-- benchmark-results -->"
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace the marker with the results, if the page has one."""
    if MARKER not in markdown:
        return markdown
    if not RESULTS.exists():
        table = (
            '!!! note "No results yet"\n'
            "    `benchmarks/RESULTS.md` has not been produced on this checkout: run"
            " `make bench`, then build the docs again.\n"
        )
    else:
        lines = []
        for line in RESULTS.read_text().splitlines():
            if re.match(r"\s*!\[", line):
                lines.append("*(The chart is in `benchmarks/results/` after `make bench`.)*")
                continue
            if line.startswith("#"):
                line = "##" + line  # under the page's own headings
            # Links relative to benchmarks/ lead nowhere on the site: keep their text.
            line = re.sub(r"\[([^\]]*)\]\((?!https?://)[^)]*\)", r"\1", line)
            lines.append(line)
        table = "\n".join(lines)
    return markdown.replace(MARKER, table)

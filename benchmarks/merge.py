"""Fold the rows of a later run into the kept results (for rows re-measured after a fix).

    python benchmarks/merge.py NEWER_RAW.json

Rows of the newer run replace the kept rows of the same (workload, backend, library); the
table and chart are rendered again from the merged runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.run import publish  # noqa: E402


def main() -> None:
    kept = json.loads((HERE / "results.json").read_text())
    newer = json.loads(Path(sys.argv[1]).read_text())
    replaced = {(r["workload"], r["backend"], r["library"]) for r in newer["rows"]}
    rows = [r for r in kept["rows"] if (r["workload"], r["backend"], r["library"]) not in replaced]
    kept["rows"] = rows + newer["rows"]
    kept["meta"]["merged"] = newer["meta"]["date"]
    (HERE / "results.json").write_text(json.dumps(kept, indent=1))
    print(publish(kept, HERE))


if __name__ == "__main__":
    main()

"""The "Write an engine" page, followed as a third party would: its files written as shown,
its test command run, the shipped conformance suite passing on the page's engine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "engine.md"
_FILE = re.compile(r'^```python title="([^"]+)"\n(.*?)^```\s*$', re.S | re.M)
_COMMAND = re.compile(r"^```sh\n(python -m pytest [^\n]*)\n```", re.M)


def test_the_pages_engine_passes_the_conformance_suite(tmp_path: Path) -> None:
    text = PAGE.read_text()
    files = dict(_FILE.findall(text))
    assert set(files) == {"mydb.py", "test_mydb.py"}
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    [command] = _COMMAND.findall(text)
    argv = command.split()
    assert argv[:3] == ["python", "-m", "pytest"]
    result = subprocess.run(
        [sys.executable, *argv[1:], "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed is not None, result.stdout[-500:]
    assert int(passed.group(1)) >= 50, result.stdout[-500:]
    assert " failed" not in result.stdout

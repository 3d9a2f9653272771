"""Schemathesis, in its own process, generates requests from our OpenAPI document and checks
the answers: never a server error, and every answer as documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.http.conftest import Server

# Not negative_data_rejection: a repeated query parameter's single value ("false") cannot be
# told from a mistyped one, so that check reports requests that are valid.
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)


def schemathesis() -> list[str]:
    script = Path(sys.executable).parent / "schemathesis"
    if script.exists():
        return [str(script)]
    found = shutil.which("schemathesis")
    assert found, "schemathesis is not installed (pip install -e '.[dev]')"
    return [found]


def test_schemathesis_finds_no_server_errors(server: Server, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            *schemathesis(),
            "run",
            f"{server.url}/docs/openapi.json",
            "--checks",
            CHECKS,
            # The live feed never ends: a generated request to it would only time out.
            "--exclude-operation-id",
            "follow_events",
            "--max-examples",
            "15",
            "--request-timeout",
            "10",
            # One worker: hypothesis' lambda-source cache is not thread-safe (a runtime error).
            "--workers",
            "1",
            "--seed",
            "20261122",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    (tmp_path / "schemathesis.out").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "Traceback" not in server.output()

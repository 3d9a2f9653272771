"""Schemathesis, in its own process, generates requests from our OpenAPI document against a
real ``facta serve`` and checks the answers, in every phase (examples, coverage, fuzzing,
and stateful sequences): never a server error, every answer as documented, and no request
the document describes refused as malformed (the document says what the service enforces).
Settings, and why each allowance is there: ``schemathesis.toml`` beside this file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.http import custom_apps
from tests.http.conftest import Server

HERE = Path(__file__).parent

# Not negative_data_rejection: a repeated query parameter's single value ("false") cannot be
# told from a mistyped one, so that check reports requests that are valid.
CHECKS = ",".join(
    [
        "not_a_server_error",
        "positive_data_acceptance",
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


def test_schemathesis_finds_no_server_errors_and_no_rejected_valid_data(
    server: Server, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.http.schemathesis_hooks",
        "PYTHONPATH": custom_apps.ROOT,
    }
    run = subprocess.run(
        [
            *schemathesis(),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"{server.url}/docs/openapi.json",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--checks",
            CHECKS,
            # The live feed never ends: a generated request to it would only time out.
            "--exclude-operation-id",
            "follow_events",
            "--max-examples",
            "20",
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
        timeout=240,
        cwd=tmp_path,
        env=env,
    )
    (tmp_path / "schemathesis.out").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in run.stdout, run.stdout[-3000:]
    assert "Traceback" not in server.output()

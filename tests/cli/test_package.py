"""The package as a user installs it: the built wheel, in a fresh virtualenv, with and
without the extras. `pip install facta` gives the library and a `facta` command that says
which extra it needs rather than failing on an import; the wheel installs `facta` alone."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 300


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built as `pip wheel` builds it."""
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=PIP_TIMEOUT,
    )  # fmt: skip
    if built.returncode != 0:
        service_missing(f"pip could not build the wheel (its build backend?): {built.stderr}")
    [path] = out.glob("facta-*.whl")
    return path


def fresh_venv(folder: Path, *requirements: str) -> Path:
    """A new virtualenv in ``folder`` with ``requirements`` installed; its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    bin_folder = folder / "bin"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(bin_folder / "python"), "install",
         "--disable-pip-version-check", "-q", *requirements],
        capture_output=True, text=True, timeout=PIP_TIMEOUT,
    )  # fmt: skip
    if installed.returncode != 0:
        service_missing(f"pip could not install {requirements} (PyPI?): {installed.stderr}")
    return bin_folder


def run(bin_folder: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_folder / args[0]), *args[1:]],
        cwd=cwd,
        env={"PATH": f"{bin_folder}:/usr/bin:/bin", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_wheel_holds_the_facta_package_alone(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {name for name in top if not name.endswith(".dist-info")} == {"facta"}
    # The examples ship inside facta's namespace, never as packages `bank` or `users`.
    assert "facta/examples/bank/service.py" in names
    assert "facta/examples/users/__init__.py" in names
    assert not any(name.startswith(("bank/", "users/")) for name in names)
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    )
    assert b"facta = facta.cli:main" in entry_points


@pytest.fixture(scope="module")
def bare(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install facta`: no extras."""
    return fresh_venv(tmp_path_factory.mktemp("bare"), str(wheel))


def test_without_extras_the_library_works_and_the_command_names_its_extra(
    bare: Path, tmp_path: Path
) -> None:
    for args in [("facta", "--help"), ("facta", "migrate"), ("python", "-m", "facta.cli")]:
        assert_one_line(
            run(bare, *args, cwd=tmp_path),
            "the facta command needs facta's cli extra (click is not installed):"
            " pip install 'facta[cli]'",
        )
    assert not (tmp_path / "facta.db").exists()
    library = (
        "import asyncio\n"
        "from facta import open_store\n"
        "async def main():\n"
        "    store = await open_store('sqlite:///lib.db')\n"
        "    print(await store.head())\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    used = run(bare, "python", "-c", library, cwd=tmp_path)
    assert (used.returncode, used.stdout.strip()) == (0, "0"), used.stderr
    top_level = run(bare, "python", "-c", "import bank", cwd=tmp_path)
    assert "No module named 'bank'" in top_level.stderr


@pytest.fixture(scope="module")
def with_cli(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install 'facta[cli]'`: the command, without the HTTP, PostgreSQL or broker extras."""
    return fresh_venv(tmp_path_factory.mktemp("cli"), f"facta[cli] @ {wheel.as_uri()}")


def test_with_the_cli_extra_commands_work_or_name_the_extra_they_need(
    with_cli: Path, tmp_path: Path
) -> None:
    migrated = run(with_cli, "facta", "migrate", cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    for args, out in [
        (("streams",), "no streams"),
        (("events", "verify"), "every event decodes"),
        (("projections", "status"), "no projections in this store yet"),
    ]:
        result = run(with_cli, "facta", *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert out in result.stdout
    for args, extra, module in [
        (("serve",), "http", "litestar"),
        (
            ("streams", "--store", "postgresql://postgres@127.0.0.1:5432/test"),
            "postgres",
            "asyncpg",
        ),
        (("relay", "run", "--to", "nats://127.0.0.1:4222"), "brokers", "nats"),
        (("relay", "run", "--to", "amqp://guest:guest@127.0.0.1:5672/"), "brokers", "aio_pika"),
    ]:
        assert_one_line(
            run(with_cli, "facta", *args, cwd=tmp_path),
            f"this needs facta's {extra} extra ({module} is not installed):"
            f" pip install 'facta[{extra}]'",
        )

"""The package as a user installs it: the wheel and sdist `make dist` builds, the wheel in a
fresh virtualenv, with and without the extras. `pip install facta` gives the library and a
`facta` command that says which extra it needs rather than failing on an import; the wheel
installs `facta` alone; with `[cli,http]` the README's example runs and `facta serve` answers;
with `[fastapi]` alone (no Litestar) the FastAPI bank answers under uvicorn."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import service_missing
from tests.http.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 300


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and sdist of this checkout, built as `make dist` builds them."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=PIP_TIMEOUT,
    )  # fmt: skip
    if built.returncode != 0:
        service_missing(f"could not build the dist (hatchling from PyPI?): {built.stderr}")
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    [path] = dist.glob("facta-*.whl")
    return path


def test_the_sdist_holds_the_sources_the_docs_and_the_tests(dist: Path) -> None:
    [sdist] = dist.glob("facta-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for name in (
        "pyproject.toml",
        "README.md",
        "CHANGELOG.md",
        "src/facta/__init__.py",
        "src/facta/fastapi/router.py",
        "docs/how-to/fastapi.md",
        "tests/conftest.py",
    ):
        assert name in names, name  # fmt: skip
    assert not any(name.startswith((".venv/", ".hypothesis/", "dist/")) for name in names)


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


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return next(block for block in blocks if "class Wallet" in block)


@pytest.fixture(scope="module")
def with_http(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install 'dist/facta-....whl[cli,http]'`, as the README says."""
    return fresh_venv(tmp_path_factory.mktemp("http"), f"{wheel}[cli,http]")


@contextlib.contextmanager
def serving(bin_folder: Path, cwd: Path, *command: str) -> Iterator[str]:
    """The URL of a server that ``command`` (with ``{port}``) starts from ``bin_folder``, once
    it answers ``/health``; the process is stopped on leaving."""
    port = free_port()
    log = cwd / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(bin_folder / command[0]), *(arg.format(port=port) for arg in command[1:])],
            cwd=cwd, env={"PATH": f"{bin_folder}:/usr/bin:/bin"},
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_with_http_the_readme_example_runs(with_http: Path, tmp_path: Path) -> None:
    done = run(with_http, "python", "-c", readme_example(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "2.50"]


def open_an_account(url: str) -> None:
    body = {"type": "OpenAccount", "owner": "Wheel", "initial_balance": 5}
    opened = httpx.post(f"{url}/accounts/w-1", json=body, timeout=10)
    assert (opened.status_code, opened.json()["balance"]) == (200, 5.0), opened.text
    assert httpx.get(f"{url}/accounts/w-1", timeout=10).headers["etag"] == '"1"'


def test_with_http_facta_serve_answers(with_http: Path, tmp_path: Path) -> None:
    with serving(with_http, tmp_path, "facta", "serve", "--port", "{port}") as url:
        open_an_account(url)
    assert (tmp_path / "facta.db").exists()


@pytest.fixture(scope="module")
def with_fastapi(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install 'facta[fastapi]'`: FastAPI and uvicorn, no Litestar."""
    return fresh_venv(tmp_path_factory.mktemp("fastapi"), f"{wheel}[fastapi]")


def test_with_fastapi_alone_the_fastapi_bank_answers(with_fastapi: Path, tmp_path: Path) -> None:
    app = "facta.examples.bank.fastapi_app:create_app"
    with serving(with_fastapi, tmp_path, "uvicorn", "--factory", app, "--port", "{port}") as url:
        open_an_account(url)
    litestar = run(with_fastapi, "python", "-c", "import litestar", cwd=tmp_path)
    assert "No module named 'litestar'" in litestar.stderr

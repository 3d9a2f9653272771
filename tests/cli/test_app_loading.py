"""`MODULE:NAME` options name the user's own code, found from the working directory as
uvicorn and Flask find it: the tutorial's `facta serve --app tutorial:create_service`, run
from the tutorial's folder, and the same for `--projection` and `--aggregate`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli import facta
from tests.http.conftest import start_server

README = Path(__file__).resolve().parents[2] / "README.md"

SERVICE = """
import msgspec
from facta import Application, open_store
from facta.http import AggregateResource, Runtime, create_app
from wallet import Balance, Deposit, Wallet


class WalletView(msgspec.Struct):
    id: str
    total: float
    version: int


def wallet_view(wallet_id: str, version: int, state: Balance) -> WalletView:
    return WalletView(wallet_id, float(state.total), version)


wallets = AggregateResource(
    Wallet(), "/wallets", wallet_view, WalletView, creation_commands=(Deposit,)
)


def create_service(store_url=None, *, projections=True):
    async def open_application() -> Application:
        return Application(await open_store(store_url))

    return create_app(Runtime(open_application), [wallets], title="wallets")
"""

PROJECTION = """

from facta.projections import Projection, Session


class WalletTotal(msgspec.Struct, frozen=True):
    total: Decimal


class WalletTotals(Projection[WalletTotal]):
    name = "wallet_totals"
    version = 1
    event_types = (MoneyDeposited,)
    document = WalletTotal

    async def handle(self, envelope, session: Session[WalletTotal]) -> None:
        key = envelope.recorded.stream_id
        current = await session.get(key)
        before = current.total if current else Decimal(0)
        session.put(key, WalletTotal(before + envelope.event.amount))
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A user's folder: the README's wallet domain as ``wallet.py`` (with a projection), a
    service module beside it as the tutorial writes one, and a store the README example
    filled."""
    example = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(block for block in example if "class Wallet" in block)
    domain = example.split("async def main")[0]
    (tmp_path / "wallet.py").write_text(domain + PROJECTION)
    (tmp_path / "tutorial.py").write_text(SERVICE)
    ran = subprocess.run(
        [sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    return tmp_path


def test_serve_loads_the_app_from_the_working_directory(folder: Path) -> None:
    server = start_server(
        f"sqlite:///{folder / 'wallets.db'}", folder, "--app", "tutorial:create_service"
    )
    try:
        with server.client() as client:
            deposited = client.post("/wallets/w-2", json={"type": "Deposit", "amount": 3})
            assert deposited.status_code == 200, deposited.text
            assert deposited.json() == {"id": "w-2", "total": 3.0, "version": 1}
            assert client.get("/wallets/w-1").json()["total"] == 2.5
    finally:
        server.stop()


def test_aggregates_and_projections_load_from_the_working_directory(folder: Path) -> None:
    store = f"sqlite:///{folder / 'wallets.db'}"
    verified = facta(
        "events", "verify", "--aggregate", "wallet:Wallet", "--store", store, cwd=folder
    )
    assert verified.returncode == 0, verified.stderr
    assert "every event decodes" in verified.stdout
    rebuilt = facta(
        "projections", "rebuild", "wallet_totals", "--projection", "wallet:WalletTotals",
        "--store", store, cwd=folder,
    )  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt wallet_totals: version 1, slot 1, position 1 of 1, 1 events handled" in (
        rebuilt.stdout.replace("\x1b[1m", "").replace("\x1b[0m", "")
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("serve", "--app", "nowhere:create"), "--app: cannot load 'nowhere:create': No module"),
        (("serve", "--app", "tutorial"), "--app: cannot load 'tutorial': it is not MODULE:NAME"),
        (("serve", "--app", "tutorial:nothing"), "module 'tutorial' has no 'nothing'"),
        (("serve", "--app", "tutorial:wallets"), "'tutorial:wallets': it is not callable"),
        (("events", "verify", "--aggregate", "wallet:Nope"), "--aggregate: cannot load"),
        (("projections", "run", "--projection", "nowhere:P"), "--projection: cannot load"),
        (("projections", "run", "--inline", "nowhere:P"), "--inline: cannot load"),
    ],
)
def test_names_that_load_nothing_are_one_line_usage_errors(
    folder: Path, args: tuple[str, ...], message: str
) -> None:
    result = facta(*args, "--store", f"sqlite:///{folder / 'wallets.db'}", cwd=folder)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    if "No module" in message:
        assert f"(looked in {folder} and the installed packages)" in result.stderr

"""Read models queried on a standby, with read-your-writes (issue 23).

`facta serve` appends to the primary and queries its read-model lists on a streaming standby
(``--read-store``). A list given a command's position answers once the standby has replayed
that command, so never older than the command; while the standby's replay is paused, such a
query answers 503 ``read_model_behind`` rather than the older state, and once replay resumes
it answers with the new one. Without a position a list may be as old as the standby.

Serial: it starts two PostgreSQL servers of its own."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import Server, free_port, start_server
from tests.topology.clusters import Pair

pytestmark = pytest.mark.serial


def balances(client: httpx.Client, owner: str, position: str | None) -> httpx.Response:
    params = {"owner": owner} | ({} if position is None else {"position": position})
    return client.get("/accounts", params=params)


def test_a_standby_answers_a_commands_position_or_says_it_is_behind(tmp_path: Path) -> None:
    pair = Pair(free_port(), free_port())
    server: Server | None = None
    try:
        pair.start()
        store_url = f"{pair.url}&schema=bank"
        standby_url = f"{pair.standby.url}?schema=bank"
        server = start_server(store_url, tmp_path, "--read-store", standby_url)
        with server.client() as client:
            opened = client.post(
                "/accounts/sb-1",
                json={"type": "OpenAccount", "owner": "Stan", "initial_balance": 10},
            )
            assert opened.status_code == 200, opened.text
            listed = balances(client, "Stan", opened.headers["Facta-Position"])
            assert listed.status_code == 200, listed.text
            assert [a["balance"] for a in listed.json()["accounts"]] == [10.0]

            pair.standby.sql("SELECT pg_wal_replay_pause()")
            deposited = client.post("/accounts/sb-1", json={"type": "Deposit", "amount": 5})
            assert deposited.status_code == 200, deposited.text
            position = deposited.headers["Facta-Position"]
            started = time.monotonic()
            behind = balances(client, "Stan", position)
            assert behind.status_code == 503, behind.text
            assert behind.json()["error"] == "read_model_behind"
            assert behind.headers["Retry-After"] == "1"
            assert time.monotonic() - started >= 4  # it waited for the standby first
            # Without a position: the standby's state, older than the deposit.
            assert [a["balance"] for a in balances(client, "Stan", None).json()["accounts"]] == [
                10.0
            ]

            pair.standby.sql("SELECT pg_wal_replay_resume()")
            caught_up = balances(client, "Stan", position)
            assert caught_up.status_code == 200, caught_up.text
            assert [a["balance"] for a in caught_up.json()["accounts"]] == [15.0]
            # A position the primary has not reached is still refused, as without a standby.
            past = position.split(":")[0] + ":" + str(int(position.split(":")[1]) + 1000)
            assert balances(client, "Stan", past).status_code == 422
    finally:
        if server is not None:
            server.stop()
        pair.remove()

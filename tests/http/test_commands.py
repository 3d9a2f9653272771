"""Commands and reads over real HTTP: concurrency on one account, idempotency keys, ETags,
time travel and history pages."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.http.conftest import Server


def open_account(client: httpx.Client, account_id: str, balance: float = 100.0) -> None:
    response = client.post(
        f"/accounts/{account_id}",
        json={"type": "OpenAccount", "owner": "Carol", "initial_balance": balance},
    )
    assert response.status_code == 200, response.text


async def test_concurrent_deposits_on_one_account_all_count(
    server: Server, account_id: str
) -> None:
    with server.client() as client:
        open_account(client, account_id, 0.0)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        responses = await asyncio.gather(
            *(
                http.post(f"/accounts/{account_id}", json={"type": "Deposit", "amount": 1.25})
                for _ in range(60)
            )
        )
        assert [r.status_code for r in responses] == [200] * 60
        # Every answer saw its own deposit: 60 distinct versions 2..61.
        assert sorted(r.json()["version"] for r in responses) == list(range(2, 62))
        state = (await http.get(f"/accounts/{account_id}")).json()
    assert state["balance"] == 75.0
    assert state["version"] == 61


async def test_concurrent_withdrawals_never_overdraw(server: Server, account_id: str) -> None:
    with server.client() as client:
        open_account(client, account_id, 100.0)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        responses = await asyncio.gather(
            *(
                http.post(f"/accounts/{account_id}", json={"type": "Withdraw", "amount": 30.0})
                for _ in range(10)
            )
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] * 3 + [400] * 7
        rejected = [r.json() for r in responses if r.status_code == 400]
        assert {r["message"] for r in rejected} == {"Insufficient funds"}
        state = (await http.get(f"/accounts/{account_id}")).json()
    assert state == {"id": account_id, "owner": "Carol", "balance": 10.0, "version": 4}


async def test_concurrent_writers_with_one_if_match_exactly_one_wins(
    server: Server, account_id: str
) -> None:
    with server.client() as client:
        open_account(client, account_id)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        responses = await asyncio.gather(
            *(
                http.post(
                    f"/accounts/{account_id}",
                    json={"type": "Deposit", "amount": 1.0},
                    headers={"If-Match": '"1"'},
                )
                for _ in range(20)
            )
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] + [412] * 19
        assert (await http.get(f"/accounts/{account_id}")).json()["version"] == 2


def test_a_repeated_idempotency_key_applies_once_with_the_first_answer(
    client: httpx.Client, account_id: str
) -> None:
    open_account(client, account_id)
    path = f"/accounts/{account_id}"
    key = {"Idempotency-Key": "deposit-7f3a"}
    first = client.post(path, json={"type": "Deposit", "amount": 10.0}, headers=key)
    assert first.status_code == 200
    client.post(path, json={"type": "Deposit", "amount": 1.0})  # someone else, in between
    again = client.post(path, json={"type": "Deposit", "amount": 10.0}, headers=key)
    assert again.status_code == 200
    assert (
        again.json()
        == first.json()
        == {
            "id": account_id,
            "owner": "Carol",
            "balance": 110.0,
            "version": 2,
        }
    )
    assert again.headers["etag"] == '"2"'
    assert client.get(path).json()["balance"] == 111.0
    assert len(client.get(f"{path}/events").json()) == 3


async def test_concurrent_repeats_of_one_key_apply_once(server: Server, account_id: str) -> None:
    with server.client() as client:
        open_account(client, account_id)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        responses = await asyncio.gather(
            *(
                http.post(
                    f"/accounts/{account_id}",
                    json={"type": "Deposit", "amount": 5.0},
                    headers={"Idempotency-Key": "same-key"},
                )
                for _ in range(15)
            )
        )
        assert {r.status_code for r in responses} == {200}
        assert {r.text for r in responses} == {responses[0].text}
        assert (await http.get(f"/accounts/{account_id}")).json()["balance"] == 105.0


def test_etag_and_if_none_match(client: httpx.Client, account_id: str) -> None:
    open_account(client, account_id)
    path = f"/accounts/{account_id}"
    first = client.get(path)
    assert first.headers["etag"] == '"1"'
    cached = client.get(path, headers={"If-None-Match": '"1"'})
    assert cached.status_code == 304
    client.post(path, json={"type": "Deposit", "amount": 1.0})
    fresh = client.get(path, headers={"If-None-Match": '"1"'})
    assert fresh.status_code == 200
    assert fresh.headers["etag"] == '"2"'


def test_time_travel_by_version_and_by_time(client: httpx.Client, account_id: str) -> None:
    open_account(client, account_id, 100.0)
    path = f"/accounts/{account_id}"
    client.post(path, json={"type": "Deposit", "amount": 50.0})
    time.sleep(0.05)
    between = time.time()
    time.sleep(0.05)
    client.post(path, json={"type": "Withdraw", "amount": 30.0})
    assert client.get(f"{path}?version=1").json()["balance"] == 100.0
    assert client.get(f"{path}?version=2").json() == {
        "id": account_id,
        "owner": "Carol",
        "balance": 150.0,
        "version": 2,
    }
    assert client.get(f"{path}?at={between}").json()["version"] == 2
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(between)) + f"{between % 1:.6f}"[1:]
    assert client.get(f"{path}?at={iso}Z").json()["balance"] == 150.0
    assert client.get(path).json()["balance"] == 120.0


def test_history_pages_follow_the_link_header(client: httpx.Client, account_id: str) -> None:
    open_account(client, account_id, 0.0)
    path = f"/accounts/{account_id}"
    for amount in range(1, 8):
        client.post(path, json={"type": "Deposit", "amount": float(amount)})
    seen: list[int] = []
    url: str | None = f"{path}/events?limit=3"
    while url is not None:
        page = client.get(url)
        assert page.status_code == 200
        seen.extend(e["version"] for e in page.json())
        url = page.links.get("next", {}).get("url")
    assert seen == list(range(1, 9))
    tail = client.get(f"{path}/events?from_version=7").json()
    assert [e["amount"] for e in tail] == [6.0, 7.0]
    assert client.get(f"{path}/events?from_version=100").json() == []

"""Idempotency-Key over real HTTP: a repeat gets the first answer, a different request under
the same key is refused with 422 (draft-ietf-httpapi-idempotency-key-header), the key is
scoped to one entity, and a rejected command keeps no key."""

from __future__ import annotations

import httpx

from tests.http.test_errors import assert_error, stream


def open_account(client: httpx.Client, account_id: str, balance: float = 0.0) -> None:
    body = {"type": "OpenAccount", "owner": "Ida", "initial_balance": balance}
    assert client.post(f"/accounts/{account_id}", json=body).status_code == 200


def test_a_key_reused_with_a_different_request_is_422(
    client: httpx.Client, account_id: str
) -> None:
    open_account(client, account_id)
    path, key = f"/accounts/{account_id}", {"Idempotency-Key": "pay-1"}
    first = client.post(path, json={"type": "Deposit", "amount": 1}, headers=key)
    assert first.status_code == 200, first.text
    after_first = stream(client, account_id)
    for other in ({"type": "Deposit", "amount": 500}, {"type": "Withdraw", "amount": 7}):
        refused = client.post(path, json=other, headers=key)
        assert_error(refused, 422, "Idempotency-Key 'pay-1' was used for a different request")
        assert refused.json()["error"] == "idempotency_key_reused"
    assert stream(client, account_id) == after_first
    repeat = client.post(path, json={"type": "Deposit", "amount": 1}, headers=key)
    assert repeat.status_code == 200
    assert repeat.json() == first.json()
    assert client.get(path).json()["balance"] == 1.0


def test_a_key_is_scoped_to_one_entity(client: httpx.Client, account_id: str) -> None:
    other_id = f"{account_id}-b"
    open_account(client, account_id)
    open_account(client, other_id)
    key = {"Idempotency-Key": "shared-key"}
    here = client.post(
        f"/accounts/{account_id}", json={"type": "Deposit", "amount": 3}, headers=key
    )
    there = client.post(f"/accounts/{other_id}", json={"type": "Deposit", "amount": 4}, headers=key)
    assert (here.status_code, there.status_code) == (200, 200)
    assert client.get(f"/accounts/{other_id}").json()["balance"] == 4.0


def test_a_rejected_command_keeps_no_key(client: httpx.Client, account_id: str) -> None:
    open_account(client, account_id)
    path, key = f"/accounts/{account_id}", {"Idempotency-Key": "w-1"}
    rejected = client.post(path, json={"type": "Withdraw", "amount": 5}, headers=key)
    assert_error(rejected, 400, "Insufficient funds")
    assert client.post(path, json={"type": "Deposit", "amount": 9}).status_code == 200
    retried = client.post(path, json={"type": "Withdraw", "amount": 5}, headers=key)
    assert retried.status_code == 200, retried.text
    assert retried.json()["balance"] == 4.0

"""Every error class of the API over real HTTP: JSON with a clear message, never a 500, and a
refused request writes nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.http.conftest import Server


def stream(client: httpx.Client, account_id: str) -> tuple[int, object]:
    """What an account's stream holds; a refused request must leave it unchanged.

    (Not the log's head: on PostgreSQL an earlier commit may become visible to readers a
    moment later, while another transaction in the cluster is still open.)
    """
    events = client.get(f"/accounts/{account_id}/events")
    return events.status_code, events.json()


def assert_error(response: httpx.Response, status: int, message: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["error"], str)
    assert body["message"]
    assert message in body["message"]


@pytest.fixture
def opened(client: httpx.Client, account_id: str) -> str:
    """An account holding 100.0 at version 1."""
    response = client.post(
        f"/accounts/{account_id}",
        json={"type": "OpenAccount", "owner": "Bob", "initial_balance": 100.0},
    )
    assert response.status_code == 200, response.text
    return account_id


def test_a_rejected_command_is_400_with_the_domain_message(
    client: httpx.Client, opened: str
) -> None:
    before = stream(client, opened)
    response = client.post(f"/accounts/{opened}", json={"type": "Withdraw", "amount": 200.0})
    assert_error(response, 400, "Insufficient funds")
    assert response.json()["error"] == "command_rejected"
    again = client.post(
        f"/accounts/{opened}",
        json={"type": "OpenAccount", "owner": "Bob", "initial_balance": 1.0},
    )
    assert_error(again, 400, "Account already open")
    assert stream(client, opened) == before
    assert client.get(f"/accounts/{opened}").json()["balance"] == 100.0


def test_unknown_accounts_are_404(client: httpx.Client, account_id: str) -> None:
    before = stream(client, account_id)
    assert_error(client.get(f"/accounts/{account_id}"), 404, f"account '{account_id}' not found")
    assert_error(client.get(f"/accounts/{account_id}/events"), 404, "not found")
    # A command other than OpenAccount on an account that does not exist: 404, not 400.
    deposit = client.post(f"/accounts/{account_id}", json={"type": "Deposit", "amount": 5.0})
    assert_error(deposit, 404, "not found")
    assert_error(client.get("/no/such/route"), 404)
    assert stream(client, account_id) == before


def test_a_version_past_the_end_is_404(client: httpx.Client, opened: str) -> None:
    assert_error(client.get(f"/accounts/{opened}?version=2"), 404, "had no version 2")
    # Both: the version as of that time (version 1 did not exist in 2001).
    assert_error(client.get(f"/accounts/{opened}?version=1&at=2001-01-01T00:00:00Z"), 404, "at")
    assert client.get(f"/accounts/{opened}?version=1&at=2999-01-01T00:00:00Z").status_code == 200
    assert_error(client.get(f"/accounts/{opened}?at=2001-01-01T00:00:00Z"), 404, "did not exist")


def test_a_stale_if_match_is_412_and_writes_nothing(client: httpx.Client, opened: str) -> None:
    path = f"/accounts/{opened}"
    ok = client.post(path, json={"type": "Deposit", "amount": 1.0}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200, ok.text
    assert ok.headers["etag"] == '"2"'
    before = stream(client, opened)
    for stale in ('"1"', 'W/"1"', "1", '"7"', "garbage", '"a", "b"'):
        response = client.post(
            path, json={"type": "Deposit", "amount": 1.0}, headers={"If-Match": stale}
        )
        assert_error(response, 412, "version 2")
        assert response.json()["current_version"] == 2
        assert response.headers["etag"] == '"2"'
    assert stream(client, opened) == before
    # A list holding the current version matches, and so does "*" on an existing account.
    listed = client.post(
        path, json={"type": "Deposit", "amount": 1.0}, headers={"If-Match": '"1", "2"'}
    )
    assert listed.status_code == 200, listed.text
    star = client.post(path, json={"type": "Deposit", "amount": 1.0}, headers={"If-Match": "*"})
    assert star.status_code == 200, star.text
    assert star.json()["version"] == 4


def test_if_match_star_on_a_missing_account_is_412(client: httpx.Client, account_id: str) -> None:
    response = client.post(
        f"/accounts/{account_id}",
        json={"type": "OpenAccount", "owner": "Eve", "initial_balance": 1.0},
        headers={"If-Match": "*"},
    )
    assert_error(response, 412, "version 0")


def test_a_body_over_the_limit_is_413(client: httpx.Client, account_id: str) -> None:
    before = stream(client, account_id)
    owner = "x" * 100_000
    response = client.post(
        f"/accounts/{account_id}",
        json={"type": "OpenAccount", "owner": owner, "initial_balance": 1.0},
    )
    assert_error(response, 413, "too large")
    assert stream(client, account_id) == before


def test_a_chunked_body_over_the_limit_is_413(client: httpx.Client, account_id: str) -> None:
    # No Content-Length to refuse it by: the limit holds on the bytes as they arrive.
    before = stream(client, account_id)
    head = b'{"type": "OpenAccount", "initial_balance": 1.0, "owner": "'
    chunks = [head, *([b"x" * 16_384] * 8), b'"}']
    response = client.post(f"/accounts/{account_id}", content=iter(chunks))
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "too large")
    assert stream(client, account_id) == before


def test_a_command_sent_in_chunks_is_read_whole(client: httpx.Client, account_id: str) -> None:
    chunks = [b'{"type": "OpenAccount", ', b'"owner": "Chunky", ', b'"initial_balance": 7.0}']
    response = client.post(
        f"/accounts/{account_id}",
        content=iter(chunks),
        headers={"Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 200, response.text
    assert response.json() == {"id": account_id, "owner": "Chunky", "balance": 7.0, "version": 1}


BAD_BODIES = [
    pytest.param(b'{"type": "Deposit", "amount": 5', id="truncated-json"),
    pytest.param(b"", id="empty"),
    pytest.param(b"null", id="null"),
    pytest.param(b"[1, 2]", id="array"),
    pytest.param(b'"Deposit"', id="string"),
    pytest.param(b"\xff\xfe", id="not-utf8"),
    pytest.param(b'{"amount": 5.0}', id="no-type"),
    pytest.param(b'{"type": "Steal", "amount": 5.0}', id="unknown-type"),
    pytest.param(b'{"type": 7, "amount": 5.0}', id="type-not-string"),
    pytest.param(b'{"type": "Deposit"}', id="missing-field"),
    pytest.param(b'{"type": "Deposit", "amount": "lots"}', id="amount-text"),
    pytest.param(b'{"type": "Deposit", "amount": true}', id="amount-bool"),
    pytest.param(b'{"type": "Deposit", "amount": NaN}', id="nan-literal"),
    pytest.param(b'{"type": "Deposit", "amount": "NaN"}', id="nan-string"),
    pytest.param(b'{"type": "Deposit", "amount": Infinity}', id="infinity-literal"),
    pytest.param(b'{"type": "Deposit", "amount": "-Infinity"}', id="infinity-string"),
    pytest.param(b'{"type": "Deposit", "amount": 1e999}', id="overflowing-float"),
    pytest.param(b'{"type": "Deposit", "amount": 1e13}', id="over-a-trillion"),
    pytest.param(b'{"type": "Deposit", "amount": 123456789012345678901234567890}', id="huge-int"),
    pytest.param(b'{"type": "Deposit", "amount": -5.0}', id="negative"),
    pytest.param(b'{"type": "Deposit", "amount": 0}', id="zero"),
    pytest.param(b'{"type": "Deposit", "amount": 0.001}', id="sub-cent"),
    pytest.param(b'{"type": "Withdraw", "amount": 1e-400}', id="underflow"),
    pytest.param(b'{"type": "OpenAccount", "owner": 42, "initial_balance": 1}', id="owner-int"),
    pytest.param(b'{"type": "OpenAccount", "owner": "  ", "initial_balance": 1}', id="owner-blank"),
    pytest.param(
        b'{"type": "OpenAccount", "owner": "' + b"o" * 201 + b'", "initial_balance": 1}',
        id="owner-too-long",
    ),
    pytest.param(b'{"type": "Deposit", "amount": 5.0' + b"}" * 3, id="trailing-garbage"),
    pytest.param(b"[" * 10_000 + b"]" * 10_000, id="deep-nesting"),
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_malformed_commands_are_422_and_write_nothing(
    client: httpx.Client, opened: str, body: bytes
) -> None:
    before = stream(client, opened)
    response = client.post(
        f"/accounts/{opened}", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422)
    assert stream(client, opened) == before
    assert client.get(f"/accounts/{opened}").json()["version"] == 1


BAD_REQUESTS = [
    pytest.param("GET", "/accounts/bad%20id", id="id-space"),
    pytest.param("GET", "/accounts/%C3%A4", id="id-unicode"),
    pytest.param("GET", "/accounts/" + "a" * 201, id="id-too-long"),
    pytest.param("GET", "/accounts/a%00b", id="id-nul"),
    pytest.param("GET", "/accounts/bad%20id/events", id="events-id-space"),
    pytest.param("POST", "/accounts/bad%22id", id="post-id-quote"),
    pytest.param("GET", "/accounts/{id}?version=0", id="version-zero"),
    pytest.param("GET", "/accounts/{id}?version=-1", id="version-negative"),
    pytest.param("GET", "/accounts/{id}?version=abc", id="version-text"),
    pytest.param("GET", "/accounts/{id}?version=99999999999999999999999", id="version-huge"),
    pytest.param("GET", "/accounts/{id}?at=yesterday", id="at-text"),
    pytest.param("GET", "/accounts/{id}?at=nan", id="at-nan"),
    pytest.param("GET", "/accounts/{id}?at=1e999", id="at-infinite"),
    pytest.param("GET", "/accounts/{id}?at=-5", id="at-negative"),
    pytest.param("GET", "/accounts/{id}?at=1e20", id="at-far"),
    pytest.param("GET", "/accounts/{id}/events?limit=0", id="limit-zero"),
    pytest.param("GET", "/accounts/{id}/events?limit=1001", id="limit-over-max"),
    pytest.param("GET", "/accounts/{id}/events?limit=abc", id="limit-text"),
    pytest.param("GET", "/accounts/{id}/events?from_version=0", id="from-version-zero"),
    pytest.param("GET", "/accounts/{id}/events?from_version=1.5", id="from-version-float"),
    pytest.param("GET", "/events?after=abc", id="after-text"),
    pytest.param("GET", "/events?after=-1", id="after-negative"),
    pytest.param("GET", "/events?after=99999999999999999999999", id="after-huge"),
    pytest.param("GET", "/events?after=1:2:3", id="after-three-parts"),
    pytest.param("GET", "/events?limit=100000", id="feed-limit-huge"),
    pytest.param("GET", "/events?category=a%20b", id="feed-category-space"),
    pytest.param("GET", "/events/live?after=xyz", id="live-after-text"),
]


@pytest.mark.parametrize(("method", "path"), BAD_REQUESTS)
def test_bad_ids_and_parameters_are_422(
    client: httpx.Client, opened: str, method: str, path: str
) -> None:
    before = stream(client, opened)
    response = client.request(
        method, path.replace("{id}", opened), json={"type": "Deposit", "amount": 1.0}
    )
    assert_error(response, 422)
    assert stream(client, opened) == before


def test_a_too_long_idempotency_key_is_422(client: httpx.Client, opened: str) -> None:
    response = client.post(
        f"/accounts/{opened}",
        json={"type": "Deposit", "amount": 1.0},
        headers={"Idempotency-Key": "k" * 201},
    )
    assert_error(response, 422, "Idempotency-Key")


def test_an_unsupported_method_is_405_json(client: httpx.Client, opened: str) -> None:
    assert_error(client.delete(f"/accounts/{opened}"), 405)


def test_the_server_logged_no_internal_error(server: Server, client: httpx.Client) -> None:
    # Nothing before this (in this module and the ones run before it) logged a traceback.
    assert client.get("/health").status_code == 200
    assert "Traceback" not in server.output()
    assert "unhandled error" not in server.output()

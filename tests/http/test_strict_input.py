"""The request edge parses strictly: what msgspec alone would let through is refused with a
422 naming the field (or 415 for a body not sent as JSON), and writes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.http import custom_apps
from tests.http.conftest import Server, start_server
from tests.http.test_errors import assert_error, stream

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def opened(client: httpx.Client, account_id: str) -> str:
    """An account holding 100.0 at version 1."""
    response = client.post(
        f"/accounts/{account_id}",
        json={"type": "OpenAccount", "owner": "Bob", "initial_balance": 100.0},
    )
    assert response.status_code == 200, response.text
    return account_id


def post_raw(client: httpx.Client, path: str, body: bytes, **headers: str) -> httpx.Response:
    return client.post(path, content=body, headers={**JSON, **headers})


def nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(nested_objects(10_000), id="10000-objects"),
        pytest.param(
            b'{"type":"Deposit","amount":1,"extra":' + nested_objects(10_000) + b"}",
            id="inside-a-command",
        ),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, id="10000-arrays"),
        pytest.param(nested_objects(33), id="33-levels"),
    ],
)
@pytest.mark.parametrize("path", ["/accounts/{id}", "/transfers/t-{id}"])
def test_deep_nesting_is_422_not_a_recursion_error(
    client: httpx.Client, opened: str, body: bytes, path: str
) -> None:
    assert len(body) < 64 * 1024  # under the size limit: this is about depth
    before = stream(client, opened)
    response = post_raw(client, path.format(id=opened), body)
    assert_error(response, 422)
    if len(body) > 1000:
        assert "nests deeper than 32 levels" in response.json()["message"]
    assert stream(client, opened) == before


@pytest.mark.parametrize("amount", ["1000", "1_000", " 10 ", "١٢", "12.5", "1e3"])
def test_money_sent_as_a_string_is_422_naming_the_field(
    client: httpx.Client, opened: str, amount: str
) -> None:
    before = stream(client, opened)
    deposit = client.post(f"/accounts/{opened}", json={"type": "Deposit", "amount": amount})
    assert_error(deposit, 422, "$.amount")
    assert "JSON number" in deposit.json()["message"]
    withdraw = client.post(f"/accounts/{opened}", json={"type": "Withdraw", "amount": amount})
    assert_error(withdraw, 422, "$.amount")
    assert stream(client, opened) == before


def test_money_strings_are_refused_in_every_command(client: httpx.Client, account_id: str) -> None:
    opening = client.post(
        f"/accounts/{account_id}",
        json={"type": "OpenAccount", "owner": "Ann", "initial_balance": "5"},
    )
    assert_error(opening, 422, "$.initial_balance")
    transfer = client.post(
        f"/transfers/t-{account_id}",
        json={"type": "RequestTransfer", "source": "a", "target": "b", "amount": "5"},
    )
    assert_error(transfer, 422, "$.amount")
    assert client.get(f"/accounts/{account_id}").status_code == 404
    assert client.get(f"/transfers/t-{account_id}").status_code == 404


def test_money_as_a_json_number_stays_exact(client: httpx.Client, opened: str) -> None:
    response = post_raw(client, f"/accounts/{opened}", b'{"type":"Deposit","amount":0.10}')
    assert response.status_code == 200, response.text
    response = post_raw(client, f"/accounts/{opened}", b'{"type":"Deposit","amount":1e2}')
    assert response.status_code == 200, response.text
    assert response.json()["balance"] == 200.1


@pytest.mark.parametrize(
    "body",
    [
        b'{"type":"Deposit","amount":1,"amount":1000}',
        b'{"type":"Deposit","amount":1000,"amount":1}',
        b'{"type":"Deposit","amount":1,"\\u0061mount":1000}',
        b'{"type":"Deposit","type":"Withdraw","amount":1}',
    ],
)
def test_duplicate_keys_are_422(client: httpx.Client, opened: str, body: bytes) -> None:
    before = stream(client, opened)
    response = post_raw(client, f"/accounts/{opened}", body)
    assert_error(response, 422, "repeats the key")
    assert stream(client, opened) == before


def test_a_repeated_key_in_a_nested_object_is_422_but_the_same_key_in_two_objects_is_not(
    client: httpx.Client, opened: str
) -> None:
    # Refused for its unknown field either way; the point is which check says so.
    nested = post_raw(
        client, f"/accounts/{opened}", b'{"type":"Deposit","amount":1,"x":{"k":1,"k":2}}'
    )
    assert_error(nested, 422, "repeats the key 'k'")
    apart = post_raw(
        client, f"/accounts/{opened}", b'{"type":"Deposit","amount":1,"x":[{"k":1},{"k":2}]}'
    )
    assert_error(apart, 422, "unknown field `x`")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "Deposit", "amount": 5, "currency": "EUR"}, "currency"),
        ({"type": "Deposit", "amount": 5, "amout": 500}, "amout"),
        ({"type": "OpenAccount", "owner": "A", "initial_balance": 1, "admin": True}, "admin"),
    ],
)
def test_unknown_fields_are_422_naming_them(
    client: httpx.Client, opened: str, body: dict[str, object], field: str
) -> None:
    before = stream(client, opened)
    response = client.post(f"/accounts/{opened}", json=body)
    assert_error(response, 422, f"unknown field `{field}`")
    assert stream(client, opened) == before


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "application/json; charset=latin-1",
    ],
)
def test_a_body_not_sent_as_json_is_415(
    client: httpx.Client, opened: str, content_type: str | None
) -> None:
    before = stream(client, opened)
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post(
        f"/accounts/{opened}", content=b'{"type":"Deposit","amount":1}', headers=headers
    )
    assert_error(response, 415, "application/json")
    assert response.json()["error"] == "unsupported_media_type"
    assert stream(client, opened) == before


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "Application/JSON; charset=UTF-8", "application/vnd.bank+json"],
)
def test_json_media_types_are_accepted(
    client: httpx.Client, opened: str, content_type: str
) -> None:
    response = client.post(
        f"/accounts/{opened}",
        content=b'{"type":"Deposit","amount":1}',
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"type":"OpenAccount","owner":"Nul\\u0000Byte","initial_balance":1}',
        b'{"type":"OpenAccount","owner":"\\u0000","initial_balance":1}',
        b'{"type":"OpenAccount","owner":"a","initial_balance":1,"\\u0000":1}',
        b'{"type":"RequestTransfer","source":"a\\u0000","target":"b","amount":1}',
    ],
)
def test_a_nul_character_is_422_on_every_backend(
    client: httpx.Client, account_id: str, body: bytes
) -> None:
    path = f"/transfers/t-{account_id}" if b"Transfer" in body else f"/accounts/{account_id}"
    response = post_raw(client, path, body)
    assert_error(response, 422, "NUL")
    assert client.get(path).status_code == 404


def test_an_escaped_backslash_before_u0000_is_text_not_nul(
    client: httpx.Client, account_id: str
) -> None:
    body = b'{"type":"OpenAccount","owner":"C:\\\\u0000dir","initial_balance":1}'
    response = post_raw(client, f"/accounts/{account_id}", body)
    assert response.status_code == 200, response.text
    assert response.json()["owner"] == "C:\\u0000dir"
    assert client.get(f"/accounts/{account_id}").json()["owner"] == "C:\\u0000dir"


@pytest.fixture(scope="module")
def notes_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A facta app with a plain Litestar JSON route (``POST /notes`` takes a dict)."""
    workdir = tmp_path_factory.mktemp("notes")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", custom_apps.ROOT)
        server = start_server(
            f"sqlite:///{workdir / 'facta.db'}",
            workdir,
            "--app",
            "tests.http.custom_apps:with_notes",
        )
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (nested_objects(10_000), "application/json", 422),
        (b'{"a":1,"a":2}', "application/json", 422),
        (b'{"a":"\\u0000"}', "application/json", 422),
        (b'{"a":1}', "text/plain", 415),
        (b'{"a":1,"b":{"a":2}}', "application/json", 200),
    ],
)
def test_every_json_route_gets_the_same_checks(
    notes_server: Server, body: bytes, content_type: str, status: int
) -> None:
    response = httpx.post(
        f"{notes_server.url}/notes", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == {"keys": ["a", "b"]}
    assert "Traceback" not in notes_server.output()

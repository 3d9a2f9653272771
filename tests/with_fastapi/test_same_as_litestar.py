"""The FastAPI layer answers as the Litestar layer does: the Litestar service's own end-to-end
tests of the account routes, run here against the FastAPI bank under uvicorn (the fixtures
`server`, `client` and `account_id` are this folder's). Commands, ETag/If-Match, Idempotency-Key
repeats and reuse, time travel, history pages, and hostile input, all with the same bodies."""

from __future__ import annotations

import httpx
import pytest

from tests.http import test_errors
from tests.http.test_commands import (  # noqa: F401 - collected here, on this folder's server
    test_a_repeated_idempotency_key_applies_once_with_the_first_answer,
    test_concurrent_deposits_on_one_account_all_count,
    test_concurrent_repeats_of_one_key_apply_once,
    test_concurrent_withdrawals_never_overdraw,
    test_concurrent_writers_with_one_if_match_exactly_one_wins,
    test_etag_and_if_none_match,
    test_history_pages_follow_the_link_header,
    test_time_travel_by_version_and_by_time,
)
from tests.http.test_errors import (  # noqa: F401
    test_a_body_over_the_limit_is_413,
    test_a_chunked_body_over_the_limit_is_413,
    test_a_command_sent_in_chunks_is_read_whole,
    test_a_rejected_command_is_400_with_the_domain_message,
    test_a_stale_if_match_is_412_and_writes_nothing,
    test_a_too_long_idempotency_key_is_422,
    test_a_version_past_the_end_is_404,
    test_an_unsupported_method_is_405_json,
    test_if_match_star_on_a_missing_account_is_412,
    test_malformed_commands_are_422_and_write_nothing,
    test_unknown_accounts_are_404,
)
from tests.http.test_idempotency import (  # noqa: F401
    test_a_key_is_scoped_to_one_entity,
    test_a_key_reused_with_a_different_request_is_422,
    test_a_rejected_command_keeps_no_key,
)
from tests.http.test_strict_input import (  # noqa: F401
    nested_objects,
    post_raw,
    test_a_body_not_sent_as_json_is_415,
    test_a_repeated_key_in_a_nested_object_is_422_but_the_same_key_in_two_objects_is_not,
    test_duplicate_keys_are_422,
    test_json_media_types_are_accepted,
    test_money_as_a_json_number_stays_exact,
    test_money_sent_as_a_string_is_422_naming_the_field,
    test_unknown_fields_are_422_naming_them,
)

# The Litestar list less the global feed's routes (/events), which this app does not serve.
ACCOUNT_REQUESTS = [
    p for p in test_errors.BAD_REQUESTS if not str(p.values[1]).startswith("/events")
]


@pytest.mark.parametrize(("method", "path"), ACCOUNT_REQUESTS)
def test_bad_ids_and_parameters_are_422(
    client: httpx.Client, opened: str, method: str, path: str
) -> None:
    test_errors.test_bad_ids_and_parameters_are_422(client, opened, method, path)


@pytest.mark.parametrize(
    "body",
    [nested_objects(10_000), b"[" * 10_000 + b"]" * 10_000, nested_objects(33)],
    ids=["10000-objects", "10000-arrays", "33-levels"],
)
def test_deep_nesting_is_422(client: httpx.Client, opened: str, body: bytes) -> None:
    before = test_errors.stream(client, opened)
    test_errors.assert_error(post_raw(client, f"/accounts/{opened}", body), 422, "nests deeper")
    assert test_errors.stream(client, opened) == before


def test_a_nul_character_is_422(client: httpx.Client, account_id: str) -> None:
    body = b'{"type":"OpenAccount","owner":"Nul\\u0000Byte","initial_balance":1}'
    test_errors.assert_error(post_raw(client, f"/accounts/{account_id}", body), 422, "NUL")
    assert client.get(f"/accounts/{account_id}").status_code == 404


def test_the_read_model_lists_what_commands_wrote(client: httpx.Client, account_id: str) -> None:
    # The app's own FastAPI route beside the router's, on the inline read model.
    body = {"type": "OpenAccount", "owner": "Lou", "initial_balance": 3}
    assert client.post(f"/accounts/{account_id}", json=body).status_code == 200
    listed = client.get("/accounts", params={"limit": 500}).json()
    assert {"id": account_id, "owner": "Lou"} in listed
    test_errors.assert_error(client.get("/accounts", params={"limit": 0}), 422, "limit")


def test_the_server_logged_no_internal_error(
    server: test_errors.Server, client: httpx.Client
) -> None:
    # Last in this module: nothing before it logged a traceback.
    test_errors.test_the_server_logged_no_internal_error(server, client)

"""The OpenAPI document says what the service does: every documented error is the JSON body
the service sends, with the status it really answers; bad parameters are 422 with messages a
client can read; the live feed is an event stream; OPTIONS lists every method of a path.

Each point is checked against real answers of a running ``facta serve``, for every operation
the document lists, so a route added later is held to the same contract.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def concrete(path: str) -> str:
    """``path`` with its parameters filled in (ids that exist nowhere)."""
    return re.sub(r"\{\w+\}", "contract-none", path.replace("{id}", "acc-contract-none"))


def bad_value(schema: dict[str, Any]) -> str | None:
    """A query value that ``schema`` forbids, or None when any string would do."""
    kinds: set[str] = set()
    for option in schema.get("oneOf", [schema]):  # a type may be a name or a list of names
        declared = option.get("type")
        kinds |= set(declared) if isinstance(declared, list) else {declared}
    kinds.discard("null")
    if "enum" in schema:
        return "not-one-of-them"
    if kinds & {"integer", "number"}:
        return "ten"
    if "boolean" in kinds:
        return "perhaps"
    if "maxLength" in schema:
        return "x" * (schema["maxLength"] + 1)
    return None


def test_every_documented_error_is_the_error_body_sent(client: httpx.Client) -> None:
    document = client.get("/docs/openapi.json").json()
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                content = response["content"]
                assert list(content) == ["application/json"], (path, method, status)
                assert content["application/json"]["schema"] == ERROR_BODY, (path, method, status)
        if method == "get":
            # 400 is the domain refusing a command: a read never answers it.
            assert "400" not in operation["responses"], path


def test_bad_query_parameters_are_the_documented_422(client: httpx.Client) -> None:
    document = client.get("/docs/openapi.json").json()
    checked = 0
    for path, method, operation in operations(document):
        if method != "get":
            continue
        for parameter in operation.get("parameters", []):
            value = bad_value(parameter["schema"])
            if parameter["in"] != "query" or value is None:
                continue
            response = client.get(concrete(path), params={parameter["name"]: value})
            where = (path, parameter["name"], response.text)
            assert response.status_code == 422, where
            assert "422" in operation["responses"], where
            body = response.json()
            assert {"status", "error", "message"} <= body.keys(), where
            assert body["status"] == 422, where
            assert parameter["name"] in body["message"], where
            assert "ParamType" not in response.text, where
            checked += 1
    assert checked >= 10  # versions, limits, positions, sort keys, formats, ...


def test_bad_headers_are_the_documented_422_naming_the_header(client: httpx.Client) -> None:
    document = client.get("/docs/openapi.json").json()
    checked = 0
    for path, method, operation in operations(document):
        if method != "get":
            continue
        for parameter in operation.get("parameters", []):
            value = bad_value(parameter["schema"])
            if parameter["in"] != "header" or value is None:
                continue
            response = client.get(concrete(path), headers={parameter["name"]: value})
            where = (path, parameter["name"], response.text)
            assert response.status_code == 422, where
            assert "422" in operation["responses"], where
            assert f"in header {parameter['name'].lower()}" in response.json()["message"], where
            checked += 1
    assert checked >= 3  # If-None-Match, Last-Event-ID


def test_the_live_feed_is_documented_and_sent_as_an_event_stream(client: httpx.Client) -> None:
    document = client.get("/docs/openapi.json").json()
    documented = document["paths"]["/events/live"]["get"]["responses"]["200"]["content"]
    assert list(documented) == ["text/event-stream"]
    with client.stream("GET", "/events/live") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == "text/event-stream"


def test_options_lists_every_method_of_a_path(client: httpx.Client) -> None:
    document = client.get("/docs/openapi.json").json()
    for path, item in document["paths"].items():
        response = client.options(concrete(path))
        assert response.status_code == 204, (path, response.text)
        allowed = {method.strip() for method in response.headers["allow"].split(",")}
        assert allowed == {method.upper() for method in item} | {"OPTIONS"}, path

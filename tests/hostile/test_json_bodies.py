"""JSON bodies are limited in depth as well as size: nesting beyond MAX_JSON_DEPTH, invalid UTF-8, NaN and
Infinity, numbers too large, repeated keys and anything but an object are each a 422 in the API's error
shape with a Japanese message naming the body, never a RecursionError and a 500."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from starlette.testclient import TestClient

from app.main import create_app
from app.web.bodies import MAX_JSON_DEPTH, JsonBodyInvalid, nesting_exceeds, parse_json_object
from tests.intake.helpers import application_body, make_letters

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


# Strings full of the characters the scan must not count: brackets, quotes, backslashes.
_tricky_text = st.text(alphabet=st.sampled_from('[]{}"\\ a\u3042\n'), max_size=8)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3),
    max_leaves=60,
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(value=_json_values, limit=st.integers(min_value=0, max_value=8))
def test_the_depth_scan_agrees_with_the_real_depth(value, limit):
    raw = json.dumps(value, ensure_ascii=False).encode()
    assert nesting_exceeds(raw, limit) == (_depth(value) > limit)


def test_deep_but_allowed_parses_and_one_level_more_does_not():
    allowed = b'{"a":' * MAX_JSON_DEPTH + b"1" + b"}" * MAX_JSON_DEPTH
    assert _depth(parse_json_object(allowed)) == MAX_JSON_DEPTH
    too_deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(JsonBodyInvalid) as caught:
        parse_json_object(too_deep)
    assert caught.value.kind == "json_too_deep" and caught.value.status == 422


@pytest.mark.parametrize(
    "raw, kind",
    [
        (b"[" * (60 * 1024), "json_too_deep"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "json_too_deep"),
        (b'{"a":"\xff\xfe"}', "json_invalid"),
        ('{"pin":"1"}'.encode("utf-16"), "json_invalid"),
        (b'{"a":NaN}', "json_invalid"),
        (b'{"a":-Infinity}', "json_invalid"),
        (b'{"a":1e999}', "json_invalid"),
        (b'{"a":1' + b"0" * 5000 + b"}", "json_invalid"),
        (b'{"a":1,"a":2}', "json_duplicate_key"),
        (b'{"a":{"b":1,"b":1}}', "json_duplicate_key"),
        (b"{", "json_invalid"),
        (b"", "json_invalid"),
        (b"[]", "model_type"),
        (b'"{}"', "model_type"),
        (b"null", "model_type"),
    ],
)
def test_unreadable_bodies_are_refused_with_the_reason(raw, kind):
    with pytest.raises(JsonBodyInvalid) as caught:
        parse_json_object(raw)
    assert caught.value.kind == kind
    (error,) = caught.value.extra["errors"]
    assert error["loc"][0] == "body" and "（body）" in error["message"]


def test_brackets_inside_strings_do_not_count():
    body = {"holder_kana": "[" * 5000 + "{" * 5000 + '\\"[', "x": ["]" * 100]}
    assert parse_json_object(json.dumps(body).encode()) == body


@pytest.mark.parametrize("url", ["/api/v1/applications", "/api/v1/status"])
@pytest.mark.parametrize(
    "raw, kind",
    [
        (b"[" * (60 * 1024), "json_too_deep"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "json_too_deep"),
        (b'{"municipality_code":"\xed\xa0\x80"}', "json_invalid"),
        (b'{"pin":NaN}', "json_invalid"),
        (b'{"pin":"1","pin":"2"}', "json_duplicate_key"),
        (b"[1]", "model_type"),
    ],
)
def test_the_api_answers_422_in_japanese_with_its_error_shape(client, url, raw, kind):
    r = client.post(url, content=raw, headers={"content-type": "application/json", "Idempotency-Key": "k"})
    assert r.status_code == 422, (r.status_code, r.text[:300])
    error = r.json()["error"]
    assert error["status"] == 422 and JAPANESE.search(error["message"])
    assert [e["type"] for e in error["errors"]] == [kind]
    assert all(JAPANESE.search(e["message"]) and "（body）" in e["message"] for e in error["errors"])


async def test_deep_but_allowed_values_in_fields_are_validation_errors(client, app_pool, municipality, settings):
    """Nesting within the limit reaches pydantic, which refuses it field by field (422, never a 500)."""
    code = await municipality()
    letter = (await make_letters(app_pool, settings.master_key_bytes, code, 1))[0]
    nested: object = "ﾔﾏﾀﾞ"
    for _ in range(MAX_JSON_DEPTH - 3):
        nested = [nested]
    body = application_body(letter)
    body["bank"]["holder_kana"] = nested
    body["pin"] = {"a": {"b": [[["1"]]]}}
    r = client.post(
        "/api/v1/applications",
        content=json.dumps(body),
        headers={"content-type": "application/json", "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 422, r.text[:300]
    locs = {tuple(e["loc"]) for e in r.json()["error"]["errors"]}
    assert ("pin",) in locs and ("bank", "holder_kana") in locs

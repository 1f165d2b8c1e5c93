"""POST /api/v1/applications: once per entitlement, idempotent per key, tenant-isolated, never a 500."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from app.intake.signin import SIGNIN_FAILED_MESSAGE
from app.registry.receipts import receipt_key, receipt_number
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from tests.intake.helpers import application_body, make_letters

COUNTS = """
SELECT (SELECT count(*) FROM applications WHERE entitlement_id = $1) AS apps,
       (SELECT count(*) FROM outbox WHERE job_name = 'verify_application') AS jobs,
       (SELECT count(*) FROM intake_duplicate_claims WHERE entitlement_id = $1) AS dups
"""


@pytest.fixture
async def client(live_server):
    async with httpx.AsyncClient(base_url=live_server, timeout=30) as c:
        yield c


def key() -> dict:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def counts(app_pool, code, entitlement_id):
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        return dict(await conn.fetchrow(COUNTS, entitlement_id))


async def test_submit_writes_application_encrypted_with_outbox_row(client, app_pool, settings, municipality):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    r = await client.post(
        "/api/v1/applications", json=application_body(letter, holder_kana="やまだ　たろう"), headers=key()
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "received" and body["duplicate"] is False and len(body["receipt_no"]) == 11
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        app = await conn.fetchrow("SELECT * FROM applications WHERE entitlement_id = $1", letter.entitlement_id)
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        job = await conn.fetchrow(
            "SELECT job_id, args FROM outbox WHERE job_id = $1", f"verify:{code}:{app['application_id']}"
        )
        ent_status = await conn.fetchval(
            "SELECT status FROM entitlements WHERE entitlement_id = $1", letter.entitlement_id
        )
    assert app["channel"] == "online" and app["status"] == "received"
    assert app["receipt_no"] == body["receipt_no"] == receipt_number(receipt_key(cipher.key), app["application_id"])
    assert b"1234567" not in app["account_number_enc"]
    assert (
        cipher.decrypt_str("applications", "account_number", app["application_id"], app["account_number_enc"])
        == "1234567"
    )
    assert cipher.decrypt_str("applications", "holder_kana", app["application_id"], app["holder_kana_enc"]) == "ﾔﾏﾀﾞ ﾀﾛｳ"
    assert job is not None and job["args"] == f'["{code}", {app["application_id"]}]'
    assert ent_status == "claimed"


async def test_same_key_same_body_replays_and_different_body_is_422(client, app_pool, settings, municipality):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    h = key()
    first = await client.post("/api/v1/applications", json=application_body(letter), headers=h)
    again = await client.post("/api/v1/applications", json=application_body(letter), headers=h)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    other = await client.post(
        "/api/v1/applications", json=application_body(letter, account_number="7654321"), headers=h
    )
    assert other.status_code == 422
    assert other.json()["error"]["type"] == "key_reused"
    assert (await counts(app_pool, code, letter.entitlement_id))["apps"] == 1


async def test_concurrent_duplicates_of_one_key_make_one_application(client, app_pool, settings, municipality):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    h = key()
    results = await asyncio.gather(
        *[client.post("/api/v1/applications", json=application_body(letter), headers=h) for _ in range(8)]
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}, statuses
    receipts = {r.json()["receipt_no"] for r in results if r.status_code == 201}
    assert len(receipts) == 1
    for r in results:
        if r.status_code == 409:
            assert r.json()["error"]["type"] == "in_flight"
    assert (await counts(app_pool, code, letter.entitlement_id))["apps"] == 1


async def test_second_claim_with_new_key_returns_first_receipt_409_and_is_recorded(
    client, app_pool, settings, municipality
):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    first = await client.post("/api/v1/applications", json=application_body(letter), headers=key())
    second = await client.post(
        "/api/v1/applications", json=application_body(letter, account_number="1111111"), headers=key()
    )
    assert second.status_code == 409
    assert second.json()["receipt_no"] == first.json()["receipt_no"] and second.json()["duplicate"] is True
    c = await counts(app_pool, code, letter.entitlement_id)
    assert c["apps"] == 1 and c["dups"] == 1


async def test_many_concurrent_claims_on_one_entitlement_make_one_application(client, app_pool, settings, municipality):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    # Twenty devices (each its own address: one address gets only its share of a busy process, 429).
    results = await asyncio.gather(
        *[
            client.post(
                "/api/v1/applications",
                json=application_body(letter),
                headers={**key(), "X-Forwarded-For": f"198.51.100.{i + 1}"},
            )
            for i in range(20)
        ]
    )
    assert sorted(r.status_code for r in results).count(201) == 1
    assert {r.json()["receipt_no"] for r in results} and len({r.json()["receipt_no"] for r in results}) == 1
    c = await counts(app_pool, code, letter.entitlement_id)
    assert c["apps"] == 1 and c["dups"] == 19


async def test_wrong_pin_locks_the_code_after_five_failures(client, app_pool, settings, municipality):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code, pin="246810")
    wrong = application_body(letter)
    wrong["pin"] = "000000"
    for _ in range(5):
        r = await client.post("/api/v1/applications", json=wrong, headers=key())
        assert r.status_code == 401
    # The fifth failure locks the code, and the answer says so: until when, whom to ask (not a typo's words).
    error = r.json()["error"]
    assert error["reason"] == "locked" and "利用を停止しています" in error["message"] and "窓口" in error["message"]
    assert error["message"] != SIGNIN_FAILED_MESSAGE and "locked_until" in error
    # The right PIN while locked gets the same lock answer, and still applies nothing.
    right = await client.post("/api/v1/applications", json=application_body(letter), headers=key())
    assert right.status_code == 401 and right.json()["error"]["message"] == error["message"]
    status = await client.post(
        "/api/v1/status",
        json={"municipality_code": code, "access_code": letter.access_code, "pin": "246810"},
    )
    assert status.status_code == 401 and status.json()["error"]["reason"] == "locked"
    # A wrong code (no live letter) keeps the generic answer, however often it is tried.
    unknown = application_body(letter)
    unknown["access_code"] = "ZZZZZZZZZZZZ"
    r_unknown = await client.post("/api/v1/applications", json=unknown, headers=key())
    assert r_unknown.json()["error"] == {"status": 401, "message": SIGNIN_FAILED_MESSAGE}
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        locked = await conn.fetchval(
            "SELECT locked_until > now() + interval '29 minutes' FROM letters WHERE letter_id = $1", letter.letter_id
        )
    assert locked is True
    assert (await counts(app_pool, code, letter.entitlement_id))["apps"] == 0


async def test_an_address_over_the_failure_limit_gets_429_and_writes_nothing(client, app_pool, settings, municipality):
    """The per-address limit still holds now that the batcher checks it for a whole batch at once."""
    from app.intake.signin import _IP_KEY, IP_MAX_FAILURES
    from app.main import arq_redis

    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    redis = arq_redis(settings)
    try:
        await redis.set(_IP_KEY + "127.0.0.1", IP_MAX_FAILURES, ex=60)
        r = await client.post("/api/v1/applications", json=application_body(letter), headers=key())
        assert r.status_code == 429 and "Retry-After" in r.headers
        assert (await counts(app_pool, code, letter.entitlement_id))["apps"] == 0
    finally:
        await redis.delete(_IP_KEY + "127.0.0.1")  # every test comes from this address
        await redis.aclose()
    r = await client.post("/api/v1/applications", json=application_body(letter), headers=key())
    assert r.status_code == 201


async def test_code_of_municipality_a_on_b_fails_like_a_wrong_code(client, app_pool, settings, municipality):
    a, b = await municipality(), await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, a)
    unknown = application_body(letter)
    unknown["access_code"] = "ZZZZZZZZZZZZ"
    on_b = application_body(letter)
    on_b["municipality_code"] = b
    r_unknown = await client.post("/api/v1/applications", json=unknown, headers=key())
    r_b = await client.post("/api/v1/applications", json=on_b, headers=key())
    assert r_unknown.status_code == r_b.status_code == 401
    assert r_unknown.json() == r_b.json()
    assert (await counts(app_pool, a, letter.entitlement_id))["apps"] == 0


async def test_validation_errors_are_a_japanese_machine_readable_list(client, app_pool, settings, municipality):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    body = application_body(letter, holder_kana="山田太郎", account_number="12345678", branch_code="1")
    del body["pin"]
    r = await client.post("/api/v1/applications", json=body, headers=key())
    assert r.status_code == 422
    errors = {tuple(e["loc"]): e for e in r.json()["error"]["errors"]}
    assert ("pin",) in errors and errors[("pin",)]["type"] == "missing"
    assert ("bank", "account_number") in errors and ("bank", "branch_code") in errors
    assert "暗証番号" in errors[("pin",)]["message"]
    # The kana check runs after the shapes are right: fix them and the kanji name is named clearly.
    r = await client.post("/api/v1/applications", json=application_body(letter, holder_kana="山田太郎"), headers=key())
    assert r.status_code == 422
    [err] = r.json()["error"]["errors"]
    assert err["loc"] == ["bank", "holder_kana"] and "漢字" in err["message"] and "山田" not in r.text
    assert (await counts(app_pool, code, letter.entitlement_id))["apps"] == 0


async def test_yucho_kigou_bangou_becomes_branch_and_number(client, app_pool, settings, municipality):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    bank = {"bank_code": "9900", "yucho_kigou": "12340", "yucho_bangou": "12345671", "holder_kana": "ﾔﾏﾀﾞ ﾀﾛｳ"}
    body = {**application_body(letter), "bank": bank}
    r = await client.post("/api/v1/applications", json=body, headers=key())
    assert r.status_code == 201, r.text
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        app = await conn.fetchrow("SELECT * FROM applications WHERE entitlement_id = $1", letter.entitlement_id)
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
    assert (app["bank_code"], app["branch_code"], app["account_type"]) == ("9900", "238", 1)
    assert (
        cipher.decrypt_str("applications", "account_number", app["application_id"], app["account_number_enc"])
        == "1234567"
    )


@pytest.mark.parametrize(
    "raw, headers, status",
    [
        (b"{not json", {"content-type": "application/json"}, 422),
        (b"[1, 2]", {"content-type": "application/json"}, 422),
        (b'{"municipality_code": 5}', {}, 422),
        (b"x" * 100_000, {}, 413),
    ],
)
async def test_hostile_bodies_get_a_clear_answer_never_a_500(client, raw, headers, status):
    r = await client.post("/api/v1/applications", content=raw, headers={**headers, **key()})
    assert r.status_code == status
    assert r.json()["error"]["message"]


async def test_missing_idempotency_key_is_422(client):
    r = await client.post("/api/v1/applications", json={})
    assert r.status_code == 422
    assert r.json()["error"]["errors"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_openapi_document_describes_the_submit_endpoint(client):
    doc = (await client.get("/api/v1/openapi.json")).json()
    post = doc["paths"]["/api/v1/applications"]["post"]
    assert {"201", "409", "422"} <= set(post["responses"])
    assert "bank" in doc["components"]["schemas"]["ApplicationRequest"]["properties"]
    assert "BankDetails" in doc["components"]["schemas"]


async def test_bank_and_branch_type_ahead(client):
    banks = (await client.get("/api/v1/banks", params={"q": "ゆうちょ"})).json()["items"]
    assert banks[0]["code"] == "9900"
    branches = (await client.get("/api/v1/banks/0001/branches", params={"q": "東京"})).json()["items"]
    assert branches and all("東京" in b["name"] for b in branches[:2])
    assert (await client.get("/api/v1/banks/0000/branches")).status_code == 404


@pytest.mark.parametrize(
    "typed, code",
    [
        ("みずほ銀行", "0001"),
        ("ゆうちょ銀行", "9900"),
        ("三井住友銀行", "0009"),
        ("三菱UFJ銀行", "0005"),
        ("PayPay銀行", "0033"),
        ("城南信用金庫", "1344"),
        ("ﾐｽﾞﾎ", "0001"),
    ],
)
async def test_banks_are_found_by_the_name_people_type(client, typed, code):
    """The data abbreviates (みずほ, 城南信金); residents type the full name (issue 18, point 2)."""
    banks = (await client.get("/api/v1/banks", params={"q": typed})).json()["items"]
    assert banks and banks[0]["code"] == code


async def test_pages_link_an_icon_that_exists(client):
    """Issue 18, point 13: no page asks for a missing /favicon.ico."""
    page = await client.get("/")
    assert '<link rel="icon" href="/static/favicon.svg"' in page.text
    icon = await client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")


async def test_security_headers_on_pages_and_api(client):
    for path in ("/", "/api/v1/openapi.json", "/no/such/page"):
        r = await client.get(path)
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"]
    r = await client.get("/no/such/page")
    assert r.status_code == 404 and "見つかりません" in r.text


async def test_status_api_follows_the_application(client, app_pool, settings, municipality):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    creds = {"municipality_code": code, "access_code": letter.access_code, "pin": letter.pin}
    assert (await client.post("/api/v1/status", json=creds)).json()["status"] == "not_applied"
    await client.post("/api/v1/applications", json=application_body(letter), headers=key())
    s = (await client.post("/api/v1/status", json=creds)).json()
    assert s["status"] == "received" and s["label"] == "受付済み"


async def test_cli_refuses_to_purge_idempotency_keys_younger_than_seven_days(subprocess_env, municipality):
    from tests.conftest import run_cli

    code = await municipality()
    refused = run_cli(subprocess_env, "intake", "purge-idempotency", code, "--older-than-days", "3")
    assert refused.returncode == 2 and "7 days" in refused.stderr
    ok = run_cli(subprocess_env, "intake", "purge-idempotency", code)
    assert ok.returncode == 0, ok.stderr


async def test_a_burst_of_guesses_in_one_batch_gets_five_checks_not_one_each(app_pool, settings, municipality):
    """The batcher checks many submissions at once: the lockout must count guesses within the batch, so a
    correct PIN after five wrong ones in the same batch is refused and the code ends up locked."""
    from app.intake.signin import authenticate, municipality_keys

    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code, pin="246810")
    attempts = [(letter.access_code, f"{n:06d}") for n in range(12)] + [(letter.access_code, "246810")]
    async with tenant_transaction(app_pool, code) as conn:
        keys = await municipality_keys(conn, settings.master_key_bytes, code)
        results = await authenticate(conn, keys, code, attempts)
    assert results == [None] * len(attempts)
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        locked = await conn.fetchval(
            "SELECT locked_until > now() + interval '29 minutes' FROM letters WHERE letter_id = $1", letter.letter_id
        )
    assert locked is True


async def test_account_change_by_api_follows_the_one_rule(client, app_pool, settings, municipality):
    """POST /api/v1/account (app/intake/changes.py): nothing before applying, a change, a repeat that changes
    nothing, the application verified again on the new account, and a wrong PIN is a sign-in failure."""
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    new_bank = application_body(letter, bank_code="0005", account_number="7654321")
    before = await client.post("/api/v1/account", json=new_bank)
    assert before.status_code == 404 and before.json()["error"]["reason"] == "none"
    created = await client.post("/api/v1/applications", json=application_body(letter), headers=key())
    assert created.status_code == 201
    changed = await client.post("/api/v1/account", json=new_bank)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["result"] == "changed" and body["receipt_no"] == created.json()["receipt_no"]
    assert "7654321" not in changed.text  # the number is not echoed back
    again = await client.post("/api/v1/account", json=new_bank)
    assert again.status_code == 200 and again.json()["result"] == "same"
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        app = await conn.fetchrow(
            "SELECT status, bank_code FROM applications WHERE entitlement_id = $1", letter.entitlement_id
        )
        changes = await conn.fetchval("SELECT count(*) FROM application_account_changes")
    assert (app["status"], app["bank_code"], changes) == ("received", "0005", 1)
    wrong = dict(new_bank, pin="000000")
    r = await client.post("/api/v1/account", json=wrong)
    assert r.status_code == 401 and r.json()["error"]["message"] == SIGNIN_FAILED_MESSAGE
    bad = await client.post("/api/v1/account", json=application_body(letter, bank_code="12"))
    assert bad.status_code == 422 and bad.json()["error"]["errors"][0]["loc"] == ["bank", "bank_code"]

"""口座変更の届出 (app/intake/changes.py, migration 0022), on real PostgreSQL, and its pages."""

from __future__ import annotations

import re

import asyncpg
import httpx
import pytest

from app.intake.changes import account_changes, assess_change, change_account
from app.intake.claims import submit_application
from app.intake.forms import parse_bank
from app.intake.signin import municipality_keys
from app.outbox import verify_job_id
from app.registry.verify import verify_applications
from app.staff import review
from app.tenancy.transaction import tenant_transaction
from payouts.accounts import account_key
from payouts.payments import create_payments_for_program
from tests.intake.helpers import bank_body, make_letters
from tests.intake.identify_world import csrf

OLD = parse_bank(bank_body())  # ﾔﾏﾀﾞ ﾀﾛｳ, the head's name
NEW = parse_bank(bank_body(bank_code="0005", branch_code="001", account_number="7654321"))


async def _applied_and_verified(app_pool, settings, code):
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    async with tenant_transaction(app_pool, code) as conn:
        outcome = await submit_application(conn, settings, code, letter.entitlement_id, OLD, "online")
        keys = await municipality_keys(conn, settings.master_key_bytes, code)
        [decision] = await verify_applications(conn, keys.cipher, code, [outcome.application_id])
    assert decision.status == "verified"
    return letter, outcome.application_id, keys


async def _application(conn, app_id):
    return await conn.fetchrow("SELECT * FROM applications WHERE application_id = $1", app_id)


async def test_a_change_replaces_the_account_cancels_the_ready_payment_and_verifies_again(
    app_pool, settings, municipality
):
    code = await municipality()
    letter, app_id, keys = await _applied_and_verified(app_pool, settings, code)
    cipher = keys.cipher
    async with tenant_transaction(app_pool, code) as conn:
        # A draft created the payment from the old account and was then cancelled: the payment is 'ready'.
        assert await create_payments_for_program(conn, cipher, code, letter.program_id) == 1
        assert (await assess_change(conn, keys.cipher, code, letter.entitlement_id, OLD)).kind == "same"
        assert (await assess_change(conn, keys.cipher, code, letter.entitlement_id, NEW)).kind == "changeable"
        change = await change_account(conn, keys.cipher, code, letter.entitlement_id, NEW, actor="resident:letter:1")
        assert change.kind == "changed" and change.application_id == app_id
        # The same account again (a double submit) changes nothing.
        assert (await change_account(conn, keys.cipher, code, letter.entitlement_id, NEW, actor="x")).kind == "same"

    async with tenant_transaction(app_pool, code) as conn:
        app = await _application(conn, app_id)
        assert (app["status"], app["reason_codes"], app["decided_at"]) == ("received", [], None)
        assert (app["bank_code"], app["branch_code"]) == ("0005", "001")
        assert cipher.decrypt_str("applications", "account_number", app_id, app["account_number_enc"]) == "7654321"
        assert await conn.fetchval(
            "SELECT account_key FROM application_account_keys WHERE application_id = $1", app_id
        ) == (account_key(cipher, "0005", "001", 1, "7654321"))
        assert [r["status"] for r in await conn.fetch("SELECT status FROM payments ORDER BY payment_id")] == [
            "cancelled"
        ]
        [record] = await account_changes(conn, code, app_id)
        assert (record.changed_by, record.channel, record.old_bank_code, record.new_bank_code) == (
            "resident:letter:1",
            "online",
            "0001",
            "0005",
        )
        old = await conn.fetchval(
            "SELECT old_account_number_enc FROM application_account_changes WHERE change_id = $1", record.change_id
        )
        assert (
            cipher.decrypt_str("application_account_changes", "old_account_number", record.change_id, old) == "1234567"
        )
        due = await conn.fetchrow(
            "SELECT done_at, enqueued_at, args FROM outbox WHERE job_id = $1", verify_job_id(code, app_id)
        )
        assert due["done_at"] is None and due["enqueued_at"] is None
        audit = await conn.fetchrow(
            "SELECT actor_label, object_id FROM audit_log WHERE action = 'application.account_change'"
        )
        assert (audit["actor_label"], audit["object_id"]) == ("resident:letter:1", str(app_id))

        # Staff see it on the application (app/staff/review.py's summary feeds the review page).
        seen = await review.summary(conn, code, app_id)
        assert seen["account_changes"] == 1 and seen["account_changed_at"] == record.changed_at

        # Verification decides it again, and the next draft pays the new account.
        [decision] = await verify_applications(conn, cipher, code, [app_id])
        assert decision.status == "verified"
        assert await create_payments_for_program(conn, cipher, code, letter.program_id) == 1
        live = await conn.fetchval("SELECT account_key FROM payments WHERE status = 'ready'")
        assert live == account_key(cipher, "0005", "001", 1, "7654321")


async def test_the_holder_check_sees_the_new_account(app_pool, settings, municipality):
    code = await municipality()
    letter, app_id, keys = await _applied_and_verified(app_pool, settings, code)
    stranger = parse_bank(bank_body(account_number="7654321", holder_kana="スズキ イチロウ"))
    async with tenant_transaction(app_pool, code) as conn:
        assert (
            await change_account(conn, keys.cipher, code, letter.entitlement_id, stranger, actor="t")
        ).kind == "changed"
        [decision] = await verify_applications(conn, keys.cipher, code, [app_id])
    assert decision.status == "needs_review" and "kana_mismatch" in decision.reasons


async def test_no_change_once_a_payment_left_the_ready_state_and_the_database_refuses_it_too(
    app_pool, settings, municipality
):
    code = await municipality()
    letter, app_id, keys = await _applied_and_verified(app_pool, settings, code)
    async with tenant_transaction(app_pool, code) as conn:
        await create_payments_for_program(conn, keys.cipher, code, letter.program_id)
        # The simplest state beyond a batch that needs no batch row: the transfer came back.
        await conn.execute("UPDATE payments SET status = 'returned', return_reason = 'test'")
        assert (await assess_change(conn, keys.cipher, code, letter.entitlement_id, NEW)).kind == "too_late"
        assert (await change_account(conn, keys.cipher, code, letter.entitlement_id, NEW, actor="t")).kind == "too_late"
        assert await conn.fetchval("SELECT count(*) FROM application_account_changes") == 0
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(
                "INSERT INTO application_account_changes (municipality_code, application_id, entitlement_id,"
                " changed_by, channel, old_bank_code, old_branch_code, old_account_type, old_account_number_enc,"
                " old_holder_kana_enc, new_bank_code, new_branch_code)"
                " VALUES ($1, $2, $3, 't', 'online', '0001', '001', 1, '\\x00', '\\x00', '0005', '001')",
                code,
                app_id,
                letter.entitlement_id,
            )
    assert refused.value.constraint_name == "application_account_changes_before_batch"


async def test_without_an_application_there_is_nothing_to_change(app_pool, settings, municipality):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    async with tenant_transaction(app_pool, code) as conn:
        keys = await municipality_keys(conn, settings.master_key_bytes, code)
        assert (await change_account(conn, keys.cipher, code, letter.entitlement_id, NEW, actor="t")).kind == "none"


# ---- pages ---------------------------------------------------------------------------------------


async def _sign_in(client, letter):
    page = await client.get(f"/m/{letter.code}/signin")
    r = await client.post(
        f"/m/{letter.code}/signin",
        data={"csrf_token": csrf(page.text), "access_code": letter.access_code, "pin": letter.pin},
    )
    assert r.status_code == 303


async def _bank(client, letter, **fields):
    base = f"/m/{letter.code}"
    bank = await client.get(base + "/bank")
    data = {"csrf_token": csrf(bank.text), "account_type": "1", **bank_body(**fields)}
    data["account_type"] = str(data["account_type"])
    r = await client.post(base + "/bank", data=data)
    assert r.status_code == 303 and r.headers["location"] == base + "/confirm", r.text[:500]
    return await client.get(base + "/confirm")


async def test_a_different_account_after_applying_is_offered_as_a_change_not_dropped(
    app_pool, settings, municipality, live_server
):
    code = await municipality()
    letter, app_id, _ = await _applied_and_verified(app_pool, settings, code)
    base = f"/m/{code}"
    async with httpx.AsyncClient(base_url=live_server, follow_redirects=False, timeout=30) as client:
        await _sign_in(client, letter)
        same = await _bank(client, letter)
        assert same.headers["location"] == base + "/receipt"  # the account on file: just the receipt

        confirm = await _bank(client, letter, bank_code="0005", account_number="7654321")
        assert confirm.headers["location"] == base + "/account-change"
        page = await client.get(base + "/account-change")
        assert page.status_code == 200
        assert "すでに申請を受け付けています" in page.text and "口座変更を届け出る" in page.text
        assert "7654321" in page.text and "申請を受け付けました" not in page.text

        r = await client.post(base + "/account-change", data={"csrf_token": csrf(page.text)})
        assert r.status_code == 303 and r.headers["location"] == base + "/account-change"
        done = await client.get(base + "/account-change")
        assert "口座変更の届出を受け付けました" in done.text
        receipt = re.search(r"受付番号 <strong>([0-9-]+)</strong>", done.text)
        assert receipt is not None
        status = await client.get(base + "/status")
        assert "受付済み" in status.text
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        app = await _application(conn, app_id)
        assert (app["bank_code"], app["status"]) == ("0005", "received")
        assert await conn.fetchval("SELECT changed_by FROM application_account_changes") == (
            f"resident:letter:{letter.letter_id}"
        )


async def test_the_page_says_when_the_account_can_no_longer_change(app_pool, settings, municipality, live_server):
    code = await municipality()
    letter, app_id, keys = await _applied_and_verified(app_pool, settings, code)
    async with tenant_transaction(app_pool, code) as conn:
        await create_payments_for_program(conn, keys.cipher, code, letter.program_id)
        await conn.execute("UPDATE payments SET status = 'returned', return_reason = 'test'")
    base = f"/m/{code}"
    async with httpx.AsyncClient(base_url=live_server, follow_redirects=False, timeout=30) as client:
        await _sign_in(client, letter)
        await _bank(client, letter, account_number="7654321")
        page = await client.get(base + "/account-change")
        assert "オンラインでは口座を変更できません" in page.text and "口座変更を届け出る" not in page.text
        token = csrf((await client.get(base + "/bank")).text)  # a POST anyway (an old tab): refused, said why
        r = await client.post(base + "/account-change", data={"csrf_token": token})
        assert r.status_code == 409 and "オンラインでは口座を変更できません" in r.text
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        assert (await _application(conn, app_id))["bank_code"] == "0001"

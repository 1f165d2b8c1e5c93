"""DV evacuees across two municipalities (app/registry/dv.py, migration 0026): the registered household is
reduced before any payment, the evacuees are paid where they live only after that, a drafted payment is held,
and neither side learns the other's records (isolation tests of dv_match, dv_requests, dv_exclusions)."""

from __future__ import annotations

import datetime as dt
import json

import asyncpg
import pytest

from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.intake import status as resident_status
from app.intake.forms import parse_bank
from app.registry import duplicates, dv
from app.registry.eligibility import determine_eligibility
from app.registry.imports import import_residents
from app.registry.programs import create_program, parse_program
from app.staff import review
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from payouts import batches
from payouts.payments import ELIGIBLE, create_payments_for_program, insert_payment
from tests.registry.helpers import person, residents_csv
from tests.registry.test_duplicates import new_scheme
from tests.staff.conftest import ready_staff

D = dt.date(2026, 4, 1)
ADDRESS = "避難先市緑町9-9-9 コーポ避難202"


def household() -> list[dict]:
    """乙町's household on 基準日: the head, the spouse who fled, and their child who fled with her."""
    head = person(
        family_kana="ヤマダ", given_kana="タロウ", family_name="山田", given_name="太郎", birth_date="1980-05-05"
    )
    hh = head["household_no"]
    spouse = person(
        family_kana="ヤマダ",
        given_kana="ハナコ",
        family_name="山田",
        given_name="花子",
        birth_date="1983-03-03",
        relationship="妻",
        household_no=hh,
        sex="2",
    )
    child = person(
        family_kana="ヤマダ",
        given_kana="ユキ",
        family_name="山田",
        given_name="雪",
        birth_date="2018-08-08",
        moved_in_on="2018-08-08",
        relationship="子",
        household_no=hh,
        sex="2",
    )
    return [head, spouse, child]


async def scheme_program(db, code: str, rows: list[dict], scheme: str, key: bytes) -> int:
    """Residents, a per-person program of `scheme` (adults ¥30,000, children ¥20,000), eligibility and the
    duplicate hashes, as a municipality runs a national benefit."""
    async with tenant_transaction(db, code) as conn:
        await import_residents(conn, code, residents_csv(rows))
        program_id = await create_program(
            conn,
            code,
            parse_program(
                dict(
                    name="定額給付金",
                    base_date=D,
                    unit="person",
                    amount_yen=30000,
                    child_amount_yen=20000,
                    payment_mode="letter",
                )
            ),
        )
        await duplicates.set_scheme(conn, code, program_id, scheme)
        await determine_eligibility(conn, code, program_id)
        await duplicates.contribute(conn, key, code, program_id)
    return program_id


async def reviewer(db, settings, code: str, login: str = "rev", roles=("reviewer",)):
    async with tenant_transaction(db, code) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        staff, _ = await ready_staff(conn, cipher, code, login, list(roles))
    return staff


def request_form(program_id: int, registered: str, spouse: dict, child: dict, **overrides) -> dict:
    data = {
        "program_id": str(program_id),
        "registered_code": registered,
        "evidence": "protection_order",
        "evidence_issued_on": "2026-03-01",
        "address": ADDRESS,
        "contact": "090-0000-0000",
        "p0_name": "山田 花子",
        "p0_kana": "ヤマダ ハナコ",
        "p0_birth_date": spouse["birth_date"],
        "p0_resident_code": "",
        "p1_name": "山田 雪",
        "p1_kana": "やまだ ゆき",
        "p1_birth_date": child["birth_date"],
        "p1_resident_code": child["resident_code"],
    }
    return data | overrides


ACCOUNT = {
    "bank_code": "0001",
    "branch_code": "001",
    "account_type": 1,
    "account_number": "7654321",
    "holder_kana": "ﾔﾏﾀﾞ ﾊﾅｺ",
}


async def file(db, settings, code, staff, data) -> dv.Filed:
    async with tenant_transaction(db, code) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        return await dv.file_request(
            conn, settings.duplicate_key_bytes, cipher, code, staff, dv.parse(data), parse_bank(ACCOUNT)
        )


async def two_municipalities(app_pool, municipality, settings):
    key = settings.duplicate_key_bytes
    scheme = new_scheme()
    a, b = await municipality("避難先市"), await municipality("乙町")
    rows = household()
    pa = await scheme_program(app_pool, a, [person(birth_date="1970-01-01")], scheme, key)
    pb = await scheme_program(app_pool, b, rows + [person(birth_date="1990-01-01")], scheme, key)
    return a, b, pa, pb, rows


async def test_the_registered_household_is_reduced_before_the_evacuees_are_paid(app_pool, municipality, settings):
    key = settings.duplicate_key_bytes
    a, b, pa, pb, (head, spouse, child) = await two_municipalities(app_pool, municipality, settings)
    rev_a, rev_b = await reviewer(app_pool, settings, a), await reviewer(app_pool, settings, b)
    async with tenant_transaction(app_pool, b, readonly=True) as conn:
        ent_b = await conn.fetchrow("SELECT * FROM entitlements WHERE head_resident_code = $1", head["resident_code"])
    assert (ent_b["members_counted"], ent_b["amount_yen"]) == (3, 80000)

    filed = await file(app_pool, settings, a, rev_a, request_form(pa, b, spouse, child))
    assert filed.matched and filed.amount_yen == 50000 and filed.reference.startswith("V-")

    # Both sides are held at once: B's household (any payment is refused), and A's own entitlement.
    async with tenant_transaction(app_pool, b, readonly=True) as conn:
        assert [r["entitlement_id"] for r in await conn.fetch("SELECT * FROM dv_holds")] == [ent_b["entitlement_id"]]
    async with tenant_transaction(app_pool, a, readonly=True) as conn:
        [held] = await conn.fetch("SELECT * FROM dv_holds")
        ent_a = await conn.fetchrow("SELECT * FROM entitlements WHERE entitlement_id = $1", held["entitlement_id"])
        app_a = await conn.fetchrow("SELECT * FROM applications WHERE entitlement_id = $1", held["entitlement_id"])
    assert ent_a["dv_reference"] == filed.reference and ent_a["amount_yen"] == 50000 and ent_a["members_counted"] == 2
    assert app_a["status"] == "needs_review" and app_a["reason_codes"] == ["dv_evacuee"]
    with pytest.raises(asyncpg.CheckViolationError, match="waits for a DV request"):
        async with tenant_transaction(app_pool, b) as conn:
            cipher = await load_field_cipher(conn, settings.master_key_bytes, b)
            await insert_payment(
                conn,
                cipher,
                b,
                entitlement_id=ent_b["entitlement_id"],
                application_id=None,
                amount_yen=80000,
                bank_code="0001",
                branch_code="001",
                account_type=1,
                account_number="1111111",
                holder_kana="ﾔﾏﾀﾞ ﾀﾛｳ",
            )

    # B's reviewer finds its own members by their hashes and takes them out.
    async with tenant_transaction(app_pool, b) as conn:
        [row] = await dv.incoming(conn, b)
        assert row["reference"] == filed.reference and row["persons"] == 2 and row["state"] == "filed"
        detail = await dv.incoming_detail(conn, key, b, rev_b, filed.reference)
        assert detail["complete"]
        found = {f["member"]["resident_code"]: f for m in detail["matches"] for f in m["members"]}
        assert set(found) == {spouse["resident_code"], child["resident_code"]}
        assert found[child["resident_code"]]["share_yen"] == 20000
        taken = await dv.exclude(conn, key, b, rev_b, filed.reference)
    assert taken == {ent_b["entitlement_id"]: 50000}
    async with tenant_transaction(app_pool, b, readonly=True) as conn:
        after = await conn.fetchrow("SELECT * FROM entitlements WHERE entitlement_id = $1", ent_b["entitlement_id"])
        assert await conn.fetchval("SELECT count(*) FROM dv_holds") == 0
        assert await conn.fetchval("SELECT count(*) FROM dv_exclusions") == 2
    assert (after["members_counted"], after["amount_yen"], after["status"]) == (1, 30000, "open")

    # A may now pay the evacuees, after its own review.
    async with tenant_transaction(app_pool, a) as conn:
        [mine] = await dv.filed(conn, a)
        assert mine["state"] == "excluded" and mine["registered_name"] == "乙町"
        assert await conn.fetchval("SELECT count(*) FROM dv_holds") == 0
        cipher = await load_field_cipher(conn, settings.master_key_bytes, a)
        await review.decide(conn, cipher, a, rev_a, app_a["application_id"], "approve", "")
        assert await create_payments_for_program(conn, cipher, a, pa) == 1
        paid = await conn.fetchval("SELECT amount_yen FROM payments WHERE entitlement_id = $1", ent_a["entitlement_id"])
        assert paid == 50000


async def test_neither_side_learns_the_others_records(app_pool, municipality, settings):
    """The isolation of the cross-municipality record: B sees a reference, a count and its own members; not
    who filed, nor the address. A sees B's answer only. A third municipality sees nothing. The app role has
    no privilege on dv_match. The 世帯主's status page shows the amount as it now is, nothing of the 申出."""
    key = settings.duplicate_key_bytes
    a, b, pa, pb, (head, spouse, child) = await two_municipalities(app_pool, municipality, settings)
    c = await municipality("丙村")
    rev_a, rev_b = await reviewer(app_pool, settings, a), await reviewer(app_pool, settings, b)
    filed = await file(app_pool, settings, a, rev_a, request_form(pa, b, spouse, child))

    async with tenant_transaction(app_pool, b) as conn:
        for statement in ("SELECT * FROM dv_match.requests", "SELECT * FROM dv_match.digests"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():
                    await conn.fetch(statement)
        assert await conn.fetchval("SELECT count(*) FROM dv_requests") == 0  # A's tenant row
        assert await conn.fetchval("SELECT count(*) FROM dv_filed") == 0
        incoming = await conn.fetch("SELECT * FROM dv_incoming")
        assert len(incoming) == 1
        seen = json.dumps([{k: v for k, v in r.items() if k != "digests"} for r in incoming], default=str)
        assert a not in seen and "避難先市" not in seen and ADDRESS not in seen
        assert "filed_code" not in incoming[0].keys()
        await dv.incoming_detail(conn, key, b, rev_b, filed.reference)
        await dv.exclude(conn, key, b, rev_b, filed.reference)
        audit_b = await conn.fetch(
            "SELECT action, details::text AS details FROM audit_log WHERE object_type = 'dv_request'"
        )
        ent_b = await conn.fetchval(
            "SELECT entitlement_id FROM entitlements WHERE head_resident_code = $1", head["resident_code"]
        )
        view = await resident_status.household_view(conn, b, ent_b)
    assert {r["action"] for r in audit_b} == {"personal_data.view", "dv.exclude"}
    assert not any(a in r["details"] or spouse["resident_code"] in r["details"] for r in audit_b)
    page = json.dumps([dict(x) if hasattr(x, "keys") else x for x in view], default=str, ensure_ascii=False)
    assert filed.reference not in page and "避難先市" not in page and ADDRESS not in page and "DV" not in page
    assert view[0]["amount_yen"] == 30000

    async with tenant_transaction(app_pool, a) as conn:
        [row] = await conn.fetch("SELECT * FROM dv_filed")
        assert set(row.keys()) == {
            "municipality_code",
            "reference",
            "registered_code",
            "entitlement_id",
            "persons",
            "state",
            "refusal",
            "answered_at",
            "filed_at",
            "matched",
        }
        assert await conn.fetchval("SELECT count(*) FROM dv_incoming") == 0
        assert await conn.fetchval("SELECT count(*) FROM dv_exclusions") == 0  # B's tenant rows
        stored = await conn.fetchrow("SELECT * FROM dv_requests")
        assert ADDRESS.encode() not in bytes(stored["details_enc"]) and "花子".encode() not in bytes(
            stored["details_enc"]
        )
        [audit_a] = await conn.fetch("SELECT action, details::text AS details FROM audit_log WHERE action = 'dv.file'")
        assert "花子" not in audit_a["details"] and ADDRESS not in audit_a["details"]
        cipher = await load_field_cipher(conn, settings.master_key_bytes, a)
        shown = await dv.filed_detail(conn, cipher, a, rev_a, filed.reference)
        assert shown["details"]["address"] == ADDRESS
    async with tenant_transaction(app_pool, c, readonly=True) as conn:
        for relation in ("dv_filed", "dv_incoming", "dv_holds", "dv_requests", "dv_exclusions"):
            assert await conn.fetchval(f"SELECT count(*) FROM {relation}") == 0
    async with tenant_transaction(app_pool, b) as conn:  # B cannot open A's view of the request
        with pytest.raises(NotFound):
            await dv.filed_detail(
                conn, await load_field_cipher(conn, settings.master_key_bytes, b), b, rev_b, filed.reference
            )


async def test_a_payment_drafted_before_the_request_is_held(app_pool, municipality, settings):
    """B drafted the household's payment before the 申出: approval is refused while the request is open, the
    exclusion waits for the draft to be cancelled, and the next payment is the reduced amount."""
    key = settings.duplicate_key_bytes
    a, b, pa, pb, (head, spouse, child) = await two_municipalities(app_pool, municipality, settings)
    rev_a, rev_b = await reviewer(app_pool, settings, a), await reviewer(app_pool, settings, b)
    async with tenant_transaction(app_pool, b) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, b)
        drafter, _ = await ready_staff(conn, cipher, b, "drafter", ["drafter"])
        approver, _ = await ready_staff(conn, cipher, b, "approver", ["approver"])
        ent_b = await conn.fetchval(
            "SELECT entitlement_id FROM entitlements WHERE head_resident_code = $1", head["resident_code"]
        )
        batch = await conn.fetchval(
            "INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by, record_count,"
            " total_yen, status) VALUES ($1, $2, current_date + 7, $3, 1, 80000, 'preparing') RETURNING batch_id",
            b,
            pb,
            drafter.staff_id,
        )
        payment = await insert_payment(
            conn,
            cipher,
            b,
            entitlement_id=ent_b,
            application_id=None,
            amount_yen=80000,
            bank_code="0001",
            branch_code="001",
            account_type=1,
            account_number="1111111",
            holder_kana="ﾔﾏﾀﾞ ﾀﾛｳ",
        )
        await conn.execute(
            "UPDATE payments SET status = 'in_batch', batch_id = $2 WHERE payment_id = $1", payment, batch
        )
        await conn.execute(
            "UPDATE payout_batches SET status = 'draft', plaintext_sha256 = $2 WHERE batch_id = $1", batch, "a" * 64
        )
    filed = await file(app_pool, settings, a, rev_a, request_form(pa, b, spouse, child))
    async with tenant_transaction(app_pool, b) as conn:
        with pytest.raises(Conflict, match="DV等避難者の申出への回答を待つ"):
            await batches.approve_batch(conn, settings, b, approver, batch, "a" * 64)
    with pytest.raises(asyncpg.CheckViolationError, match="waiting for a DV request"):
        async with tenant_transaction(app_pool, b) as conn:
            await conn.execute(batches.APPROVE, b, batch, approver.staff_id, "a" * 64)
    with pytest.raises(Conflict, match="起案を取り消して"):
        async with tenant_transaction(app_pool, b) as conn:
            await dv.exclude(conn, key, b, rev_b, filed.reference)
    async with tenant_transaction(app_pool, b) as conn:
        await batches.cancel_batch(conn, b, drafter, batch)
        await dv.exclude(conn, key, b, rev_b, filed.reference)
        assert await conn.fetchval("SELECT status FROM payments WHERE payment_id = $1", payment) == "cancelled"
        new = await insert_payment(
            conn,
            cipher,
            b,
            entitlement_id=ent_b,
            application_id=None,
            amount_yen=30000,
            bank_code="0001",
            branch_code="001",
            account_type=1,
            account_number="1111111",
            holder_kana="ﾔﾏﾀﾞ ﾀﾛｳ",
        )
        assert new > payment
    with pytest.raises(asyncpg.CheckViolationError, match="above its entitlement"):
        async with tenant_transaction(app_pool, b) as conn:
            await conn.execute("UPDATE payments SET amount_yen = 80000 WHERE payment_id = $1", new)


async def test_a_paid_household_or_an_unknown_person_is_answered_and_a_stays_held(app_pool, municipality, settings):
    key = settings.duplicate_key_bytes
    a, b, pa, pb, (head, spouse, child) = await two_municipalities(app_pool, municipality, settings)
    rev_a, rev_b = await reviewer(app_pool, settings, a), await reviewer(app_pool, settings, b)
    # Someone B's registry does not have: no match, B cannot exclude, answers not_found.
    stranger = request_form(
        pa, b, spouse, child, p0_kana="ダレモ イナイ", p1_name="", p1_kana="", p1_birth_date="", p1_resident_code=""
    )
    filed = await file(app_pool, settings, a, rev_a, stranger)
    assert not filed.matched
    async with tenant_transaction(app_pool, b) as conn:
        detail = await dv.incoming_detail(conn, key, b, rev_b, filed.reference)
        assert detail["matches"] == [] and not detail["complete"]
    with pytest.raises(Conflict):
        async with tenant_transaction(app_pool, b) as conn:
            await dv.exclude(conn, key, b, rev_b, filed.reference)
    async with tenant_transaction(app_pool, b) as conn:
        await dv.refuse(conn, b, rev_b, filed.reference, "not_found")
    with pytest.raises(Conflict, match="既に回答"):
        async with tenant_transaction(app_pool, b) as conn:
            await dv.refuse(conn, b, rev_b, filed.reference, "already_paid")
    async with tenant_transaction(app_pool, a, readonly=True) as conn:
        [row] = await dv.filed(conn, a)
        assert (row["state"], row["refusal"]) == ("refused", "not_found")
        assert await conn.fetchval("SELECT count(*) FROM dv_holds") == 1  # A never pays a refused request
    # An answer for another municipality's request is not found.
    with pytest.raises(NotFound, match="参照番号"):
        async with tenant_transaction(app_pool, a) as conn:
            await dv.refuse(conn, a, rev_a, filed.reference, "not_found")


async def test_bad_requests_are_refused_with_field_names_and_write_nothing(app_pool, municipality, settings):
    a, b, pa, pb, (head, spouse, child) = await two_municipalities(app_pool, municipality, settings)
    other = await municipality("無関係町")  # runs no program of the scheme
    rev_a = await reviewer(app_pool, settings, a)
    with pytest.raises(InvalidInput) as caught:
        dv.parse({"program_id": "x", "registered_code": "131017", "p0_kana": "abc"})
    for field in ("給付", "地方公共団体コード", "書類", "住所", "申出者の氏名", "申出者の氏名カナ", "申出者の生年月日"):
        assert field in caught.value.message
    for overrides, message in (
        ({"registered_code": other}, "この全国事業の給付を照合できる状態にしていません"),
        ({"registered_code": a}, "当団体"),
        ({"p1_birth_date": "2099-01-01"}, "同伴者1の生年月日"),
    ):
        with pytest.raises(InvalidInput, match=message):
            await file(app_pool, settings, a, rev_a, request_form(pa, b, spouse, child, **overrides))
    async with tenant_transaction(app_pool, a, readonly=True) as conn:
        assert await conn.fetchval("SELECT count(*) FROM dv_requests") == 0
        assert await conn.fetchval("SELECT count(*) FROM entitlements WHERE dv_reference IS NOT NULL") == 0
        assert await conn.fetchval("SELECT count(*) FROM dv_filed") == 0
    # Only a reviewer files; the ELIGIBLE query of the drafts leaves a held entitlement out.
    drafter = await reviewer(app_pool, settings, a, "drafter", ("drafter",))
    with pytest.raises(Forbidden, match="審査"):
        await file(app_pool, settings, a, drafter, request_form(pa, b, spouse, child))
    assert "dv_holds" in ELIGIBLE


def test_shares_follow_the_programs_ages():
    program = {
        "base_date": D,
        "min_age": None,
        "max_age": None,
        "child_age_under": 18,
        "unit_yen": 30000,
        "child_amount_yen": 20000,
    }
    assert dv.share(program, dt.date(1980, 1, 1)) == (True, 30000)
    assert dv.share(program, dt.date(2010, 1, 1)) == (True, 20000)
    assert dv.share(program, D + dt.timedelta(days=1)) == (False, 0)  # born after 基準日
    # 18 on 基準日 (the birthday's eve counts) is an adult; one day younger is a child.
    assert dv.share(program, dt.date(2008, 4, 2)) == (True, 30000)
    assert dv.share(program, dt.date(2008, 4, 3)) == (True, 20000)
    assert dv.share(program | {"min_age": 20}, dt.date(2008, 4, 2)) == (False, 0)


async def test_a_request_filed_after_approval_stops_the_release_until_answered(app_pool, municipality, settings):
    """B approved the household's batch before the 申出: its release job seals nothing while the request is
    open (payouts/holds.batch_hold); B cannot exclude from an approved file and answers 'already paid', and A
    then never pays the evacuees."""
    key = settings.duplicate_key_bytes
    a, b, pa, pb, (head, spouse, child) = await two_municipalities(app_pool, municipality, settings)
    rev_a, rev_b = await reviewer(app_pool, settings, a), await reviewer(app_pool, settings, b)
    async with tenant_transaction(app_pool, b) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, b)
        drafter, _ = await ready_staff(conn, cipher, b, "drafter", ["drafter"])
        approver, _ = await ready_staff(conn, cipher, b, "approver", ["approver"])
        ent_b = await conn.fetchval(
            "SELECT entitlement_id FROM entitlements WHERE head_resident_code = $1", head["resident_code"]
        )
        batch = await conn.fetchval(
            "INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by, record_count,"
            " total_yen, status) VALUES ($1, $2, current_date + 7, $3, 1, 80000, 'preparing') RETURNING batch_id",
            b,
            pb,
            drafter.staff_id,
        )
        payment = await insert_payment(
            conn,
            cipher,
            b,
            entitlement_id=ent_b,
            application_id=None,
            amount_yen=80000,
            bank_code="0001",
            branch_code="001",
            account_type=1,
            account_number="1111111",
            holder_kana="ﾔﾏﾀﾞ ﾀﾛｳ",
        )
        await conn.execute(
            "UPDATE payments SET status = 'in_batch', batch_id = $2 WHERE payment_id = $1", payment, batch
        )
        await conn.execute(
            "UPDATE payout_batches SET status = 'draft', plaintext_sha256 = $2 WHERE batch_id = $1", batch, "a" * 64
        )
        await conn.execute(batches.APPROVE, b, batch, approver.staff_id, "a" * 64)
        await conn.execute(
            "UPDATE payout_batches SET release_attempt = 1, release_requested_at = now(), release_requested_by = $2"
            " WHERE batch_id = $1",
            batch,
            approver.staff_id,
        )
    filed = await file(app_pool, settings, a, rev_a, request_form(pa, b, spouse, child))
    assert await batches.perform_release(app_pool, settings, b, batch, 1) == "refused: hold"
    async with tenant_transaction(app_pool, b, readonly=True) as conn:
        row = await conn.fetchrow("SELECT status, release_error FROM payout_batches WHERE batch_id = $1", batch)
    assert row["status"] == "approved" and "DV等避難者の申出" in row["release_error"]
    with pytest.raises(Conflict, match="支給済み"):
        async with tenant_transaction(app_pool, b) as conn:
            await dv.exclude(conn, key, b, rev_b, filed.reference)
    async with tenant_transaction(app_pool, b) as conn:
        await dv.refuse(conn, b, rev_b, filed.reference, "already_paid")
        assert await conn.fetchval("SELECT count(*) FROM dv_holds") == 0  # B's file may go now
    async with tenant_transaction(app_pool, a, readonly=True) as conn:
        [mine] = await dv.filed(conn, a)
        assert (mine["state"], mine["refusal"]) == ("refused", "already_paid")
        assert await conn.fetchval("SELECT count(*) FROM dv_holds") == 1


async def test_the_console_page_refuses_bad_input_in_japanese_and_keeps_it(app_pool, municipality, settings):
    from starlette.testclient import TestClient

    from app.main import create_app
    from tests.hostile.helpers import staff_signed_in

    a, b, pa, pb, (head, spouse, child) = await two_municipalities(app_pool, municipality, settings)
    rev_a = await reviewer(app_pool, settings, a)
    drafter = await reviewer(app_pool, settings, a, "drafter", ("drafter",))
    with TestClient(create_app(settings), follow_redirects=False) as client:
        await staff_signed_in(client, app_pool, a, drafter.staff_id)
        assert client.get("/staff/dv").status_code == 403
        token = await staff_signed_in(client, app_pool, a, rev_a.staff_id)
        assert client.get("/staff/dv?incoming=not-a-reference").status_code == 404
        data = request_form(pa, b, spouse, child, address="", p0_kana="hanako") | ACCOUNT | {"csrf_token": token}
        refused = client.post("/staff/dv/file", data={k: str(v) for k, v in data.items()})
        assert refused.status_code == 422
        assert "現にお住まいの住所" in refused.text and "申出者の氏名カナ" in refused.text
        assert 'value="山田 花子"' in refused.text  # kept
        good = request_form(pa, b, spouse, child) | ACCOUNT | {"csrf_token": token}
        done = client.post("/staff/dv/file", data={k: str(v) for k, v in good.items()})
        assert done.status_code == 303 and "/staff/dv?done=V-" in done.headers["location"]
        page = client.get(done.headers["location"])
        assert "確認待ち" in page.text and "乙町" in page.text
        async with tenant_transaction(app_pool, a, readonly=True) as conn:
            app_id = await conn.fetchval("SELECT application_id FROM dv_requests")
        shown = client.get(f"/staff/applications/{app_id}?purpose=review")  # the evacuee's application in 審査
        assert shown.status_code == 200 and "DV等避難者の申出による支給" in shown.text
        assert 'id="dv-incoming-notice"' not in client.get("/staff/").text
        # The registered municipality's console says a 申出 waits for its answer.
        rev_b = await reviewer(app_pool, settings, b)
        await staff_signed_in(client, app_pool, b, rev_b.staff_id)
        home = client.get("/staff/").text
        assert 'id="dv-incoming-notice"' in home and "未回答 <strong>1</strong> 件" in home
        assert "避難先市" not in home
    async with tenant_transaction(app_pool, a, readonly=True) as conn:
        assert await conn.fetchval("SELECT count(*) FROM dv_requests") == 1  # the refused one wrote nothing


async def test_two_reviewers_excluding_at_once_exclude_once(app_pool, municipality, settings):
    import asyncio

    key = settings.duplicate_key_bytes
    a, b, pa, pb, (head, spouse, child) = await two_municipalities(app_pool, municipality, settings)
    rev_a = await reviewer(app_pool, settings, a)
    first, second = await reviewer(app_pool, settings, b), await reviewer(app_pool, settings, b, "rev2")
    filed = await file(app_pool, settings, a, rev_a, request_form(pa, b, spouse, child))

    async def exclude(staff):
        async with tenant_transaction(app_pool, b) as conn:
            return await dv.exclude(conn, key, b, staff, filed.reference)

    outcomes = await asyncio.gather(exclude(first), exclude(second), return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "dict"]
    async with tenant_transaction(app_pool, b, readonly=True) as conn:
        assert await conn.fetchval("SELECT count(*) FROM dv_exclusions") == 2
        amount = await conn.fetchval(
            "SELECT amount_yen FROM entitlements WHERE head_resident_code = $1", head["resident_code"]
        )
    assert amount == 30000  # taken off once


async def test_the_heads_status_page_shows_the_amount_and_nothing_of_the_request(app_pool, municipality, settings):
    """The 世帯主 signs in on the resident site of the registered municipality after the exclusion: the page
    shows the household's amount as it now is, and no reference, no municipality, no address, no reason."""
    from starlette.testclient import TestClient

    from app.main import create_app
    from app.registry.pins import pin_hash, pin_key
    from tests.intake.helpers import INSERT_LETTERS, access_code
    from tests.intake.identify_world import csrf

    key = settings.duplicate_key_bytes
    a, b, pa, pb, (head, spouse, child) = await two_municipalities(app_pool, municipality, settings)
    rev_a, rev_b = await reviewer(app_pool, settings, a), await reviewer(app_pool, settings, b)
    filed = await file(app_pool, settings, a, rev_a, request_form(pa, b, spouse, child))
    letter, pin = access_code(), "246813"
    async with tenant_transaction(app_pool, b) as conn:
        await dv.exclude(conn, key, b, rev_b, filed.reference)
        ent_b = await conn.fetchval(
            "SELECT entitlement_id FROM entitlements WHERE head_resident_code = $1", head["resident_code"]
        )
        pins = pin_key(await load_field_cipher(conn, settings.master_key_bytes, b))
        await conn.execute(INSERT_LETTERS, b, [ent_b], [letter], [pin_hash(pins, letter, pin)])
    with TestClient(create_app(settings), follow_redirects=False) as client:
        page = client.get(f"/m/{b}/signin")
        signed = client.post(f"/m/{b}/signin", data={"csrf_token": csrf(page.text), "access_code": letter, "pin": pin})
        assert signed.status_code == 303
        status = client.get(f"/m/{b}/status")
        household = client.get(f"/m/{b}/household")
    assert status.status_code == 200 and household.status_code == 200
    assert "30,000" in household.text  # the amount as it now is (was 80,000)
    for text in (status.text, household.text):
        for hidden in (filed.reference, "避難先市", a, ADDRESS, "DV", "避難", "申出", "除外"):
            assert hidden not in text, hidden

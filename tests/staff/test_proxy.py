"""代理申請 (app/intake/proxy.py, migration 0026): a proxy keyed at the counter is recorded with relationship and
evidence, goes through the once-only claim path, is always reviewed, and is paid into the proxy's own account
only where the program allows it (app and database); the console page and the review screen."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest
from starlette.testclient import TestClient

from app.errors import Forbidden, InvalidInput, NotFound
from app.intake import proxy
from app.intake.claims import submit_application
from app.intake.forms import parse_bank
from app.main import create_app
from app.registry.eligibility import determine_eligibility
from app.registry.imports import import_residents
from app.registry.programs import create_program, parse_program
from app.registry.verify import verify_applications
from app.tenancy.transaction import tenant_transaction
from tests.hostile.helpers import staff_signed_in
from tests.registry.helpers import person, residents_csv
from tests.staff.conftest import build_world

D = dt.date(2026, 4, 1)


async def counter(app_pool, municipality, settings):
    """A municipality with its staff, a household (the head, who cannot come, and the spouse) and a
    per-person 確認書型 program."""
    world = await build_world(app_pool, await municipality(), settings, applications=0)
    head = person(
        family_kana="サトウ", given_kana="イチロウ", family_name="佐藤", given_name="一郎", birth_date="1940-02-02"
    )
    spouse = person(
        family_kana="サトウ",
        given_kana="ハナ",
        family_name="佐藤",
        given_name="花",
        birth_date="1945-05-05",
        relationship="妻",
        household_no=head["household_no"],
    )
    async with tenant_transaction(app_pool, world.code) as conn:
        await import_residents(conn, world.code, residents_csv([head, spouse]))
        program_id = await create_program(
            conn,
            world.code,
            parse_program(dict(name="定額給付金", base_date=D, unit="person", amount_yen=10000, payment_mode="letter")),
        )
        await determine_eligibility(conn, world.code, program_id)
    return world, program_id, head, spouse


def form(program_id: int, household_no: str, **overrides) -> dict:
    data = {
        "program_id": str(program_id),
        "household_no": household_no,
        "relationship": "household_member",
        "proxy_name": "佐藤 花",
        "proxy_kana": "サトウ ハナ",
        "proxy_birth_date": "1945-05-05",
        "evidence": ["proxy_identity", "delegation", "account_document"],
        "payee": "head",
        "bank_code": "0001",
        "branch_code": "001",
        "account_type": "1",
        "account_number": "1234567",
        "holder_kana": "ｻﾄｳ ｲﾁﾛｳ",
    }
    return data | overrides


async def record(app_pool, settings, world, data, who="rev") -> proxy.Recorded:
    async with tenant_transaction(app_pool, world.code) as conn:
        return await proxy.record(
            conn, settings, world.cipher, world.code, world.staff[who], proxy.parse(data), proxy.account(data)
        )


async def verify(app_pool, world, app_id: int) -> asyncpg.Record:
    async with tenant_transaction(app_pool, world.code) as conn:
        await verify_applications(conn, world.cipher, world.code, [app_id])
        return await conn.fetchrow("SELECT * FROM applications WHERE application_id = $1", app_id)


async def test_a_household_member_applies_for_the_head_and_is_always_reviewed(app_pool, municipality, settings):
    world, program_id, head, spouse = await counter(app_pool, municipality, settings)
    done = await record(app_pool, settings, world, form(program_id, head["household_no"]))
    assert done.outcome.kind == "created" and done.application_id
    app = await verify(app_pool, world, done.application_id)
    assert app["is_proxy"] and app["channel"] == "paper" and app["identification"] == "counter"
    assert app["applicant_resident_code"] == spouse["resident_code"]
    # Paid to the head's account: the holder is the head, so the account-holder check passes; still reviewed.
    assert app["status"] == "needs_review" and app["reason_codes"] == ["not_head_proxy", "proxy"]
    async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
        row = await conn.fetchrow("SELECT * FROM application_proxies WHERE application_id = $1", done.application_id)
        audit = await conn.fetchval("SELECT details::text FROM audit_log WHERE action = 'proxy.record'")
    assert row["relationship"] == "household_member" and row["proxy_resident_code"] == spouse["resident_code"]
    assert row["evidence"] == ["proxy_identity", "delegation", "account_document"] and not row["pay_to_proxy"]
    assert "佐藤".encode() not in bytes(row["proxy_enc"]) and "サトウ".encode() not in bytes(row["proxy_enc"])
    assert proxy.open_proxy(world.cipher, row) == {"name": "佐藤 花", "kana": "サトウハナ", "birth_date": "1945-05-05"}
    assert "佐藤" not in audit and "1945" not in audit and "household_member" in audit
    # The machine never decides a proxy's application (CHECK applications_proxy_reviewed).
    with pytest.raises(asyncpg.CheckViolationError, match="applications_proxy_reviewed"):
        async with tenant_transaction(app_pool, world.code) as conn:
            await conn.execute(
                "UPDATE applications SET status = 'verified' WHERE application_id = $1", done.application_id
            )


async def test_the_proxys_own_account_only_where_the_program_allows_it(app_pool, municipality, settings):
    world, program_id, head, spouse = await counter(app_pool, municipality, settings)
    carer = form(
        program_id,
        head["household_no"],
        relationship="caregiver",
        proxy_name="鈴木 介護",
        proxy_kana="スズキ カイゴ",
        proxy_birth_date="1970-07-07",
        evidence=["proxy_identity", "delegation", "care_confirmation", "account_document"],
        payee="proxy",
        holder_kana="ｽｽﾞｷ ｶｲｺﾞ",
    )
    with pytest.raises(InvalidInput, match="代理人の口座への振込は認められていません"):
        await record(app_pool, settings, world, carer)
    # The database says the same, whatever code writes the row.
    async with tenant_transaction(app_pool, world.code) as conn:
        other = await submit_application(
            conn,
            settings,
            world.code,
            await conn.fetchval("SELECT entitlement_id FROM entitlements"),
            parse_bank({k: carer[k] for k in ("bank_code", "branch_code", "account_number", "holder_kana")}),
            is_proxy=True,
            identification="counter",
        )
        with pytest.raises(asyncpg.CheckViolationError, match="does not pay a proxy"):
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO application_proxies (municipality_code, application_id, relationship, proxy_enc,"
                    " evidence, pay_to_proxy, recorded_by) VALUES ($1, $2, 'caregiver', '\\x00',"
                    " '{proxy_identity}', true, $3)",
                    world.code,
                    other.application_id,
                    world.staff["rev"].staff_id,
                )
        await conn.execute(
            "UPDATE applications SET status = 'withdrawn' WHERE application_id = $1", other.application_id
        )
    with pytest.raises(Forbidden):
        async with tenant_transaction(app_pool, world.code) as conn:
            await proxy.set_account_allowed(conn, world.code, world.staff["rev"], program_id, True)
    async with tenant_transaction(app_pool, world.code) as conn:
        await proxy.set_account_allowed(conn, world.code, world.staff["admin"], program_id, True)
    done = await record(app_pool, settings, world, carer)
    app = await verify(app_pool, world, done.application_id)
    # Outside the household, paid into their own account, which is in their name: reviewed, no holder flag.
    assert app["applicant_resident_code"] is None
    assert app["status"] == "needs_review"
    assert app["reason_codes"] == ["proxy", "proxy_outside_household", "proxy_account"]


async def test_a_proxys_account_in_another_name_is_flagged(app_pool, municipality, settings):
    world, program_id, head, spouse = await counter(app_pool, municipality, settings)
    async with tenant_transaction(app_pool, world.code) as conn:
        await proxy.set_account_allowed(conn, world.code, world.staff["admin"], program_id, True)
    lawyer = form(
        program_id,
        head["household_no"],
        relationship="legal_representative",
        proxy_name="高橋 後見",
        proxy_kana="タカハシ コウケン",
        proxy_birth_date="1965-01-01",
        evidence=["proxy_identity", "legal_representation", "account_document"],
        payee="proxy",
        holder_kana="ﾀﾅｶ ｼﾞﾛｳ",  # nobody in this case
    )
    done = await record(app_pool, settings, world, lawyer)
    app = await verify(app_pool, world, done.application_id)
    assert "kana_mismatch" in app["reason_codes"] and "proxy" in app["reason_codes"]


async def test_wrong_input_names_every_field_and_writes_nothing(app_pool, municipality, settings):
    world, program_id, head, spouse = await counter(app_pool, municipality, settings)
    with pytest.raises(InvalidInput) as caught:
        proxy.parse({"program_id": "", "relationship": "friend", "proxy_kana": "sato", "evidence": []})
    for label in ("給付", "世帯番号", "関係", "氏名を", "氏名カナ", "生年月日", "振込先"):
        assert label in caught.value.message
    with pytest.raises(InvalidInput, match="委任状"):
        proxy.parse(form(program_id, head["household_no"], evidence=["proxy_identity", "account_document"]))
    with pytest.raises(InvalidInput, match="口座番号"):
        proxy.account(form(program_id, head["household_no"], account_number="12ab"))
    for data, error in (
        (form(program_id, head["household_no"], proxy_birth_date="1945-05-06"), InvalidInput),  # not this member
        (
            form(program_id, head["household_no"], proxy_kana="サトウ イチロウ", proxy_birth_date="1940-02-02"),
            InvalidInput,
        ),
        (form(program_id, "NO-SUCH-HOUSEHOLD"), NotFound),
    ):
        with pytest.raises(error):
            await record(app_pool, settings, world, data)
    with pytest.raises(Forbidden):
        await record(app_pool, settings, world, form(program_id, head["household_no"]), who="draft")
    async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
        assert await conn.fetchval("SELECT count(*) FROM applications") == 0
        assert await conn.fetchval("SELECT count(*) FROM application_proxies") == 0


async def test_a_household_that_already_applied_gets_its_first_receipt(app_pool, municipality, settings):
    world, program_id, head, spouse = await counter(app_pool, municipality, settings)
    async with tenant_transaction(app_pool, world.code) as conn:
        ent = await conn.fetchval("SELECT entitlement_id FROM entitlements")
        first = await submit_application(
            conn,
            settings,
            world.code,
            ent,
            parse_bank(
                {"bank_code": "0001", "branch_code": "001", "account_number": "7777777", "holder_kana": "ｻﾄｳ ｲﾁﾛｳ"}
            ),
            channel="online",
        )
    done = await record(app_pool, settings, world, form(program_id, head["household_no"]))
    assert done.outcome.kind == "duplicate" and done.outcome.receipt_no == first.receipt_no
    assert done.application_id is None
    async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
        assert await conn.fetchval("SELECT count(*) FROM application_proxies") == 0
        assert await conn.fetchval("SELECT channel FROM intake_duplicate_claims") == "paper"


async def test_the_console_takes_a_proxy_and_the_review_screen_shows_it(app_pool, municipality, settings):
    world, program_id, head, spouse = await counter(app_pool, municipality, settings)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        await staff_signed_in(client, app_pool, world.code, world.staff["draft"].staff_id)
        assert client.get("/staff/proxy").status_code == 403
        token = await staff_signed_in(client, app_pool, world.code, world.staff["rev"].staff_id)
        page = client.get("/staff/proxy")
        assert page.status_code == 200 and "代理申請の受付" in page.text and "認めない" in page.text
        data = form(program_id, head["household_no"], evidence="")  # nothing ticked
        refused = client.post("/staff/proxy", data=data | {"csrf_token": token})
        assert refused.status_code == 422 and "確認した書類が足りません" in refused.text
        assert 'value="佐藤 花"' in refused.text  # what was typed is kept
        fields = form(program_id, head["household_no"]) | {"csrf_token": token}  # evidence: a list, 3 boxes
        done = client.post("/staff/proxy", data=fields)
        assert done.status_code == 303 and "/staff/proxy?receipt=" in done.headers["location"]
        receipt = done.headers["location"].split("receipt=")[1].split("#")[0]
        page = client.get(done.headers["location"])
        assert receipt in page.text and "世帯員" in page.text
        again = client.post("/staff/proxy", data=fields)
        assert "duplicate=" + receipt in again.headers["location"]
        async with tenant_transaction(app_pool, world.code) as conn:
            app_id = await conn.fetchval("SELECT application_id FROM applications WHERE receipt_no = $1", receipt)
            await verify_applications(conn, world.cipher, world.code, [app_id])
        shown = client.get(f"/staff/applications/{app_id}?purpose=review")
        assert shown.status_code == 200
        assert 'id="proxy-relationship">世帯員<' in shown.text and "佐藤 花" in shown.text
        assert "委任状" in shown.text and 'id="proxy-payee">世帯主の口座<' in shown.text
        # The admin's setting, from the same page.
        token = await staff_signed_in(client, app_pool, world.code, world.staff["admin"].staff_id)
        changed = client.post(
            "/staff/proxy/settings", data={"program_id": program_id, "allowed": "1", "csrf_token": token}
        )
        assert changed.status_code == 303
        assert f'id="proxy-allowed-{program_id}">認める<' in client.get("/staff/proxy").text

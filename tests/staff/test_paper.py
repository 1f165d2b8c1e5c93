"""Paper intake keyed twice (app/intake/paper.py, migration 0024): the domain and the database rules."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io

import asyncpg
import pytest

from app.errors import Conflict, Forbidden
from app.intake import paper
from app.intake.claims import submit_application
from app.intake.forms import parse_bank
from app.intake.signin import municipality_keys
from app.tenancy.transaction import tenant_transaction
from tests.staff.paper_world import key, paper_world, receive

ACTIVE_APPLICATIONS = """
SELECT application_id, channel, status FROM applications
WHERE municipality_code = $1 AND entitlement_id = $2 AND status NOT IN ('rejected', 'withdrawn')
"""
FORM = """
SELECT state, resolve_reason, application_id, entitlement_id FROM paper_forms
WHERE municipality_code = $1 AND form_id = $2
"""


@pytest.fixture
def world(app_pool, municipality, settings):
    async def make(households: int = 3):
        return await paper_world(app_pool, municipality, settings, households)

    return make


async def _fetch(app_pool, code, query, *args):
    async with tenant_transaction(app_pool, code) as conn:
        return await conn.fetch(query, code, *args)


async def test_two_matching_entries_submit_one_paper_application_with_its_verification_job(world, app_pool):
    w, program_id, [h, *_] = await world()
    [form_id] = await receive(app_pool, w, program_id, 1)
    first = await key(app_pool, w, "keyer1", form_id, h.form())
    assert first.state == "keyed_once"
    assert await _fetch(app_pool, w.code, ACTIVE_APPLICATIONS, h.entitlement_id) == []  # nothing before the second

    second = await key(app_pool, w, "keyer2", form_id, h.form(holder_kana="ﾔﾏﾀﾞ ﾀﾛｳ"))  # same name, other width
    assert second.state == "submitted" and second.differences == ()
    [app] = await _fetch(app_pool, w.code, ACTIVE_APPLICATIONS, h.entitlement_id)
    assert (app["channel"], app["status"], app["application_id"]) == ("paper", "received", second.application_id)
    async with tenant_transaction(app_pool, w.code) as conn:
        assert await conn.fetchval(
            "SELECT status FROM entitlements WHERE municipality_code = $1 AND entitlement_id = $2",
            w.code,
            h.entitlement_id,
        ) == ("claimed")
        assert await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE municipality_code = $1 AND job_name = 'verify_application'"
            " AND args->>1 = $2",
            w.code,
            str(app["application_id"]),
        ) == (1)
        row = await conn.fetchrow(FORM, w.code, form_id)
        assert (row["state"], row["application_id"]) == ("submitted", app["application_id"])
        # The account is stored encrypted, never as typed.
        raw = await conn.fetchval(
            "SELECT account_number_enc FROM paper_entries WHERE municipality_code = $1 AND form_id = $2"
            " AND entry_no = 1",
            w.code,
            form_id,
        )
        assert h.form()["account_number"].encode() not in bytes(raw)


async def test_the_same_clerk_cannot_key_a_form_twice_and_the_database_refuses_it_too(world, app_pool):
    w, program_id, [h, *_] = await world()
    [form_id] = await receive(app_pool, w, program_id, 1)
    await key(app_pool, w, "keyer1", form_id, h.form())
    with pytest.raises(Conflict):
        await key(app_pool, w, "keyer1", form_id, h.form())
    async with tenant_transaction(app_pool, w.code) as conn:
        assert (await conn.fetchrow(FORM, w.code, form_id))["state"] == "keyed_once"
        with pytest.raises(asyncpg.UniqueViolationError) as refused:
            await conn.execute(
                "INSERT INTO paper_entries (municipality_code, form_id, entry_no, keyed_by, id_document,"
                " account_document, illegible) VALUES ($1, $2, 2, $3, true, true,"
                " '{identifier,members,account,holder}')",
                w.code,
                form_id,
                w.staff["keyer1"].staff_id,
            )
    assert refused.value.constraint_name == "paper_entries_different_clerks"


async def test_only_keyers_key_and_only_reviewers_resolve(world, app_pool):
    w, program_id, [h, *_] = await world()
    [form_id] = await receive(app_pool, w, program_id, 1)
    with pytest.raises(Forbidden):
        await key(app_pool, w, "rev", form_id, h.form())
    await key(app_pool, w, "keyer1", form_id, h.form())
    await key(app_pool, w, "keyer2", form_id, h.form(account_number="7654321"))
    async with tenant_transaction(app_pool, w.code) as conn:
        with pytest.raises(Forbidden):
            await paper.resolve(conn, w.settings, w.code, w.staff["keyer1"], form_id, h.form())


async def test_a_household_that_applied_online_is_caught_and_shown_not_submitted_twice(world, app_pool):
    w, program_id, [h, *_] = await world()
    async with tenant_transaction(app_pool, w.code) as conn:
        account = parse_bank(
            {"bank_code": "0005", "branch_code": "001", "account_number": "1111111", "holder_kana": "ﾔﾏﾀﾞ ﾀﾛｳ"}
        )
        online = await submit_application(conn, w.settings, w.code, h.entitlement_id, account, "online")
    [form_id] = await receive(app_pool, w, program_id, 1)
    await key(app_pool, w, "keyer1", form_id, h.form())
    keyed = await key(app_pool, w, "keyer2", form_id, h.form())
    assert keyed.state == "duplicate" and keyed.application_id == online.application_id
    [app] = await _fetch(app_pool, w.code, ACTIVE_APPLICATIONS, h.entitlement_id)
    assert (app["application_id"], app["channel"]) == (online.application_id, "online")
    async with tenant_transaction(app_pool, w.code) as conn:
        shown = await paper.outcome(conn, w.code, form_id)
        assert (shown["state"], shown["application_channel"], shown["receipt_no"]) == (
            "duplicate",
            "online",
            online.receipt_no,
        )
        assert await conn.fetchval(
            "SELECT channel FROM intake_duplicate_claims WHERE municipality_code = $1 AND entitlement_id = $2",
            w.code,
            h.entitlement_id,
        ) == ("paper")


async def test_two_paper_forms_of_one_household_make_one_application(world, app_pool):
    w, program_id, [h, *_] = await world()
    forms = await receive(app_pool, w, program_id, 2)
    states = []
    for form_id in forms:
        await key(app_pool, w, "keyer1", form_id, h.form())
        states.append((await key(app_pool, w, "keyer2", form_id, h.form())).state)
    assert states == ["submitted", "duplicate"]
    assert len(await _fetch(app_pool, w.code, ACTIVE_APPLICATIONS, h.entitlement_id)) == 1


async def test_a_mismatch_goes_to_a_third_clerk_who_sees_both_entries_and_decides(world, app_pool):
    w, program_id, [h, *_] = await world()
    [form_id] = await receive(app_pool, w, program_id, 1)
    await key(app_pool, w, "both", form_id, h.form())
    keyed = await key(app_pool, w, "keyer2", form_id, h.form(account_number="7654321", id_document=""))
    assert keyed.state == "to_resolve" and keyed.differences == ("account_number", "id_document")
    assert await _fetch(app_pool, w.code, ACTIVE_APPLICATIONS, h.entitlement_id) == []
    async with tenant_transaction(app_pool, w.code) as conn:
        cipher = (await municipality_keys(conn, w.settings.master_key_bytes, w.code)).cipher
        # "both" keyed entry 1: a reviewer, but not a third person.
        with pytest.raises(Conflict):
            await paper.resolution_view(conn, cipher, w.code, w.staff["both"], form_id)
    async with tenant_transaction(app_pool, w.code) as conn:
        with pytest.raises(Conflict):
            await paper.resolve(conn, w.settings, w.code, w.staff["both"], form_id, h.form())
    async with tenant_transaction(app_pool, w.code) as conn:
        view = await paper.resolution_view(conn, cipher, w.code, w.staff["rev"], form_id)
        assert view["differences"] == ["account_number", "id_document"]
        (login1, one), (login2, two) = view["entries"]
        assert (login1, login2) == ("both", "keyer2")
        assert (one["account_number"], two["account_number"]) == (h.form()["account_number"], "7654321")
        assert "account_number" not in view["prefill"] and view["prefill"]["bank_code"] == "0001"
        assert await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE municipality_code = $1 AND action = 'personal_data.view'"
            " AND object_type = 'paper_form'",
            w.code,
        ) == (1)
    async with tenant_transaction(app_pool, w.code) as conn:
        decided = await paper.resolve(conn, w.settings, w.code, w.staff["rev"], form_id, h.form())
    assert decided.state == "submitted" and decided.entry_no == 3
    [app] = await _fetch(app_pool, w.code, ACTIVE_APPLICATIONS, h.entitlement_id)
    assert app["application_id"] == decided.application_id
    async with tenant_transaction(app_pool, w.code) as conn:
        assert (await conn.fetchrow(FORM, w.code, form_id))["state"] == "submitted"
        with pytest.raises(Conflict):  # decided once
            await paper.resolve(conn, w.settings, w.code, w.staff["rev"], form_id, h.form())


async def test_members_not_all_chosen_wait_for_a_reviewer_and_become_a_deficiency_if_confirmed(world, app_pool):
    w, program_id, [h, g, *_] = await world()
    forms = await receive(app_pool, w, program_id, 2)
    for form_id, household in zip(forms, (h, g)):
        await key(app_pool, w, "keyer1", form_id, household.form(members="1"))
        keyed = await key(app_pool, w, "keyer2", form_id, household.form(members="1"))
        assert keyed.state == "to_resolve"
    async with tenant_transaction(app_pool, w.code) as conn:
        assert (await conn.fetchrow(FORM, w.code, forms[0]))["resolve_reason"] == "members_partial"
        # The household confirmed it applies for everyone: submitted.
        assert (await paper.resolve(conn, w.settings, w.code, w.staff["rev"], forms[0], h.form())).state == "submitted"
        # It did not: 不備, nothing submitted.
        decided = await paper.resolve(conn, w.settings, w.code, w.staff["rev"], forms[1], g.form(members="1"))
        assert decided.state == "deficient"
        assert await conn.fetchval(
            "SELECT codes FROM paper_deficiencies WHERE municipality_code = $1 AND form_id = $2", w.code, forms[1]
        ) == ["members_partial"]
    assert await _fetch(app_pool, w.code, ACTIVE_APPLICATIONS, g.entitlement_id) == []


async def test_missing_and_illegible_items_make_a_deficiency_and_a_formula_safe_return_letter_once(
    world, app_pool, owner_conn
):
    w, program_id, [h, g, *_] = await world()
    forms = await receive(app_pool, w, program_id, 2)
    missing = h.form(account_document="")
    illegible = g.form(identifier="", illegible=["identifier"])
    for form_id, data in zip(forms, (missing, illegible)):
        await key(app_pool, w, "keyer1", form_id, data)
        assert (await key(app_pool, w, "keyer2", form_id, data)).state == "deficient"
    assert await _fetch(app_pool, w.code, ACTIVE_APPLICATIONS, h.entitlement_id) == []
    async with tenant_transaction(owner_conn, w.code) as conn:
        # The head's address comes from the registry extract: a cell a spreadsheet would run.
        await conn.execute(
            "UPDATE residents SET address = '=HYPERLINK(\"http://x\")' WHERE municipality_code = $1"
            " AND resident_code = (SELECT head_resident_code FROM entitlements WHERE municipality_code = $1"
            " AND entitlement_id = $2)",
            w.code,
            h.entitlement_id,
        )
    async with tenant_transaction(app_pool, w.code) as conn:
        listed = await paper.deficiencies(conn, w.code)
        assert sorted(tuple(r["codes"]) for r in listed) == [("account_document_missing",), ("identifier_illegible",)]
        rows = await paper.export_deficiency_letters(conn, w.code, w.staff["rev"])
        data = paper.export_csv(rows)
    # Only the form whose household is known can be returned by letter.
    [header, line] = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert header == paper.EXPORT_HEADER
    assert line[0:2] == ["B-0001", "1"] and line[6].startswith("'=")
    assert paper.DEFICIENCY_LABELS["account_document_missing"] in line[7]
    async with tenant_transaction(app_pool, w.code) as conn:
        assert await paper.export_deficiency_letters(conn, w.code, w.staff["rev"]) == []


async def test_bad_input_is_refused_with_every_field_named_and_nothing_written(world, app_pool):
    w, program_id, [h, *_] = await world()
    [form_id] = await receive(app_pool, w, program_id, 1)
    bad = h.form(
        identifier="ABCD-EFGH-JK12", members="0", bank_code="12", account_number="12345678", holder_kana="山田"
    )
    with pytest.raises(paper.EntryInvalid) as refused:
        await key(app_pool, w, "keyer1", form_id, bad)
    assert set(refused.value.errors) == {"identifier", "members", "bank_code", "account_number", "holder_kana"}
    assert "確認書番号" in refused.value.errors["identifier"]
    assert h.form()["account_number"] not in refused.value.message  # nothing typed is repeated
    # A member number beyond the household's two members, once the household is known.
    with pytest.raises(paper.EntryInvalid) as refused:
        await key(app_pool, w, "keyer1", form_id, h.form(members="123"))
    assert set(refused.value.errors) == {"members"} and "1〜2" in refused.value.errors["members"]
    async with tenant_transaction(app_pool, w.code) as conn:
        assert await conn.fetchval("SELECT count(*) FROM paper_entries WHERE municipality_code = $1", w.code) == 0
        assert (await conn.fetchrow(FORM, w.code, form_id))["state"] == "received"


async def test_a_box_reconciles_its_count_and_refuses_a_second_box_of_the_same_number(world, app_pool):
    w, program_id, [h, g, k] = await world()
    forms = await receive(app_pool, w, program_id, 4)
    await key(app_pool, w, "keyer1", forms[0], h.form())
    await key(app_pool, w, "keyer2", forms[0], h.form())
    await key(app_pool, w, "keyer1", forms[1], g.form())
    await key(app_pool, w, "keyer1", forms[2], k.form())
    await key(app_pool, w, "keyer2", forms[2], k.form(account_number="0000001"))
    async with tenant_transaction(app_pool, w.code) as conn:
        [listed] = await paper.boxes(conn, w.code)
        detail = await paper.box(conn, w.code, listed["box_id"])
        # keyer1 has keyed 1-3, so form 4 is theirs next; keyer2's next is form 2.
        assert await paper.next_form(conn, w.code, w.staff["keyer1"], listed["box_id"]) == forms[3]
        assert await paper.next_form(conn, w.code, w.staff["keyer2"], listed["box_id"]) == forms[1]
        with pytest.raises(Conflict):
            await paper.receive_box(conn, w.code, w.staff["keyer1"], program_id, "b-0001", dt.date(2026, 5, 2), 3)
        # A fifth form found in the box: the count and the forms grow together.
        assert await paper.add_form(conn, w.code, w.staff["keyer2"], listed["box_id"]) == 5
        grown = await paper.box(conn, w.code, listed["box_id"])
        assert grown["box"]["form_count"] == sum(grown["counts"].values()) == 5
    assert (listed["form_count"], listed["forms"]) == (4, 4)
    assert detail["counts"] == {
        "received": 1,
        "keyed_once": 1,
        "to_resolve": 1,
        "submitted": 1,
        "duplicate": 0,
        "closed": 0,
        "deficient": 0,
    }
    assert sum(detail["counts"].values()) == detail["box"]["form_count"]
    assert [f["seq"] for f in detail["forms"]] == [1, 2, 3, 4]


async def test_a_decided_form_never_changes_again_in_the_database(world, app_pool):
    w, program_id, [h, *_] = await world()
    [form_id] = await receive(app_pool, w, program_id, 1)
    await key(app_pool, w, "keyer1", form_id, h.form())
    await key(app_pool, w, "keyer2", form_id, h.form())
    async with tenant_transaction(app_pool, w.code) as conn:
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await conn.execute(
                "UPDATE paper_forms SET state = 'deficient', application_id = NULL WHERE municipality_code = $1"
                " AND form_id = $2",
                w.code,
                form_id,
            )
    assert refused.value.constraint_name == "paper_forms_decided_is_final"


async def test_an_application_program_is_keyed_by_household_number(app_pool, municipality, settings):
    from tests.staff.conftest import build_world, make_staff

    w = await build_world(app_pool, await municipality(), settings, applications=0)
    async with tenant_transaction(app_pool, w.code) as conn:
        for login in ("keyer1", "keyer2"):
            await make_staff(conn, w, login, ["keyer"])
        await conn.execute(
            "INSERT INTO residents (municipality_code, snapshot_id, resident_code, household_no, relationship, is_head,"
            " family_name, given_name, family_kana, given_kana, birth_date, sex, address) VALUES ($1, $2,"
            " '12345678901', 'H-77', '世帯主', true, '山田', '太郎', 'ヤマダ', 'タロウ', '1980-01-01', '1',"
            " '千代田区')",
            w.code,
            w.snapshot_id,
        )
        ent = await conn.fetchval(
            "INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no, head_resident_code,"
            " members_counted, amount_yen, rule) VALUES ($1, $2, $3, 'H-77', '12345678901', 1, 100000, 't')"
            " RETURNING entitlement_id",
            w.code,
            w.program_id,
            w.snapshot_id,
        )
    [form_id] = await receive(app_pool, w, w.program_id, 1)
    data = {
        "identifier": "Ｈ-77",  # full width, as an IME may give it
        "members": "1",
        "bank_code": "9900",
        "yucho_kigou": "10180",
        "yucho_bangou": "12345671",
        "holder_kana": "ヤマダ タロウ",
        "id_document": "1",
        "account_document": "1",
    }
    with pytest.raises(paper.EntryInvalid) as refused:  # a NUL never reaches PostgreSQL
        await key(app_pool, w, "keyer1", form_id, data | {"identifier": "H-77\x00"})
    assert set(refused.value.errors) == {"identifier"}
    await key(app_pool, w, "keyer1", form_id, data)
    keyed = await key(app_pool, w, "keyer2", form_id, data)
    assert keyed.state == "submitted"
    async with tenant_transaction(app_pool, w.code) as conn:
        row = await conn.fetchrow(
            "SELECT bank_code, branch_code, channel FROM applications"
            " WHERE municipality_code = $1 AND entitlement_id = $2",
            w.code,
            ent,
        )
    assert (row["bank_code"], row["branch_code"], row["channel"]) == ("9900", "018", "paper")


async def test_two_second_entries_at_once_make_one_decision(world, app_pool):
    """The form's row lock serialises them: one is compared and decided, the other is refused."""
    w, program_id, [h, *_] = await world()
    [form_id] = await receive(app_pool, w, program_id, 1)
    await key(app_pool, w, "keyer1", form_id, h.form())
    results = await asyncio.gather(
        key(app_pool, w, "keyer2", form_id, h.form()),
        key(app_pool, w, "both", form_id, h.form()),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "Keyed"]
    assert len(await _fetch(app_pool, w.code, ACTIVE_APPLICATIONS, h.entitlement_id)) == 1
    async with tenant_transaction(app_pool, w.code) as conn:
        assert await conn.fetchval("SELECT count(*) FROM paper_entries WHERE municipality_code = $1", w.code) == 2

"""Eligibility: the 基準日 rules at their edges, child amounts, tax condition, re-runs and snapshot freeze."""

from __future__ import annotations

import datetime as dt

from app.registry.eligibility import determine_eligibility
from app.registry.imports import import_residents, import_tax
from app.registry.programs import create_program, parse_program
from app.tenancy.transaction import tenant_transaction
from tests.registry.helpers import create_application, person, residents_csv, simple_csv

D = dt.date(2026, 4, 1)


def day(offset: int) -> str:
    return (D + dt.timedelta(days=offset)).isoformat()


async def setup(app_pool, code, rows, program: dict, tax_rows=None):
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv(rows))
        if tax_rows is not None:
            await import_tax(conn, code, 2026, simple_csv(["世帯番号", "住民票コード", "課税区分"], tax_rows))
        program_id = await create_program(
            conn,
            code,
            parse_program(
                dict(dict(name="給付", base_date=D, unit="person", amount_yen=10000, payment_mode="letter"), **program)
            ),
        )
        result = await determine_eligibility(conn, code, program_id)
    return program_id, result


async def entitlements(app_pool, code, program_id):
    async with tenant_transaction(app_pool, code) as conn:
        rows = await conn.fetch(
            "SELECT * FROM entitlements WHERE program_id = $1 AND status <> 'withdrawn'", program_id
        )
    return {r["household_no"]: r for r in rows}


async def test_base_date_edges_decide_who_is_counted(app_pool, code):
    def hh(name, **kw):
        return person(household_no=name, **kw)

    rows = [
        hh("born-on-D", birth_date=day(0), moved_in_on=day(0)),
        hh("born-after", birth_date=day(1), moved_in_on=day(1)),
        hh("moved-in-on-D", moved_in_on=day(0)),
        hh("moved-in-after", moved_in_on=day(1)),
        hh("removed-before", removed_on=day(-1), removal_reason="転出"),
        hh("removed-on-D", removed_on=day(0), removal_reason="転出"),
        hh("removed-after", removed_on=day(1), removal_reason="死亡"),
    ]
    program_id, result = await setup(app_pool, code, rows, {})
    got = await entitlements(app_pool, code, program_id)
    assert set(got) == {"born-on-D", "moved-in-on-D", "removed-after"}
    assert (result.households, result.people, result.total_yen) == (3, 3, 30000)


async def test_a_household_split_after_the_base_date_is_counted_as_on_the_base_date(app_pool, code):
    head = person(household_no="A")
    wife = person(household_no="A", relationship="妻")
    # 世帯分離 after 基準日: the son now heads household B, but on 基準日 he was in A.
    son = person(household_no="B", relationship="世帯主", prev_household_no="A", household_changed_on=day(10))
    # 世帯分離 before 基準日: the daughter was already in C on 基準日.
    daughter = person(household_no="C", relationship="世帯主", prev_household_no="A", household_changed_on=day(-10))
    program_id, _ = await setup(app_pool, code, [head, wife, son, daughter], {})
    got = await entitlements(app_pool, code, program_id)
    assert {k: (v["members_counted"], v["head_resident_code"]) for k, v in got.items()} == {
        "A": (3, head["resident_code"]),
        "C": (1, daughter["resident_code"]),
    }


async def test_child_amounts_use_the_legal_age_on_the_base_date(app_pool, code):
    turns_18_on_D_plus_1 = (D + dt.timedelta(days=1)).replace(year=D.year - 18).isoformat()  # legally 18 on D
    turns_18_on_D_plus_2 = (D + dt.timedelta(days=2)).replace(year=D.year - 18).isoformat()  # still 17 on D
    rows = [
        person(household_no="F"),
        person(household_no="F", relationship="子", birth_date=turns_18_on_D_plus_1, moved_in_on=turns_18_on_D_plus_1),
        person(household_no="F", relationship="子", birth_date=turns_18_on_D_plus_2, moved_in_on=turns_18_on_D_plus_2),
    ]
    program_id, result = await setup(
        app_pool, code, rows, dict(unit="person", amount_yen=30000, child_amount_yen=50000)
    )
    ent = (await entitlements(app_pool, code, program_id))["F"]
    assert (ent["members_counted"], ent["amount_yen"]) == (3, 2 * 30000 + 50000)
    assert ent["rule"] == "person: 2 x 30000 yen + 1 child x 50000 yen"
    async with tenant_transaction(app_pool, code) as conn:
        household_program = await create_program(
            conn,
            code,
            parse_program(
                dict(
                    name="世帯",
                    base_date=D,
                    unit="household",
                    amount_yen=100000,
                    child_amount_yen=20000,
                    payment_mode="letter",
                )
            ),
        )
        await determine_eligibility(conn, code, household_program)
    assert (await entitlements(app_pool, code, household_program))["F"]["amount_yen"] == 120000


async def test_non_taxable_condition_needs_evidence_and_no_taxed_member(app_pool, code):
    taxed_member = person(household_no="T2", relationship="妻")
    rows = [
        person(household_no="E"),
        person(household_no="P"),
        person(household_no="T"),
        person(household_no="T2"),
        taxed_member,
        person(household_no="NONE"),
    ]
    tax = [
        ["E", "", "非課税"],
        ["P", "", "均等割のみ"],
        ["T", "", "課税"],
        ["T2", "", "非課税"],
        ["", taxed_member["resident_code"], "課税"],
    ]
    program_id, _ = await setup(app_pool, code, rows, dict(tax_condition="exempt", tax_fiscal_year=2026), tax)
    assert set(await entitlements(app_pool, code, program_id)) == {"E"}
    async with tenant_transaction(app_pool, code) as conn:
        wider = await create_program(
            conn,
            code,
            parse_program(
                dict(
                    name="均等割のみ含む",
                    base_date=D,
                    unit="household",
                    amount_yen=70000,
                    payment_mode="letter",
                    tax_condition="exempt_or_per_capita",
                    tax_fiscal_year=2026,
                )
            ),
        )
        await determine_eligibility(conn, code, wider)
    assert set(await entitlements(app_pool, code, wider)) == {"E", "P"}


async def test_rerun_is_a_no_op_and_a_new_snapshot_never_changes_a_claimed_entitlement(app_pool, code, cipher):
    a_head, b_head, c_head = person(household_no="A"), person(household_no="B"), person(household_no="C")
    a_child = person(household_no="A", relationship="子", birth_date="2015-01-01", moved_in_on="2015-01-01")
    program_id, first = await setup(app_pool, code, [a_head, a_child, b_head, c_head], {})
    before = await entitlements(app_pool, code, program_id)
    async with tenant_transaction(app_pool, code) as conn:
        again = await determine_eligibility(conn, code, program_id)
        # Household A applies: its entitlement is now relied upon.
        await create_application(conn, cipher, code, before["A"]["entitlement_id"], "ﾔﾏﾀﾞ ﾀﾛｳ")
    assert again.no_op and (again.households, again.total_yen) == (first.households, first.total_yen)

    # A corrected extract: A's child had moved out before 基準日, B moved in after it, D is new.
    corrected = [
        a_head,
        dict(a_child, removed_on=day(-5), removal_reason="転出"),
        dict(b_head, moved_in_on=day(3)),
        dict(c_head, given_name="次郎"),
        person(household_no="D"),
    ]
    async with tenant_transaction(app_pool, code) as conn:
        snapshot = (await import_residents(conn, code, residents_csv(corrected))).snapshot_id
        second = await determine_eligibility(conn, code, program_id)
        conflicts = await conn.fetch("SELECT entitlement_id, kind, new_amount_yen FROM entitlement_conflicts")
        statuses = {
            r["household_no"]: r["status"] for r in await conn.fetch("SELECT household_no, status FROM entitlements")
        }
    after = await entitlements(app_pool, code, program_id)
    assert (second.added, second.updated, second.withdrawn, second.conflicts) == (1, 0, 1, 1)
    # A is frozen: same amount and snapshot as before; the disagreement is recorded for staff.
    assert (after["A"]["amount_yen"], after["A"]["snapshot_id"]) == (20000, before["A"]["snapshot_id"])
    assert [dict(c) for c in conflicts] == [
        {"entitlement_id": before["A"]["entitlement_id"], "kind": "amount_changed", "new_amount_yen": 10000}
    ]
    assert statuses == {"A": "open", "B": "withdrawn", "C": "open", "D": "open"}
    assert after["C"]["snapshot_id"] == before["C"]["snapshot_id"]  # unchanged entitlement keeps its snapshot
    assert after["D"]["snapshot_id"] == snapshot
    async with tenant_transaction(app_pool, code) as conn:
        assert (await determine_eligibility(conn, code, program_id)).no_op


async def test_the_head_is_the_living_head_on_the_base_date_else_the_oldest(app_pool, code):
    # R: the 世帯主 died after 基準日 and a new 世帯主 was registered; both were R's head on 基準日, the
    # living one wins although the other is older.
    removed_head = person(household_no="R", removed_on=day(5), removal_reason="死亡", birth_date="1940-01-01")
    living_head = person(household_no="R", birth_date="1990-01-01")
    # S: nobody flagged 世帯主 on 基準日 (the head split off after it): the oldest member, then the lowest code.
    left_after = person(
        household_no="S2",
        relationship="世帯主",
        prev_household_no="S",
        household_changed_on=day(3),
        birth_date="1950-01-01",
    )
    twin_a, twin_b = sorted(
        (person(household_no="S", relationship="子", birth_date="1948-03-03") for _ in range(2)),
        key=lambda r: r["resident_code"],
    )
    rows = [removed_head, living_head, left_after, twin_b, twin_a]
    program_id, _ = await setup(app_pool, code, rows, {})
    got = {k: v["head_resident_code"] for k, v in (await entitlements(app_pool, code, program_id)).items()}
    assert got == {"R": living_head["resident_code"], "S": twin_a["resident_code"]}


async def test_a_leap_day_birthday_turns_the_age_at_the_end_of_28_february(app_pool, code):
    """Born 2004-02-29: legally 18 at the end of 2022-02-28, so an adult on that 基準日, a child the day before."""
    rows = [
        person(household_no="L"),
        person(household_no="L", relationship="子", birth_date="2004-02-29", moved_in_on="2004-02-29"),
    ]
    program = dict(base_date=dt.date(2022, 2, 28), amount_yen=30000, child_amount_yen=50000)
    program_id, result = await setup(app_pool, code, rows, program)
    assert (await entitlements(app_pool, code, program_id))["L"]["rule"] == "person: 2 x 30000 yen"
    # Summaries are whole yen as int (never Decimal, which printed as 2.01E+6).
    assert all(type(v) is int for v in (result.households, result.people, result.total_yen))
    assert result.total_yen == 60000
    async with tenant_transaction(app_pool, code) as conn:
        day_before = await create_program(
            conn,
            code,
            parse_program(
                dict(name="前日", unit="person", payment_mode="letter", **dict(program, base_date=dt.date(2022, 2, 27)))
            ),
        )
        await determine_eligibility(conn, code, day_before)
    assert (await entitlements(app_pool, code, day_before))["L"][
        "rule"
    ] == "person: 1 x 30000 yen + 1 child x 50000 yen"


async def test_entitlements_must_refer_to_an_existing_program_and_snapshot(app_pool, owner_conn, code):
    """The statement-level checks that replace the per-row foreign keys (0008) refuse orphans in both
    directions: no entitlement for a missing program or snapshot; no deleting or re-keying one in use."""
    import asyncpg
    import pytest

    program_id, _ = await setup(app_pool, code, [person(household_no="X")], {})
    async with tenant_transaction(app_pool, code) as conn:
        ent = await conn.fetchrow(
            "SELECT entitlement_id, snapshot_id FROM entitlements WHERE program_id = $1", program_id
        )
    insert = (
        "INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no, head_resident_code,"
        " members_counted, amount_yen, rule) VALUES ($1, $2, $3, 'Y', '12345678901', 1, 1, 'r')"
    )
    for program, snapshot, constraint in (
        (999999999, ent["snapshot_id"], "entitlements_program_exists"),
        (program_id, 999999999, "entitlements_snapshot_exists"),
    ):
        with pytest.raises(asyncpg.ForeignKeyViolationError) as caught:
            async with tenant_transaction(app_pool, code) as conn:
                await conn.execute(insert, code, program, snapshot)
        assert caught.value.constraint_name == constraint
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(
                "UPDATE entitlements SET snapshot_id = 999999999 WHERE entitlement_id = $1", ent["entitlement_id"]
            )
    # The referenced side (the owner role: the app may not delete programs or snapshots at all).
    for statement, args in (
        ("DELETE FROM programs WHERE program_id = $1", (program_id,)),
        ("DELETE FROM registry_snapshots WHERE snapshot_id = $1", (ent["snapshot_id"],)),
        ("UPDATE programs SET program_id = DEFAULT WHERE program_id = $1", (program_id,)),
    ):
        with pytest.raises((asyncpg.ForeignKeyViolationError, asyncpg.GeneratedAlwaysError)):
            async with tenant_transaction(owner_conn, code):
                await owner_conn.execute(statement, *args)
    async with tenant_transaction(app_pool, code) as conn:
        assert await conn.fetchval("SELECT count(*) FROM entitlements WHERE program_id = $1", program_id) == 1


async def test_a_rerun_is_skipped_only_while_program_residents_and_tax_are_unchanged(app_pool, owner_conn, code):
    """The shortcut of eligibility_runs: same inputs report without recomputing; a newer tax snapshot or an
    edited program definition is determined again."""
    rows = [person(household_no="E"), person(household_no="F")]
    tax = [["E", "", "非課税"], ["F", "", "非課税"]]
    program_id, first = await setup(app_pool, code, rows, dict(tax_condition="exempt", tax_fiscal_year=2026), tax)
    assert (first.added, first.households) == (2, 2)
    async with tenant_transaction(app_pool, code) as conn:
        again = await determine_eligibility(conn, code, program_id)
        assert again.no_op and again.households == 2
        await import_tax(
            conn,
            code,
            2026,
            simple_csv(["世帯番号", "住民票コード", "課税区分"], [["E", "", "非課税"], ["F", "", "課税"]]),
        )
        after_tax = await determine_eligibility(conn, code, program_id)
    assert (after_tax.withdrawn, after_tax.households) == (1, 1)
    async with tenant_transaction(owner_conn, code):
        await owner_conn.execute("UPDATE programs SET amount_yen = 20000 WHERE program_id = $1", program_id)
    async with tenant_transaction(app_pool, code) as conn:
        edited = await determine_eligibility(conn, code, program_id)
    assert (edited.updated, edited.total_yen) == (1, 20000)

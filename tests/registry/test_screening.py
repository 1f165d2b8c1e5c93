"""Deaths and moves after 基準日 (app/registry/screening.py, migration 0025): importing a newer 住基 snapshot
screens every unpaid entitlement in the import's transaction, holds the ones whose payee (世帯主) was removed
with the program's rule as a suggestion, never screens what already went to the bank, and the batch states
the snapshot it was screened against."""

from __future__ import annotations

import datetime as dt

import pytest

from app.errors import Conflict
from app.registry import screening
from app.registry.eligibility import determine_eligibility
from app.registry.imports import import_residents
from app.registry.programs import ProgramSpec, create_program
from app.tenancy.transaction import tenant_transaction
from payouts import batches, holds
from tests.registry.helpers import create_application, person, residents_csv
from tests.staff.conftest import make_staff

BASE = dt.date(2026, 4, 1)


def _household(tag: str) -> list[dict]:
    head = person(household_no=f"H-{tag}", family_kana="ヤマダ", given_kana="タロウ")
    spouse = person(household_no=f"H-{tag}", relationship="妻", given_name="花子", given_kana="ハナコ")
    return [head, spouse]


def _after(rows: list[dict], head_fate: str | None) -> list[dict]:
    """The household in a later snapshot: the head removed (死亡 or 転出) and, after a death, the spouse the new
    世帯主."""
    head, spouse = (dict(r) for r in rows)
    if head_fate is None:
        return [head, spouse]
    head.update(removed_on="2026-05-10", removal_reason=head_fate)
    if head_fate == "死亡":
        spouse.update(relationship="世帯主", is_head="1")
    return [head, spouse]


async def _setup(app_pool, cipher, code, households: dict[str, list[dict]], rule: str = "new_head"):
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv([r for rows in households.values() for r in rows]))
        program_id = await create_program(
            conn,
            code,
            ProgramSpec(name="定額給付金", base_date=BASE, unit="household", amount_yen=100000, payment_mode="letter"),
        )
        await conn.execute("UPDATE programs SET after_base_date_rule = $2 WHERE program_id = $1", program_id, rule)
        await determine_eligibility(conn, code, program_id)
        entitlements = {}
        for tag, rows in households.items():
            entitlements[tag] = await conn.fetchval(
                "SELECT entitlement_id FROM entitlements WHERE household_no = $1", rows[0]["household_no"]
            )
        for tag in households:
            await create_application(conn, cipher, code, entitlements[tag], "ﾔﾏﾀﾞ ﾀﾛｳ", outbox_job=False)
            await conn.execute(
                "UPDATE applications SET status = 'approved' WHERE entitlement_id = $1", entitlements[tag]
            )
    return program_id, entitlements


async def _holds_by_entitlement(conn) -> dict[int, dict]:
    rows = await conn.fetch("SELECT * FROM payment_holds WHERE source = 'screening' ORDER BY hold_id")
    return {r["entitlement_id"]: dict(r) for r in rows}


async def test_a_newer_snapshot_holds_payees_who_died_or_moved_with_the_rule_suggested(app_pool, cipher, code):
    people = {tag: _household(tag) for tag in ("dead", "moved", "same", "struck")}
    program_id, ent = await _setup(app_pool, cipher, code, people)
    later = (
        _after(people["dead"], "死亡")
        + _after(people["moved"], "転出")
        + _after(people["same"], None)
        + _after(people["struck"], "職権消除")
    )
    async with tenant_transaction(app_pool, code) as conn:
        assert await conn.fetchval("SELECT count(*) FROM payment_holds") == 0  # the first snapshot: nobody removed
        imported = await import_residents(conn, code, residents_csv(later))
        found = await _holds_by_entitlement(conn)
        run = await conn.fetchrow("SELECT * FROM registry_screenings WHERE snapshot_id = $1", imported.snapshot_id)
        audit = await conn.fetchval(
            "SELECT details FROM audit_log WHERE action = 'screening.run' AND object_id = $1",
            str(imported.snapshot_id),
        )
    assert set(found) == {ent["dead"], ent["moved"], ent["struck"]}
    dead, moved, struck = found[ent["dead"]], found[ent["moved"]], found[ent["struck"]]
    assert (dead["reason"], dead["finding"], dead["suggestion"]) == ("death", "died", "new_head")
    assert dead["new_head_resident_code"] == people["dead"][1]["resident_code"]
    assert dead["removed_on"] == dt.date(2026, 5, 10) and dead["snapshot_id"] == imported.snapshot_id
    assert (moved["reason"], moved["finding"], moved["suggestion"]) == ("moved_out", "moved_out", "release")
    assert (struck["reason"], struck["finding"], struck["suggestion"]) == ("investigation", "removed", None)
    assert (run["checked"], run["held"]) == (4, 3) and '"held":3' in audit
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        assert (await batches.draft_preview(conn, code, program_id))["pending_count"] == 1  # only "same"


async def test_the_program_rule_stop_suggests_stopping_and_a_lone_head_has_no_successor(app_pool, cipher, code):
    alone = [person(household_no="H-alone")]
    people = {"dead": _household("d2"), "alone": alone}
    _, ent = await _setup(app_pool, cipher, code, people, rule="stop")
    gone = dict(alone[0], removed_on="2026-06-01", removal_reason="死亡")
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv(_after(people["dead"], "死亡") + [gone]))
        found = await _holds_by_entitlement(conn)
    assert found[ent["dead"]]["suggestion"] == "stop" and found[ent["dead"]]["new_head_resident_code"] is None
    assert found[ent["alone"]]["suggestion"] == "stop"


async def test_deciding_for_the_new_head_moves_the_entitlement_and_a_decision_is_not_asked_again(
    app_pool, cipher, code, world_staff
):
    people = {"dead": _household("d3"), "moved": _household("m3")}
    program_id, ent = await _setup(app_pool, cipher, code, people)
    rev = await world_staff(code, "rev", ["reviewer"])
    later = _after(people["dead"], "死亡") + _after(people["moved"], "転出")
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv(later))
        found = await _holds_by_entitlement(conn)
        await holds.decide(conn, code, rev, found[ent["dead"]]["hold_id"], "new_head", "妻が新しい世帯主")
        await holds.decide(conn, code, rev, found[ent["moved"]]["hold_id"], "release", "転出先で受取を確認")
        entitlement = await conn.fetchrow("SELECT * FROM entitlements WHERE entitlement_id = $1", ent["dead"])
        application = await conn.fetchval("SELECT status FROM applications WHERE entitlement_id = $1", ent["dead"])
        with pytest.raises(Conflict, match="解除されています"):
            await holds.decide(conn, code, rev, found[ent["dead"]]["hold_id"], "stop", "x")
    assert entitlement["head_resident_code"] == people["dead"][1]["resident_code"]
    assert entitlement["status"] == "open" and application == "withdrawn"  # the new 世帯主 applies afresh
    # A still newer snapshot that says the same holds nothing again; the moved household is payable.
    async with tenant_transaction(app_pool, code) as conn:
        again = await import_residents(conn, code, residents_csv(later + [person(household_no="H-new")]))
        assert await conn.fetchval("SELECT count(*) FROM payment_holds WHERE snapshot_id = $1", again.snapshot_id) == 0
        assert (await batches.draft_preview(conn, code, program_id))["pending_count"] == 1
        actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log WHERE object_type = 'hold'")]
    assert actions == ["hold.release", "hold.release"]  # the decisions, with their decision in details


async def test_what_went_to_the_bank_is_not_screened_and_eligibility_screens_its_new_entitlements(
    app_pool, cipher, code
):
    people = {"paid": _household("p4")}
    # Moved out after 基準日 but before eligibility ran: the one member is still the household's head on 基準日
    # (a death in a household with a living successor is not this case: eligibility names the living head).
    moved_before_eligibility = [person(household_no="H-l4", removed_on="2026-05-01", removal_reason="転出")]
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv(people["paid"] + moved_before_eligibility))
        program_id = await create_program(
            conn,
            code,
            ProgramSpec(name="給付金", base_date=BASE, unit="household", amount_yen=50000, payment_mode="letter"),
        )
        # Entitlements made after the import: eligibility screens them (the import could not).
        await determine_eligibility(conn, code, program_id)
        late = await conn.fetchval("SELECT entitlement_id FROM entitlements WHERE household_no = 'H-l4'")
        assert set(await _holds_by_entitlement(conn)) == {late}
        paid = await conn.fetchval("SELECT entitlement_id FROM entitlements WHERE household_no = 'H-p4'")
        await conn.execute("UPDATE entitlements SET status = 'paid' WHERE entitlement_id = $1", paid)
        result = await import_residents(
            conn, code, residents_csv(_after(people["paid"], "死亡") + moved_before_eligibility)
        )
        assert result.already_imported is False
        assert set(await _holds_by_entitlement(conn)) == {late}  # the paid one is 組戻し's business, not a hold


async def test_the_batch_states_the_snapshot_it_was_screened_against(app_pool, cipher, code, world_staff):
    people = {"a": _household("a5")}
    program_id, _ = await _setup(app_pool, cipher, code, people)
    drafter = await world_staff(code, "drafter", ["drafter"])
    async with tenant_transaction(app_pool, code) as conn:
        latest = await screening.latest(conn, code)
        batch_id = await conn.fetchval(
            "INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by, record_count,"
            " total_yen, status) VALUES ($1, $2, current_date + 7, $3, 0, 0, 'preparing') RETURNING batch_id",
            code,
            program_id,
            drafter.staff_id,
        )
        await conn.execute("UPDATE payout_batches SET status = 'draft' WHERE batch_id = $1", batch_id)
        stated = await holds.batch_screening(conn, code, batch_id)
    assert stated["screened_snapshot_id"] == latest["snapshot_id"] and stated["checked"] == 1
    assert stated["latest_published"] == latest["snapshot_id"]


@pytest.fixture
def world_staff(app_pool, settings):
    from app.tenancy.municipalities import load_field_cipher
    from tests.staff.conftest import World

    async def make(code: str, login: str, roles: list[str]):
        async with tenant_transaction(app_pool, code) as conn:
            world = World(code, await load_field_cipher(conn, settings.master_key_bytes, code))
            return await make_staff(conn, world, login, roles)

    return make

"""A cross-municipality duplicate for the demo (devtools/demo.py): a second demo municipality, 中央区（デモ）,
whose registry lists one of 千代田区（デモ）'s residents (moved in a week before 基準日, not yet removed in
千代田区), both running the same national benefit, so each console shows the case under 重複の疑い.

Idempotent like the rest of the seed: the extract is built from the database, so it re-imports as a no-op;
programs are found by name; contributing again finds the same case.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import asyncpg

from app.registry import duplicates
from app.registry.eligibility import determine_eligibility
from app.registry.imports import RESIDENT_COLUMNS, import_residents
from app.registry.programs import create_program, list_programs, parse_program
from app.tenancy.municipalities import MunicipalityExists, add_municipality
from app.tenancy.transaction import tenant_transaction
from devtools.demo_staff import seed_demo_staff

SECOND_MUNICIPALITY = ("131024", "中央区（デモ）")
SCHEME = "DEMO-TEIGAKU"
# 千代田区's program of this scheme (devtools/demo_registry.py), and 中央区's own.
FIRST_PROGRAM = "デモ 定額給付金（プッシュ型）"
SECOND_PROGRAM_NAME = "デモ 定額給付金（申請型）"
SECOND_PROGRAM = dict(
    name=SECOND_PROGRAM_NAME,
    base_date=dt.date(2026, 4, 1),
    unit="person",
    amount_yen=10000,
    payment_mode="application",
)
# The head of the program's first household: the person both registries list.
SHARED_PERSON = """
SELECT r.resident_code, r.family_name, r.given_name, r.family_kana, r.given_kana, r.birth_date, r.sex,
       e.household_no
FROM entitlements e
JOIN residents r ON r.municipality_code = e.municipality_code AND r.snapshot_id = e.snapshot_id
                AND r.resident_code = e.head_resident_code
WHERE e.municipality_code = $1 AND e.program_id = $2 AND e.status <> 'withdrawn'
ORDER BY e.household_no LIMIT 1
"""
REFERENCE = "SELECT reference FROM duplicate_cases WHERE municipality_code = $1 ORDER BY opened_at LIMIT 1"


def _extract(shared: asyncpg.Record) -> bytes:
    """中央区's small registry: the shared person (a household of their own since 2026-03-25) and two others."""
    empty = {"moved_in_on": "", "removed_on": "", "removal_reason": "", "prev_household_no": "",
             "household_changed_on": ""}  # fmt: skip
    rows = [
        dict(empty, resident_code=shared["resident_code"], household_no="C0001", relationship="世帯主", is_head="1",
             family_name=shared["family_name"], given_name=shared["given_name"], family_kana=shared["family_kana"],
             given_kana=shared["given_kana"], birth_date=shared["birth_date"].isoformat(), sex=shared["sex"],
             address="東京都中央区築地1-1-1", moved_in_on="2026-03-25"),
        dict(empty, resident_code="90000000001", household_no="C0002", relationship="世帯主", is_head="1",
             family_name="銀座", given_name="一郎", family_kana="ギンザ", given_kana="イチロウ",
             birth_date="1970-02-03", sex="1", address="東京都中央区銀座1-1-1"),
        dict(empty, resident_code="90000000002", household_no="C0003", relationship="世帯主", is_head="1",
             family_name="月島", given_name="花", family_kana="ツキシマ", given_kana="ハナ",
             birth_date="1988-11-12", sex="2", address="東京都中央区月島1-1-1"),
    ]  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.header for c in RESIDENT_COLUMNS])
    for row in rows:
        writer.writerow([row[c.name] for c in RESIDENT_COLUMNS])
    return out.getvalue().encode()


async def _program(conn: asyncpg.Connection, code: str, name: str) -> int | None:
    return next((p["program_id"] for p in await list_programs(conn, code) if p["name"] == name), None)


async def seed_duplicate(conn: asyncpg.Connection, settings, first_code: str) -> list[str]:
    """Seed 中央区 (logins as 千代田区's) and the shared person; printable lines. `conn`: the owner's."""
    key = settings.duplicate_key_bytes
    code, name = SECOND_MUNICIPALITY
    async with tenant_transaction(conn, first_code):
        first_program = await _program(conn, first_code, FIRST_PROGRAM)
        if first_program is None:
            return []
        shared = await conn.fetchrow(SHARED_PERSON, first_code, first_program)
        if shared is None:
            return []
        await duplicates.set_scheme(conn, first_code, first_program, SCHEME)
        await duplicates.contribute_municipality(conn, key, first_code, "demo", first_program)
    try:
        await add_municipality(conn, settings.master_key_bytes, code, name)
    except MunicipalityExists:
        pass
    async with tenant_transaction(conn, code):
        # The same demo logins and passwords; their TOTP secrets are not printed (kyufu staff totp prints codes).
        await seed_demo_staff(conn, code, settings.master_key_bytes)
    async with tenant_transaction(conn, code):
        await import_residents(conn, code, _extract(shared))
        program_id = await _program(conn, code, SECOND_PROGRAM_NAME) or await create_program(
            conn, code, parse_program(SECOND_PROGRAM)
        )
        await duplicates.set_scheme(conn, code, program_id, SCHEME)
        await determine_eligibility(conn, code, program_id)
        await duplicates.contribute_municipality(conn, key, code, "demo", program_id)
    async with tenant_transaction(conn, first_code):
        reference = await conn.fetchval(REFERENCE, first_code)
    return [
        f"municipality {code} {name}: the same staff logins and passwords (TOTP: kyufu staff totp --municipality"
        f" {code} --login <login>)",
        f"cross-municipality duplicate (national scheme {SCHEME}): {name} also lists the head of {first_code}'s"
        f" household {shared['household_no']}; case {reference} under 重複の疑い in both consoles",
    ]

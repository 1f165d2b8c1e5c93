"""A proxy case and a DV 申出 for the demo (devtools/demo.py), after devtools/demo_duplicates.py made the
second municipality and put both on the national scheme DEMO-TEIGAKU.

* 代理申請 (千代田区): the spouse of a household of the 確認書型 program applied at the counter for the
  世帯主, keyed by the demo reviewer through the console's own function (app/intake/proxy.py); the
  application waits in 審査 with the proxy shown beside it.
* DV 申出: 中央区（デモ） recorded a 申出 of a spouse (and the children who fled with her) whose 住民票 is
  in 千代田区's household of the プッシュ型 program (app/registry/dv.py). 千代田区's reviewer sees a reference
  and two of its own residents under DV等避難者の申出 and takes them out of the household; until then the
  household's payment is held, and 中央区 pays the evacuees only after that.

Idempotent: the households are found the same way each time, and a household that already has its proxy
application or its 申出 is reported, not filed again.
"""

from __future__ import annotations

import asyncpg

from app.intake import proxy
from app.intake.forms import parse_bank
from app.principals import Staff
from app.registry import dv
from app.staff.accounts import STAFF_COLUMNS
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from devtools.demo_duplicates import FIRST_PROGRAM, SECOND_MUNICIPALITY, SECOND_PROGRAM_NAME
from payouts.kana import to_zengin_kana

PROXY_PROGRAM = "デモ 物価高騰対策給付金（確認書型）"
REVIEWER = f"SELECT {STAFF_COLUMNS} FROM staff_users WHERE municipality_code = $1 AND login = 'reviewer'"
PROGRAM = "SELECT program_id FROM programs WHERE municipality_code = $1 AND name = $2"
# A household of the program with a living spouse and nothing applied or paid yet, picked by a hash of its
# number among all but the first and last twenty (which the other demos and the printed letters use).
HOUSEHOLD = """
SELECT e.entitlement_id, e.household_no, s.family_name, s.given_name, s.family_kana, s.given_kana, s.birth_date,
       s.resident_code
FROM entitlements e
JOIN residents s ON s.municipality_code = e.municipality_code AND s.snapshot_id = e.snapshot_id
                AND s.household_no = e.household_no AND s.relationship IN ('妻', '夫') AND s.removed_on IS NULL
WHERE e.municipality_code = $1 AND e.program_id = $2 AND e.status = 'open' AND e.dv_reference IS NULL
  AND NOT EXISTS (SELECT 1 FROM applications a WHERE a.municipality_code = e.municipality_code
                  AND a.entitlement_id = e.entitlement_id)
  AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.municipality_code = e.municipality_code
                  AND p.entitlement_id = e.entitlement_id)
  AND NOT EXISTS (SELECT 1 FROM letters l WHERE l.municipality_code = e.municipality_code
                  AND l.entitlement_id = e.entitlement_id AND l.exported_at IS NOT NULL)
  AND e.household_no NOT IN (SELECT x.household_no FROM entitlements x WHERE x.municipality_code = $1
                            AND x.program_id = $2 ORDER BY x.household_no LIMIT 20)
  AND e.household_no NOT IN (SELECT x.household_no FROM entitlements x WHERE x.municipality_code = $1
                            AND x.program_id = $2 ORDER BY x.household_no DESC LIMIT 20)
ORDER BY md5(e.household_no) LIMIT 1
"""
CHILDREN = """
SELECT r.family_name, r.given_name, r.family_kana, r.given_kana, r.birth_date FROM entitlements e
JOIN residents r ON r.municipality_code = e.municipality_code AND r.snapshot_id = e.snapshot_id
                AND r.household_no = e.household_no AND r.relationship = '子' AND r.removed_on IS NULL
WHERE e.municipality_code = $1 AND e.entitlement_id = $2
ORDER BY r.birth_date LIMIT 2
"""
PROXY_DONE = """
SELECT a.receipt_no, e.household_no FROM application_proxies x
JOIN applications a ON a.municipality_code = x.municipality_code AND a.application_id = x.application_id
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
WHERE x.municipality_code = $1 ORDER BY x.recorded_at LIMIT 1
"""
DV_DONE = "SELECT reference FROM dv_requests WHERE municipality_code = $1 ORDER BY filed_at LIMIT 1"


async def _reviewer(conn: asyncpg.Connection, code: str) -> Staff | None:
    row = await conn.fetchrow(REVIEWER, code)
    return Staff.from_row(row) if row else None


async def seed_proxy(conn: asyncpg.Connection, settings, code: str) -> list[str]:
    """The proxy case in `code` (inside nothing: opens its own tenant transaction); printable lines."""
    async with tenant_transaction(conn, code):
        done = await conn.fetchrow(PROXY_DONE, code)
        program_id = await conn.fetchval(PROGRAM, code, PROXY_PROGRAM)
        staff = await _reviewer(conn, code)
        if done is None and program_id is not None and staff is not None:
            spouse = await conn.fetchrow(HOUSEHOLD, code, program_id)
            if spouse is not None:
                data = {
                    "program_id": str(program_id),
                    "household_no": spouse["household_no"],
                    "relationship": "household_member",
                    "proxy_name": f"{spouse['family_name']} {spouse['given_name']}",
                    "proxy_kana": f"{spouse['family_kana']} {spouse['given_kana']}",
                    "proxy_birth_date": spouse["birth_date"].isoformat(),
                    "evidence": ["proxy_identity", "delegation", "account_document"],
                    "payee": "head",
                }
                cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
                account = parse_bank(
                    {"bank_code": "0001", "branch_code": "001", "account_number": "6100001", "holder_kana": "ﾀﾞｲﾘ ﾃｽﾄ"}
                )
                await proxy.record(conn, settings, cipher, code, staff, proxy.parse(data), account)
                done = await conn.fetchrow(PROXY_DONE, code)
    if done is None:
        return []
    return [
        f"代理申請: the spouse of household {done['household_no']} applied at the counter for the 世帯主;"
        f" receipt {done['receipt_no']} waits in 審査 (login reviewer; key another at /staff/proxy)"
    ]


async def seed_dv(conn: asyncpg.Connection, settings, registered: str) -> list[str]:
    """中央区 records a DV 申出 of a spouse registered in `registered` (千代田区); printable lines."""
    filed_in, filed_name = SECOND_MUNICIPALITY
    async with tenant_transaction(conn, filed_in):
        reference = await conn.fetchval(DV_DONE, filed_in)
    if reference is None:
        async with tenant_transaction(conn, registered):
            program_b = await conn.fetchval(PROGRAM, registered, FIRST_PROGRAM)
            spouse = program_b and await conn.fetchrow(HOUSEHOLD, registered, program_b)
            children = await conn.fetch(CHILDREN, registered, spouse["entitlement_id"]) if spouse else []
        if not spouse:
            return []
        people = [spouse, *children]
        data = {
            "registered_code": registered,
            "evidence": "support_certificate",
            "evidence_issued_on": "2026-05-01",
            "address": "東京都中央区晴海9-9-9（デモ）",
            "contact": "",
        }
        for i, p in enumerate(people):
            data |= {
                f"p{i}_name": f"{p['family_name']} {p['given_name']}",
                f"p{i}_kana": f"{p['family_kana']} {p['given_kana']}",
                f"p{i}_birth_date": p["birth_date"].isoformat(),
            }
        async with tenant_transaction(conn, filed_in):
            program_a = await conn.fetchval(PROGRAM, filed_in, SECOND_PROGRAM_NAME)
            staff = await _reviewer(conn, filed_in)
            if program_a is None or staff is None:
                return []
            cipher = await load_field_cipher(conn, settings.master_key_bytes, filed_in)
            holder = to_zengin_kana(f"{spouse['family_kana']} {spouse['given_kana']}", allow_wo=True)
            account = parse_bank(
                {"bank_code": "0001", "branch_code": "001", "account_number": "6200001", "holder_kana": holder}
            )
            filed = await dv.file_request(
                conn,
                settings.duplicate_key_bytes,
                cipher,
                filed_in,
                staff,
                dv.parse(data | {"program_id": str(program_a)}),
                account,
            )
            reference = filed.reference
    return [
        f"DV 申出 {reference}: {filed_name} recorded it for people registered here; under DV等避難者の申出"
        f" (login reviewer) take them out of their household — its payment waits until then, and {filed_name}"
        " pays them only after that (its console shows the answer)",
    ]


async def seed_proxy_dv(conn: asyncpg.Connection, settings, code: str) -> list[str]:
    """Both, for devtools/demo.py (`conn`: the owner's connection; `code`: the demo municipality)."""
    return await seed_proxy(conn, settings, code) + await seed_dv(conn, settings, code)

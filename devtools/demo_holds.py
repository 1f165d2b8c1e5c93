"""A death after 基準日 for the demo (devtools/demo.py): one household of the 確認書型 program applies, then a
newer 住基 extract arrives in which its 世帯主 died after 基準日 and the spouse became 世帯主. Importing it
screens every unpaid entitlement (app/registry/screening.py): the application's entitlement is held for a
reviewer, with the program's rule (pay the new 世帯主) suggested, and the resident's status page says only
that the application is being checked.

Idempotent like the rest of the seed: the newer extract is the demo's own extract with that one household
changed, the same bytes every time (a second import is a no-op); the application is submitted once.
"""

from __future__ import annotations

import csv
import io

import asyncpg

from app.intake.claims import submit_application
from app.intake.forms import BankAccount
from app.registry.imports import RESIDENT_COLUMNS, import_residents
from app.tenancy.transaction import tenant_transaction
from devtools.demo_registry import DEMO_HOUSEHOLDS
from devtools.synthetic import generate
from payouts.kana import to_zengin_kana

PROGRAM = "デモ 物価高騰対策給付金（確認書型）"
DIED_ON = "2026-06-01"  # after the demo programs' 基準日, 2026-04-01
# The last household of the program with a living spouse (妻 or 夫) beside its 世帯主: the last, so that the
# other demos, which take the first households, are not disturbed. Chosen in the demo's first extract, so a
# later run, after a reviewer moved the entitlement to the new 世帯主, finds the same household.
TARGET = """
SELECT e.entitlement_id, e.household_no, h.resident_code AS head, h.family_kana, h.given_kana,
       s.resident_code AS spouse
FROM entitlements e
JOIN programs p ON p.municipality_code = e.municipality_code AND p.program_id = e.program_id
JOIN residents h ON h.municipality_code = e.municipality_code AND h.snapshot_id = $3
                AND h.household_no = e.household_no AND h.is_head AND h.removed_on IS NULL
JOIN residents s ON s.municipality_code = e.municipality_code AND s.snapshot_id = $3
                AND s.household_no = e.household_no AND s.relationship IN ('妻', '夫') AND s.removed_on IS NULL
WHERE e.municipality_code = $1 AND p.name = $2 AND e.status <> 'withdrawn'
ORDER BY e.household_no DESC LIMIT 1
"""
FIRST_SNAPSHOT = "SELECT min(snapshot_id) FROM registry_snapshots WHERE municipality_code = $1 AND kind = 'residents'"
APPLIED = """
SELECT a.receipt_no FROM applications a WHERE a.municipality_code = $1 AND a.entitlement_id = $2
  AND a.status NOT IN ('rejected', 'withdrawn')
"""
HOLD = """
SELECT h.hold_id, h.snapshot_id, h.released_at FROM payment_holds h
WHERE h.municipality_code = $1 AND h.entitlement_id = $2 AND h.source = 'screening' ORDER BY h.hold_id DESC LIMIT 1
"""


def _newer_extract(original: bytes, head: str, spouse: str) -> bytes:
    """The demo extract again, with `head` removed (死亡 on DIED_ON) and `spouse` the household's 世帯主."""
    reader = csv.reader(io.StringIO(original.decode("utf-8-sig")))
    header = next(reader)
    column = {c.name: header.index(c.header) for c in RESIDENT_COLUMNS}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in reader:
        if row[column["resident_code"]] == head:
            row[column["removed_on"]], row[column["removal_reason"]] = DIED_ON, "死亡"
        elif row[column["resident_code"]] == spouse:
            row[column["relationship"]], row[column["is_head"]] = "世帯主", "1"
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


async def seed_death(conn: asyncpg.Connection, settings, code: str) -> list[str]:
    """Apply for one household, import the newer extract, and say where the hold is."""
    async with tenant_transaction(conn, code):
        first = await conn.fetchval(FIRST_SNAPSHOT, code)
        target = await conn.fetchrow(TARGET, code, PROGRAM, first)
        if target is None:
            return ["(no household to seed a death in: the 確認書型 program has none with a spouse)"]
        if await conn.fetchval(APPLIED, code, target["entitlement_id"]) is None:
            holder = to_zengin_kana(f"{target['family_kana']} {target['given_kana']}")
            account = BankAccount("0001", "001", 1, "2026601", holder, "みずほ銀行", "東京営業部")
            await submit_application(
                conn,
                settings,
                code,
                target["entitlement_id"],
                account,
                "online",
                applicant_resident_code=target["head"],
            )
        receipt = await conn.fetchval(APPLIED, code, target["entitlement_id"])
        original = generate(DEMO_HOUSEHOLDS, seed=2026).residents_csv
        newer = await import_residents(conn, code, _newer_extract(original, target["head"], target["spouse"]))
        hold = await conn.fetchrow(HOLD, code, target["entitlement_id"])
    if hold is None:
        return [f"(the death in household {target['household_no']} was decided already; see /staff/holds)"]
    state = "decided" if hold["released_at"] else "waits for a reviewer's decision"
    return [
        f"household {target['household_no']} of {PROGRAM} applied (receipt {receipt}); in the newer 住基 extract",
        f"  (snapshot {newer.snapshot_id}) its 世帯主 died on {DIED_ON}, after 基準日 2026-04-01; the spouse is 世帯主",
        f"hold #{hold['hold_id']} {state}: console /staff/holds?hold={hold['hold_id']} as 'reviewer'",
        "  (suggested by the program's rule: pay the new 世帯主; the resident's status page says only 確認中;",
        "   a batch drafted now leaves it out, and the approval page names the snapshot it was screened against)",
    ]

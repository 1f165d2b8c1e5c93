"""Demo data for paper intake (devtools/demo.py): a box of returned 申請書 waiting to be keyed twice.

The box DEMO-0001 of the 確認書型 program holds six forms. The "paper" itself is printed at start (what is
written on each form), so that keyer1 and keyer2 can key it, and reviewer can decide what they disagree on:

* forms 1, 2: complete — keyed alike by both clerks, they are submitted (受付済, a receipt number);
* form 3: a household that has already applied online — the clerks are told so (申請済の世帯), nothing is
  submitted twice;
* form 4: the passbook copy is missing — 不備, and a 不備返戻 letter to export;
* form 5: one digit of the account number is hard to read — if the clerks read it differently, it waits
  for reviewer (裁定待ち), who sees both entries;
* form 6: only the first of the household's members wants the benefit — it waits for reviewer, who asks.

Idempotent: a second run finds the box and prints the same forms.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from app.intake import paper
from app.intake.claims import submit_application
from app.intake.forms import parse_bank
from app.registry.letters import format_access_code
from app.registry.programs import list_programs
from app.staff.accounts import STAFF_COLUMNS, Staff
from app.tenancy.transaction import tenant_transaction

BOX_NO = "DEMO-0001"
PROGRAM = "デモ 物価高騰対策給付金（確認書型）"
# Letters after the three whose PINs the registry demo prints (those are for the resident site).
FORMS = """
SELECT l.access_code, e.entitlement_id, e.members_counted, e.status, r.family_kana, r.given_kana
FROM letters l
JOIN entitlements e ON e.municipality_code = l.municipality_code AND e.entitlement_id = l.entitlement_id
JOIN residents r ON r.municipality_code = e.municipality_code AND r.snapshot_id = e.snapshot_id
                AND r.resident_code = e.head_resident_code
WHERE l.municipality_code = $1 AND e.program_id = $2 AND l.invalidated_at IS NULL
ORDER BY l.letter_id OFFSET 3 LIMIT 60
"""
BOX_EXISTS = "SELECT box_id FROM paper_boxes WHERE municipality_code = $1 AND box_no = $2"
STAFF_BY_LOGIN = f"SELECT {STAFF_COLUMNS} FROM staff_users WHERE municipality_code = $1 AND login = $2"


def _account(i: int) -> dict[str, str]:
    return {"bank_code": "0001", "branch_code": "001", "account_type": "1", "account_number": f"{2345670 + i:07d}"}


async def seed_paper(conn: asyncpg.Connection, settings, code: str) -> list[str]:
    """The demo box and what is written on its forms; printable lines. `conn`: the owner's connection."""
    async with tenant_transaction(conn, code):
        program_id = next((p["program_id"] for p in await list_programs(conn, code) if p["name"] == PROGRAM), None)
        row = await conn.fetchrow(STAFF_BY_LOGIN, code, "keyer1")
        if program_id is None or row is None:
            return []
        letters = await conn.fetch(FORMS, code, program_id)
        # Five in order, then a household of several members for the form where only one wants it.
        larger = [r for r in letters[5:] if r["members_counted"] >= 2]
        if len(letters) < 5 or not larger:
            return []
        forms = [*letters[:5], larger[0]]
        keyer = Staff.from_row(row)
        if await conn.fetchval(BOX_EXISTS, code, BOX_NO) is None:
            await paper.receive_box(conn, code, keyer, program_id, BOX_NO, dt.date.today(), len(forms))
        online = forms[2]
        if online["status"] == "open":  # this household applied online before its paper form arrived
            holder = f"{online['family_kana']} {online['given_kana']}"
            await submit_application(
                conn,
                settings,
                code,
                online["entitlement_id"],
                parse_bank(_account(2) | {"holder_kana": holder}),
                "online",
            )
    lines = [
        f"box {BOX_NO} ({PROGRAM}), 6 returned forms: sign in as keyer1, open 紙の申請書 → {BOX_NO} →"
        " 次の申請書を入力 and key them from the lines below (Enter moves to the next field); then keyer2 keys"
        " them again; reviewer decides 裁定待ち forms; 不備 letters: reviewer → 不備・不備返戻.",
    ]
    notes = {
        3: "this household already applied online: the clerks are told so",
        4: "口座確認書類 missing (leave it unchecked): 不備",
        5: "account number hard to read: keyer1 types it as printed, keyer2 with the last digit 1 → 裁定待ち",
        6: "the form lists {n} members, only member 1 wants the benefit: 裁定待ち, reviewer asks the household",
    }
    for seq, f in enumerate(forms, start=1):
        members = "1" if seq == 6 else "".join(str(n) for n in range(1, min(f["members_counted"], 9) + 1))
        account = _account(seq - 1)
        docs = "本人確認書類 あり, 口座確認書類 " + ("なし" if seq == 4 else "あり")
        lines.append(
            f"  通番 {seq}: 確認書番号 {format_access_code(f['access_code'])}, 世帯員 {members}, 金融機関 "
            f"{account['bank_code']} 支店 {account['branch_code']} 普通 {account['account_number']}, 名義 "
            f"{f['family_kana']} {f['given_kana']}, {docs}"
            + (f"  ({notes[seq].format(n=f['members_counted'])})" if seq in notes else "")
        )
    return lines

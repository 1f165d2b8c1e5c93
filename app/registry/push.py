"""プッシュ型: 辞退 (decline) before the deadline, and settlement after it.

Settlement turns each open push entitlement whose 支給のお知らせ was printed, whose head has a
registered account and which did not decline into an application of channel 'push', with the account
copied (re-encrypted, bound to the new application row). The account-holder check (payouts/holder.py)
decides its status: verified when the holder is the head, needs_review with kana_mismatch,
holder_is_member_not_applicant or registry_kana_invalid otherwise (the 公金受取口座 review found accounts
registered to the wrong person or to a family member). It goes through the same
`applications_one_active` index as online and paper claims, so a household that also applied online
gets one application, never two. Running it again finds nothing left to do.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from app.crypto import FieldCipher
from app.registry.errors import DeclineNotAllowed, EntitlementNotFound, RegistryError
from app.registry.events import record_event
from app.registry.programs import get_program
from app.registry.receipts import receipt_key, receipt_number

# The same two statements verification uses: claiming the entitlement and recording the account's keyed hash.
from app.registry.verify import CLAIM, SAVE_KEYS as INSERT_ACCOUNT_KEYS, household_keys
from payouts.accounts import account_key
from payouts.holder import holder_check, holder_key, registry_key

TODAY = "SELECT current_date"  # the server runs in Asia/Tokyo: deadlines are Japanese calendar days

LOCK_ENTITLEMENT = """
SELECT e.entitlement_id, e.status, p.payment_mode, p.decline_deadline
FROM entitlements e JOIN programs p ON p.municipality_code = e.municipality_code AND p.program_id = e.program_id
WHERE e.municipality_code = $1 AND e.entitlement_id = $2
FOR UPDATE OF e
"""
DECLINE = "UPDATE entitlements SET status = 'declined' WHERE municipality_code = $1 AND entitlement_id = $2"

SETTLE_CANDIDATES = """
SELECT e.entitlement_id, e.head_resident_code, ra.bank_code, ra.branch_code, ra.account_type,
       ra.account_number_enc, ra.holder_kana_enc, h.family_kana AS head_family_kana, h.given_kana AS head_given_kana
FROM entitlements e
JOIN registered_accounts ra ON ra.municipality_code = e.municipality_code AND ra.resident_code = e.head_resident_code
LEFT JOIN residents h ON h.municipality_code = e.municipality_code AND h.snapshot_id = e.snapshot_id
                     AND h.resident_code = e.head_resident_code
WHERE e.municipality_code = $1 AND e.program_id = $2 AND e.status = 'open'
  AND EXISTS (SELECT 1 FROM letters l WHERE l.municipality_code = e.municipality_code
              AND l.entitlement_id = e.entitlement_id AND l.kind = 'push_notice' AND l.exported_at IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM applications a WHERE a.municipality_code = e.municipality_code
                  AND a.entitlement_id = e.entitlement_id AND a.status NOT IN ('rejected', 'withdrawn'))
ORDER BY e.entitlement_id
FOR UPDATE OF e
"""
ALLOCATE_IDS = "SELECT nextval(pg_get_serial_sequence('applications', 'application_id')) FROM generate_series(1, $1)"
INSERT_PUSH_APPLICATIONS = """
INSERT INTO applications (application_id, municipality_code, entitlement_id, receipt_no, channel, status,
    reason_codes, applicant_resident_code, bank_code, branch_code, account_type, account_number_enc,
    holder_kana_enc, decided_at)
OVERRIDING SYSTEM VALUE
SELECT id, $1, ent, receipt, 'push', CASE WHEN reason = '' THEN 'verified' ELSE 'needs_review' END,
       CASE WHEN reason = '' THEN '{}'::text[] ELSE ARRAY[reason] END, head, b, br, t, n, k, now()
FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::int2[], $8::bytea[], $9::bytea[],
            $10::text[], $11::text[])
     AS u(id, ent, head, b, br, t, n, k, receipt, reason)
ON CONFLICT DO NOTHING
RETURNING application_id, entitlement_id
"""
DUE_PROGRAMS = """
SELECT program_id FROM programs
WHERE municipality_code = $1 AND payment_mode = 'push' AND decline_deadline < current_date
ORDER BY program_id
"""


async def decline(
    conn: asyncpg.Connection, code: str, entitlement_id: int, *, actor: str = "resident", today: dt.date | None = None
) -> None:
    """辞退: the household refuses a プッシュ型 payout. Only while the entitlement is open and on or
    before the deadline (call inside tenant_transaction)."""
    row = await conn.fetchrow(LOCK_ENTITLEMENT, code, entitlement_id)
    if row is None:
        raise EntitlementNotFound(f"受給資格 {entitlement_id} はありません。")
    today = today or await conn.fetchval(TODAY)
    if row["payment_mode"] != "push":
        raise DeclineNotAllowed("辞退の手続きはプッシュ型の給付だけです。")
    if row["status"] == "declined":
        return  # already declined: the same request twice has one effect
    if today > row["decline_deadline"]:
        raise DeclineNotAllowed(f"辞退期限（{row['decline_deadline'].isoformat()}）を過ぎています。")
    if row["status"] != "open":
        raise DeclineNotAllowed("この受給資格は既に支給手続きに入っているため辞退できません。")
    await conn.execute(DECLINE, code, entitlement_id)
    await record_event(conn, code, actor, "push.decline", {"entitlement_id": entitlement_id})


async def settle_push(
    conn: asyncpg.Connection,
    cipher: FieldCipher,
    code: str,
    program_id: int,
    *,
    actor: str = "system",
    today: dt.date | None = None,
) -> int:
    """Create push applications for a program whose 辞退 deadline has passed; return how many."""
    program = await get_program(conn, code, program_id, lock=True)
    if program["payment_mode"] != "push":
        raise RegistryError("プッシュ型の給付ではありません。")
    today = today or await conn.fetchval(TODAY)
    if today <= program["decline_deadline"]:
        return 0
    rows = await conn.fetch(SETTLE_CANDIDATES, code, program_id)
    if not rows:
        return 0
    ids = [r[0] for r in await conn.fetch(ALLOCATE_IDS, len(rows))]
    numbers, kanas, keys, holders = [], [], [], []
    for app_id, r in zip(ids, rows):
        resident = r["head_resident_code"]
        number = cipher.decrypt_str("registered_accounts", "account_number", resident, r["account_number_enc"])
        kana = cipher.decrypt_str("registered_accounts", "holder_kana", resident, r["holder_kana_enc"])
        holders.append(holder_key(kana))
        numbers.append(cipher.encrypt("applications", "account_number", app_id, number))
        kanas.append(cipher.encrypt("applications", "holder_kana", app_id, kana))
        keys.append(account_key(cipher, r["bank_code"], r["branch_code"], r["account_type"], number))
    holder_problems = await _holder_problems(conn, code, rows, holders)
    created = await conn.fetch(
        INSERT_PUSH_APPLICATIONS,
        code,
        ids,
        [r["entitlement_id"] for r in rows],
        [r["head_resident_code"] for r in rows],
        [r["bank_code"] for r in rows],
        [r["branch_code"] for r in rows],
        [r["account_type"] for r in rows],
        numbers,
        kanas,
        [receipt_number(receipt_key(cipher.key), i) for i in ids],
        holder_problems,
    )
    made = {c["application_id"] for c in created}
    await conn.execute(CLAIM, code, [c["entitlement_id"] for c in created])
    await conn.execute(
        INSERT_ACCOUNT_KEYS, code, [i for i in ids if i in made], [k for i, k in zip(ids, keys) if i in made]
    )
    to_review = sum(1 for i, problem in zip(ids, holder_problems) if i in made and problem)
    await record_event(
        conn,
        code,
        actor,
        "push.settle",
        {"program_id": program_id, "applications": len(created), "needs_review": to_review},
    )
    return len(created)


async def _holder_problems(
    conn: asyncpg.Connection, code: str, rows: list[asyncpg.Record], holders: list[str | None]
) -> list[str]:
    """The account-holder check of each candidate ('' when its holder is the head). Most holders are the
    head: only the other households' members are read (a city settles hundreds of thousands at once)."""
    same = [
        h is not None
        and r["head_family_kana"] is not None
        and h == registry_key(r["head_family_kana"], r["head_given_kana"])
        for r, h in zip(rows, holders)
    ]
    others = [r["entitlement_id"] for r, ok in zip(rows, same) if not ok]
    households = await household_keys(conn, code, others) if others else {}
    return [
        "" if ok else holder_check(h, r["head_resident_code"], households.get(r["entitlement_id"], {})) or ""
        for r, h, ok in zip(rows, holders, same)
    ]


async def due_programs(conn: asyncpg.Connection, code: str) -> list[int]:
    return [r["program_id"] for r in await conn.fetch(DUE_PROGRAMS, code)]

"""支給保留・支給停止: holds on an entitlement, which keep every payment of it out of the bank file.

The rule lives in the database (migration 0025): while a hold is active, the drafts leave the entitlement
out, no payment of it enters a batch (trigger payments_not_held), a batch already holding one is not
approved (payout_batches_no_held_payment) and the release job seals nothing (`batch_hold`, checked by
payouts/batches.py before sealing). This module is how people and other modules place and lift holds:

* `place_hold(conn, code, staff, entitlement_id, reason, note)`: a staff member's hold (or, with
  `staff=None`, the service's own, source 'system': another module acting for the municipality in scope,
  such as a DV 申出 that reduces a registered household's entitlement). Returns the hold id; placing the
  same reason twice on one entitlement returns the active hold's id. A payment already sent to the bank
  cannot be held (組戻し is the way then: payouts/recovery.py).
* `stop_hold`: the hold becomes a 支給停止 (the decision not to pay); `release_hold`: the hold is lifted
  (decision 'release': pay as before). A stop is lifted only by another account than the one that stopped
  it (CHECK payment_holds_stop_four_eyes). Holds the registry screening placed (app/registry/screening.py)
  are decided with `decide`, which also knows 'new_head'.

Who: any reviewer, drafter or admin may place a hold (stopping money is never the risky direction);
reviewers decide (stop, release). Every step is in the audit trail with its reason code and the staff
member's note (`hold.place`, `hold.stop`, `hold.release`); the resident's status page only learns that the
application is being checked (app/intake/status.py), never the reason.

Call everything inside the caller's tenant_transaction(conn, code).
"""

from __future__ import annotations

import asyncpg

from app import audit
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.principals import Staff

REASONS = {
    "dv": "DV等避難",
    "death": "死亡",
    "moved_out": "転出",
    "investigation": "調査中",
    "seizure": "差押禁止等の確認",
}
KINDS = {"hold": "支給保留", "stop": "支給停止"}
DECISIONS = {"release": "保留を解除（支給する）", "new_head": "新しい世帯主に支給（新しい世帯主が申請する）"}
SOURCES = {"staff": "職員", "screening": "住基照合", "system": "システム"}
FINDINGS = {
    "died": "受取人（世帯主）が基準日後に死亡",
    "moved_out": "受取人（世帯主）が基準日後に転出",
    "removed": "受取人（世帯主）が基準日後に消除（死亡・転出以外）",
}
SUGGESTIONS = {"release": "支給する（基準日の世帯に支給）", "new_head": "新しい世帯主に支給", "stop": "支給停止"}
NOTE_MAX = 1000

ENTITLEMENT = """
SELECT e.entitlement_id, e.status FROM entitlements e WHERE e.municipality_code = $1 AND e.entitlement_id = $2
FOR UPDATE
"""
# Lock the entitlement's payments: a draft freezing one at this moment either went first (we see it in a
# batch) or waits for us (and then the trigger refuses it).
PAYMENTS = """
SELECT p.payment_id, kyufu_payment_sent(p.municipality_code, p.payment_id) AS sent
FROM payments p WHERE p.municipality_code = $1 AND p.entitlement_id = $2 AND p.status <> 'cancelled'
ORDER BY p.payment_id
"""
INSERT_HOLD = """
INSERT INTO payment_holds (municipality_code, entitlement_id, payment_id, reason, kind, source, note, placed_by,
                           stopped_by, stopped_at, stop_note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $5 = 'stop' THEN $8::bigint END,
        CASE WHEN $5 = 'stop' THEN now() END, CASE WHEN $5 = 'stop' THEN $7 END)
ON CONFLICT (municipality_code, entitlement_id, reason) WHERE released_at IS NULL DO NOTHING
RETURNING hold_id
"""
ACTIVE_SAME = """
SELECT hold_id FROM payment_holds
WHERE municipality_code = $1 AND entitlement_id = $2 AND reason = $3 AND released_at IS NULL
"""
HOLD = """
SELECT h.*, e.program_id, e.household_no, e.head_resident_code, e.amount_yen, pr.name AS program_name,
       pr.after_base_date_rule, pl.login AS placed_by_login, st.login AS stopped_by_login,
       rl.login AS released_by_login,
       (SELECT a.application_id FROM applications a WHERE a.municipality_code = h.municipality_code
        AND a.entitlement_id = h.entitlement_id ORDER BY (a.status NOT IN ('rejected', 'withdrawn')) DESC,
        a.application_id DESC LIMIT 1) AS application_id
FROM payment_holds h
JOIN entitlements e ON e.municipality_code = h.municipality_code AND e.entitlement_id = h.entitlement_id
JOIN programs pr ON pr.municipality_code = e.municipality_code AND pr.program_id = e.program_id
LEFT JOIN staff_users pl ON pl.municipality_code = h.municipality_code AND pl.staff_id = h.placed_by
LEFT JOIN staff_users st ON st.municipality_code = h.municipality_code AND st.staff_id = h.stopped_by
LEFT JOIN staff_users rl ON rl.municipality_code = h.municipality_code AND rl.staff_id = h.released_by
WHERE h.municipality_code = $1
"""
ONE_HOLD = HOLD + " AND h.hold_id = $2"
LOCK_HOLD = "SELECT * FROM payment_holds WHERE municipality_code = $1 AND hold_id = $2 FOR UPDATE"
ACTIVE_HOLDS = HOLD + " AND h.released_at IS NULL ORDER BY h.placed_at, h.hold_id LIMIT $2"
RECENT_RELEASED = HOLD + " AND h.released_at IS NOT NULL ORDER BY h.released_at DESC, h.hold_id DESC LIMIT $2"
ENTITLEMENT_HOLDS = HOLD + " AND h.entitlement_id = $2 ORDER BY h.hold_id DESC"
ACTIVE_COUNT = "SELECT count(*) FROM payment_holds WHERE municipality_code = $1 AND released_at IS NULL"
IS_HELD = """
SELECT EXISTS (SELECT 1 FROM payment_holds WHERE municipality_code = $1 AND entitlement_id = $2
               AND released_at IS NULL)
"""
STOP = """
UPDATE payment_holds SET kind = 'stop', stopped_by = $3, stopped_at = now(), stop_note = $4
WHERE municipality_code = $1 AND hold_id = $2 AND released_at IS NULL AND kind = 'hold'
"""
RELEASE = """
UPDATE payment_holds SET released_by = $3, released_at = now(), decision = $4, decision_note = $5
WHERE municipality_code = $1 AND hold_id = $2 AND released_at IS NULL
"""
# 'new_head': the entitlement now names the household's new 世帯主, who applies afresh (any earlier application
# is withdrawn, its 'ready' payment cancelled: they carry the old payee's account).
TO_NEW_HEAD = """
UPDATE entitlements SET head_resident_code = $3, status = 'open'
WHERE municipality_code = $1 AND entitlement_id = $2
"""
WITHDRAW_APPLICATIONS = """
UPDATE applications SET status = 'withdrawn', decided_at = now(), decided_by = $3
WHERE municipality_code = $1 AND entitlement_id = $2 AND status NOT IN ('rejected', 'withdrawn')
"""
CANCEL_READY = """
UPDATE payments SET status = 'cancelled'
WHERE municipality_code = $1 AND entitlement_id = $2 AND status = 'ready'
"""
IN_BATCH = """
SELECT EXISTS (SELECT 1 FROM payments WHERE municipality_code = $1 AND entitlement_id = $2 AND status = 'in_batch')
"""
# The residents snapshot a batch's payments were screened against (set when its preparation ended), the
# newest screening and the newest published snapshot: the approval page states all three.
BATCH_SCREENING = """
SELECT b.screened_snapshot_id, s.screened_at, s.checked,
       (SELECT max(x.snapshot_id) FROM registry_screenings x WHERE x.municipality_code = b.municipality_code)
         AS latest_screened,
       (SELECT max(n.snapshot_id) FROM registry_snapshots n WHERE n.municipality_code = b.municipality_code
        AND n.kind = 'residents' AND n.status = 'published') AS latest_published
FROM payout_batches b
LEFT JOIN registry_screenings s ON s.municipality_code = b.municipality_code AND s.snapshot_id = b.screened_snapshot_id
WHERE b.municipality_code = $1 AND b.batch_id = $2
"""
# Payments of the batch whose entitlement is held (payout_batches_no_held_payment refuses the approval).
BATCH_HOLD_COUNT = """
SELECT count(DISTINCT p.payment_id) FROM payments p
JOIN payment_holds h ON h.municipality_code = p.municipality_code AND h.entitlement_id = p.entitlement_id
WHERE p.municipality_code = $1 AND p.batch_id = $2 AND h.released_at IS NULL
"""

# Payments of the batch whose entitlement waits for a DV 申出 (dv_holds, migration 0026): the registered
# household before its municipality answered, or the evacuees' own entitlement before they were excluded.
BATCH_DV_HOLD_COUNT = """
SELECT count(DISTINCT p.payment_id) FROM payments p
JOIN dv_holds h ON h.municipality_code = p.municipality_code AND h.entitlement_id = p.entitlement_id
WHERE p.municipality_code = $1 AND p.batch_id = $2
"""


def _note(note: str | None, field: str = "メモ（note）") -> str | None:
    text = (note or "").strip()
    if len(text) > NOTE_MAX:
        raise InvalidInput(f"{field}は{NOTE_MAX}文字以内で入力してください。")
    return text or None


async def place_hold(
    conn: asyncpg.Connection,
    code: str,
    staff: Staff | None,
    entitlement_id: int,
    reason: str,
    note: str | None = None,
    *,
    kind: str = "hold",
    payment_id: int | None = None,
) -> int:
    """Put the entitlement (and every payment of it) on hold for `reason` (a key of REASONS); returns the
    hold id. `kind='stop'` places a 支給停止 at once. `staff=None`: the service itself (source 'system').
    Refused when a payment of the entitlement has already gone to the bank."""
    if staff is not None:
        staff.require("reviewer", "drafter", "admin")
    if reason not in REASONS:
        raise InvalidInput("保留の理由（reason）を一覧から選んでください。")
    if kind not in KINDS:
        raise InvalidInput("保留の種類（kind）を選んでください。")
    if kind == "stop" and staff is not None:
        staff.require("reviewer")
    text = _note(note)
    if staff is not None and text is None:
        raise InvalidInput("保留の経緯（note）を入力してください（監査記録に残ります）。")
    ent = await conn.fetchrow(ENTITLEMENT, code, entitlement_id)
    if ent is None:
        raise NotFound()
    if ent["status"] == "paid":
        raise Conflict("支給済みの受給権は保留できません。組戻し・返還の手続きをしてください。")
    payments = await conn.fetch(PAYMENTS, code, entitlement_id)
    if any(p["sent"] for p in payments):
        raise Conflict("この受給権の支払は既に銀行へ送信されています。組戻し・返還の手続きをしてください。")
    if payment_id is not None and payment_id not in {p["payment_id"] for p in payments}:
        raise NotFound()
    hold_id = await conn.fetchval(
        INSERT_HOLD,
        code,
        entitlement_id,
        payment_id,
        reason,
        kind,
        "staff" if staff is not None else "system",
        text,
        staff.staff_id if staff is not None else None,
    )
    if hold_id is None:  # already held for this reason: the active hold stands
        return await conn.fetchval(ACTIVE_SAME, code, entitlement_id, reason)
    await audit.append(
        conn,
        code,
        staff,
        "hold.place",
        "hold",
        hold_id,
        {"entitlement_id": entitlement_id, "payment_id": payment_id, "reason": reason, "kind": kind, "note": text},
    )
    return hold_id


async def _locked(conn: asyncpg.Connection, code: str, hold_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(LOCK_HOLD, code, hold_id)
    if row is None:
        raise NotFound()
    if row["released_at"] is not None:
        raise Conflict("この保留は既に解除されています。")
    return row


async def stop_hold(conn: asyncpg.Connection, code: str, staff: Staff, hold_id: int, note: str | None) -> None:
    """支給停止: the held entitlement is not to be paid. Lifted later only by another reviewer."""
    staff.require("reviewer")
    text = _note(note)
    if text is None:
        raise InvalidInput("支給停止の理由（note）を入力してください（監査記録に残ります）。")
    row = await _locked(conn, code, hold_id)
    if row["kind"] == "stop":
        raise Conflict("この受給権は既に支給停止です。")
    await conn.execute(STOP, code, hold_id, staff.staff_id, text)
    await audit.append(
        conn,
        code,
        staff,
        "hold.stop",
        "hold",
        hold_id,
        {"entitlement_id": row["entitlement_id"], "reason": row["reason"], "note": text},
    )


async def release_hold(conn: asyncpg.Connection, code: str, staff: Staff, hold_id: int, note: str | None) -> None:
    """Lift the hold (decision 'release'): the entitlement is paid as before, by the next draft (or, if a
    payment is in a draft batch, that batch may now be approved)."""
    await _release(conn, code, staff, hold_id, "release", note)


async def _release(
    conn: asyncpg.Connection, code: str, staff: Staff, hold_id: int, decision: str, note: str | None
) -> asyncpg.Record:
    staff.require("reviewer")
    text = _note(note, "判断の理由（note）")
    if text is None:
        raise InvalidInput("判断の理由（note）を入力してください（監査記録に残ります）。")
    row = await _locked(conn, code, hold_id)
    if row["kind"] == "stop" and row["stopped_by"] == staff.staff_id:
        # payment_holds_stop_four_eyes refuses it too.
        raise Forbidden("支給停止をした本人は解除できません。別の審査担当者が解除してください。")
    try:
        async with conn.transaction():  # a savepoint: the CHECK's refusal leaves the caller's transaction usable
            await conn.execute(RELEASE, code, hold_id, staff.staff_id, decision, text)
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name != "payment_holds_stop_four_eyes":
            raise
        raise Forbidden("支給停止をした本人は解除できません。別の審査担当者が解除してください。") from None
    await audit.append(
        conn,
        code,
        staff,
        "hold.release",
        "hold",
        hold_id,
        {
            "entitlement_id": row["entitlement_id"],
            "reason": row["reason"],
            "kind": row["kind"],
            "decision": decision,
            "note": text,
        },
    )
    return row


async def decide(
    conn: asyncpg.Connection, code: str, staff: Staff, hold_id: int, decision: str, note: str | None
) -> None:
    """A reviewer's decision on a hold (the screening's, usually, which suggests one): 'release' (pay as
    applied), 'stop' (支給停止) or 'new_head' (the entitlement goes to the household's new 世帯主 the
    screening found, who applies afresh; refused while a payment of it is in a batch)."""
    staff.require("reviewer")
    row = await _locked(conn, code, hold_id)  # another municipality's id is not found, whatever the form says
    if decision == "stop":
        await stop_hold(conn, code, staff, hold_id, note)
    elif decision == "release":
        await release_hold(conn, code, staff, hold_id, note)
    elif decision == "new_head":
        if row["new_head_resident_code"] is None:
            raise Conflict("新しい世帯主が分からないため、この判断はできません。")
        if await conn.fetchval(IN_BATCH, code, row["entitlement_id"]):
            raise Conflict("この受給権の支払は起案に含まれています。起案を取り消してから判断してください。")
        await _release(conn, code, staff, hold_id, "new_head", note)
        await conn.execute(CANCEL_READY, code, row["entitlement_id"])
        await conn.execute(WITHDRAW_APPLICATIONS, code, row["entitlement_id"], staff.staff_id)
        await conn.execute(TO_NEW_HEAD, code, row["entitlement_id"], row["new_head_resident_code"])
    else:
        raise InvalidInput("判断（decision）を選んでください。")


async def batch_screening(conn: asyncpg.Connection, code: str, batch_id: int) -> asyncpg.Record | None:
    """What the approval page says about the registry screening of the batch's payments."""
    return await conn.fetchrow(BATCH_SCREENING, code, batch_id)


async def get_hold(conn: asyncpg.Connection, code: str, hold_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(ONE_HOLD, code, hold_id)
    if row is None:
        raise NotFound()
    return row


async def active_holds(conn: asyncpg.Connection, code: str, limit: int = 500) -> list[asyncpg.Record]:
    """Active holds, oldest first (the console's list)."""
    return await conn.fetch(ACTIVE_HOLDS, code, limit)


async def recently_released(conn: asyncpg.Connection, code: str, limit: int = 50) -> list[asyncpg.Record]:
    return await conn.fetch(RECENT_RELEASED, code, limit)


async def active_count(conn: asyncpg.Connection, code: str) -> int:
    return int(await conn.fetchval(ACTIVE_COUNT, code))


async def entitlement_holds(conn: asyncpg.Connection, code: str, entitlement_id: int) -> list[asyncpg.Record]:
    """Every hold of the entitlement, newest first (the application page)."""
    return await conn.fetch(ENTITLEMENT_HOLDS, code, entitlement_id)


async def is_held(conn: asyncpg.Connection, code: str, entitlement_id: int) -> bool:
    return bool(await conn.fetchval(IS_HELD, code, entitlement_id))


async def batch_hold(conn: asyncpg.Connection, code: str, batch_id: int) -> str | None:
    """Why the batch may not be approved or released now (a payment of it is held), or None."""
    count = int(await conn.fetchval(BATCH_HOLD_COUNT, code, batch_id))
    if not count:
        waiting = int(await conn.fetchval(BATCH_DV_HOLD_COUNT, code, batch_id))
        if waiting:  # payout_batches_wait_for_dv_request (0026) refuses the approval too
            return (
                f"DV等避難者の申出への回答を待つ受給権の支払が{waiting}件含まれています。"
                "起案を取り消し、申出に回答してから（DV等避難者の申出）起案し直してください。"
            )
        return None
    return (
        f"支給保留・支給停止中の受給権の支払が{count}件含まれています。"
        "保留を解除するか、起案を取り消して起案し直してください（保留中の支払は含まれません）。"
    )

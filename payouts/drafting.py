"""振込起案: the drafter's request, and the worker's preparation of the batch.

Creating a program's payments means decrypting every application's account and encrypting it again bound
to a new payment row: for a city that is hundreds of thousands of rows, tens of seconds of CPU. So the
request only records the draft ('preparing', with the figures the drafter saw and the moment, drafted_at)
and asks the worker for job `prepare_batch` through the outbox (migration 0017). The job:

1. creates the payments in chunks, straight into the batch ('in_batch'), each chunk committed with the
   batch's cursor, for applications decided up to the draft's moment (verification that goes on during a
   surge is left for the next draft). A job stops after PREPARE_BUDGET_S and hands over to the next step
   (a new outbox row in the same transaction), so no job outlives arq's short timeout, and a worker killed
   mid-way loses at most one uncommitted chunk, which the next step redoes;
2. then, in one transaction, freezes the ready payments created up to that moment (returned or earlier
   payments), compares the batch with what the drafter saw and either makes it a 'draft' and asks for its
   hash (payouts/batches.py), or cancels it with the reason, returning its payments to 'ready'.

A second draft of the same program while one is preparing is refused by the database
(payout_batches_one_preparing).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import asyncpg

from app import audit, outbox
from app.crypto import FieldCipher
from app.db import fetch_always
from app.errors import Conflict, InvalidInput
from app.principals import Staff
from app.settings import Settings
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from payouts import batches
from payouts.bankdays import today_jst, transfer_date_problem
from payouts.payments import BANK_UNREADABLE, ELIGIBLE_CHUNK, create_payments

log = logging.getLogger("kyufu.payouts")

PREPARE_JOB = "prepare_batch"
# Payments per chunk (one transaction, one round of decrypt/encrypt): about a second of CPU.
PREPARE_CHUNK = 20_000
# How long one job runs before handing over to the next step: well under the worker's job_timeout (60 s).
PREPARE_BUDGET_S = 20.0

INSERT_PREPARING = """
INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by, record_count, total_yen,
                            status, expected_count, expected_total_yen)
VALUES ($1, $2, $3, $4, 0, 0, 'preparing', $5, $6)
ON CONFLICT (municipality_code, program_id) WHERE status = 'preparing' DO NOTHING
RETURNING batch_id
"""
TARGET = """
SELECT b.status, b.program_id, b.drafted_at, b.expected_count, b.expected_total_yen, b.prepare_step,
       b.prepare_cursor, u.staff_id, u.municipality_code, u.login, u.display_name, u.roles
FROM payout_batches b
JOIN staff_users u ON u.municipality_code = b.municipality_code AND u.staff_id = b.drafted_by
WHERE b.municipality_code = $1 AND b.batch_id = $2 FOR UPDATE OF b
"""
ADVANCE = """
UPDATE payout_batches SET prepare_cursor = $3, prepared_count = prepared_count + $4
WHERE municipality_code = $1 AND batch_id = $2 AND status = 'preparing'
"""
NEXT_STEP = """
UPDATE payout_batches SET prepare_step = prepare_step + 1
WHERE municipality_code = $1 AND batch_id = $2 AND status = 'preparing'
RETURNING prepare_step
"""
# Ready payments of the program that existed at the draft's moment (a follow-up of a returned payment, a
# draft cancelled earlier) join the ones this preparation created, except those waiting for a
# cross-municipality duplicate case (duplicate_holds, migration 0021) or on hold (payment_holds, 0025): their
# triggers would refuse them.
FREEZE_READY = """
UPDATE payments p SET status = 'in_batch', batch_id = $3
FROM entitlements e
WHERE p.municipality_code = $1 AND p.status = 'ready' AND p.batch_id IS NULL AND p.created_at <= $4
  AND e.municipality_code = p.municipality_code AND e.entitlement_id = p.entitlement_id AND e.program_id = $2
  AND NOT EXISTS (SELECT 1 FROM duplicate_holds h WHERE h.municipality_code = p.municipality_code
                  AND h.entitlement_id = p.entitlement_id)
  AND NOT EXISTS (SELECT 1 FROM payment_holds ph WHERE ph.municipality_code = p.municipality_code
                  AND ph.entitlement_id = p.entitlement_id AND ph.released_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM dv_holds dh WHERE dh.municipality_code = p.municipality_code
                  AND dh.entitlement_id = p.entitlement_id)  -- a DV 申出 not yet answered (0026)
"""
BATCH_TOTALS = """
SELECT count(*) AS count, coalesce(sum(amount_yen), 0)::bigint AS total_yen
FROM payments WHERE municipality_code = $1 AND batch_id = $2
"""
PREPARED = """
UPDATE payout_batches SET status = 'draft', record_count = $3, total_yen = $4, prepared_at = now()
WHERE municipality_code = $1 AND batch_id = $2 AND status = 'preparing'
"""
REFUSED = """
UPDATE payout_batches SET status = 'cancelled', draft_error = $3, prepared_at = now()
WHERE municipality_code = $1 AND batch_id = $2 AND status = 'preparing'
"""


def prepare_job_id(code: str, batch_id: int, step: int) -> str:
    return outbox.job_id("payouts.prepare", code, batch_id, step)


async def draft_batch(
    conn: asyncpg.Connection,
    code: str,
    staff: Staff,
    program_id: int,
    transfer_date: dt.date,
    *,
    expected_count: int | None = None,
    expected_total_yen: int | None = None,
    today: dt.date | None = None,
) -> int:
    """振込起案, the request's part: record the draft as 'preparing' and ask the worker to prepare it.

    `expected_*` are the figures the drafter saw (draft_preview); the worker refuses the draft if the
    batch it can make differs. Inside the caller's tenant_transaction; dispatch the outbox after commit."""
    staff.require("drafter")
    await batches.program(conn, code, program_id)
    problem = transfer_date_problem(transfer_date, today or today_jst(), await batches.lead_days(conn, code))
    if problem:
        raise InvalidInput(problem)
    for name, value in (
        ("件数（expected_count）", expected_count),
        ("合計金額（expected_total_yen）", expected_total_yen),
    ):
        if value is not None and value < 0:
            raise InvalidInput(f"{name}が正しくありません。")
    batch_id = await conn.fetchval(
        INSERT_PREPARING, code, program_id, transfer_date, staff.staff_id, expected_count, expected_total_yen
    )
    if batch_id is None:
        raise Conflict("この事業の起案を処理中です。処理が終わってから起案してください。")
    await outbox.add(conn, code, PREPARE_JOB, prepare_job_id(code, batch_id, 0), code, batch_id, 0)
    await audit.append(
        conn,
        code,
        staff,
        "batch.draft",
        "batch",
        batch_id,
        {
            "program_id": program_id,
            "transfer_date": transfer_date.isoformat(),
            "expected_count": expected_count,
            "expected_total_yen": expected_total_yen,
        },
    )
    return batch_id


async def prepare_batch(pool: asyncpg.Pool, settings: Settings, code: str, batch_id: int, step: int) -> str:
    """Job `prepare_batch`, step `step`: create payments chunk by chunk for PREPARE_BUDGET_S, then either
    hand over to step + 1 or finish the draft. A stale step (the draft was cancelled, or this step ran
    already) does nothing. Returns 'stale', 'continued', 'prepared N' or 'refused'."""
    deadline = time.monotonic() + PREPARE_BUDGET_S
    cipher: FieldCipher | None = None  # unwrapped once per job, not once per chunk
    while True:
        async with tenant_transaction(pool, code) as conn:
            target = await conn.fetchrow(TARGET, code, batch_id)
            if target is None or target["status"] != "preparing" or target["prepare_step"] != step:
                await outbox.mark_done(conn, code, prepare_job_id(code, batch_id, step))
                return "stale"
            cipher = cipher or await load_field_cipher(conn, settings.master_key_bytes, code)
            rows = await conn.fetch(
                ELIGIBLE_CHUNK,
                code,
                target["program_id"],
                target["drafted_at"],
                target["prepare_cursor"],
                PREPARE_CHUNK,
            )
            created, unreadable = await create_payments(conn, cipher, code, rows, batch_id)
            if unreadable:
                listed = "、".join(unreadable[:10]) + (f" ほか{len(unreadable) - 10}件" if len(unreadable) > 10 else "")
                await _refuse(
                    conn, code, batch_id, target, f"起案できません。次の申請の{BANK_UNREADABLE}受付番号: {listed}"
                )
                return "refused"
            if rows:
                await conn.execute(ADVANCE, code, batch_id, rows[-1]["application_id"], created)
            if len(rows) < PREPARE_CHUNK and rows:
                # Only an empty chunk means the end: a row whose lock waited for an account change is
                # re-checked and may drop out of a full chunk (ELIGIBLE_CHUNK). Usually this next read is empty.
                continue
            if len(rows) == PREPARE_CHUNK:
                if time.monotonic() < deadline:
                    continue  # this chunk commits; the next one starts from its cursor
                following = await conn.fetchval(NEXT_STEP, code, batch_id)
                await outbox.add(
                    conn, code, PREPARE_JOB, prepare_job_id(code, batch_id, following), code, batch_id, following
                )
                await outbox.mark_done(conn, code, prepare_job_id(code, batch_id, step))
                return "continued"
            return await _finish(conn, code, batch_id, step, target)


async def _finish(conn: asyncpg.Connection, code: str, batch_id: int, step: int, target: asyncpg.Record) -> str:
    """Every payment is created: freeze the ready ones of the moment, check against what the drafter saw."""
    await conn.execute(FREEZE_READY, code, target["program_id"], batch_id, target["drafted_at"])
    totals = await fetch_always(conn, BATCH_TOTALS, code, batch_id)
    count, total = totals["count"], totals["total_yen"]
    expected = (target["expected_count"], target["expected_total_yen"])
    if count == 0:
        problem = "起案できる支払がありません（他の起案に含まれたか、対象がありません）。"
    elif (expected[0] is not None and count != expected[0]) or (expected[1] is not None and total != expected[1]):
        problem = (
            f"表示した後に対象の支払が変わりました（表示: {expected[0]}件 {expected[1]}円、"
            f"作成: {count}件 {total}円）。内容を確認し直してから起案してください。"
        )
    else:
        problem = None
    if problem:
        await _refuse(conn, code, batch_id, target, problem)
        return "refused"
    await conn.execute(PREPARED, code, batch_id, count, total)
    await batches.request_hash(conn, code, batch_id)
    await audit.append(
        conn,
        code,
        Staff.from_row(target),
        "batch.prepared",
        "batch",
        batch_id,
        {"record_count": count, "total_yen": total},
    )
    await outbox.mark_done(conn, code, prepare_job_id(code, batch_id, step))
    return f"prepared {count}"


async def _refuse(conn: asyncpg.Connection, code: str, batch_id: int, target: asyncpg.Record, problem: str) -> None:
    """Cancel the draft with the reason; the payments it holds go back to 'ready' for a later draft."""
    await conn.execute(batches.UNFREEZE, code, batch_id)
    await conn.execute(REFUSED, code, batch_id, problem)
    await outbox.mark_done(conn, code, prepare_job_id(code, batch_id, target["prepare_step"]))
    await audit.append(
        conn, code, Staff.from_row(target), "batch.draft_refused", "batch", batch_id, {"reason": problem[:300]}
    )
    log.warning("draft %s of %s refused by the preparation", batch_id, code)

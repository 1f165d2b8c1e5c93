"""振込起案 → 振込承認 → 送信, with four eyes in the application and in the database.

Drafting (payouts/drafting.py) has the worker create and freeze a set of payments (payments.batch_id is
one column, so a payment is in one batch); the finished draft asks the worker for the file's hash (job
`hash_batch`, through the outbox): `compute_hash` renders the Zengin file once and records its SHA-256,
count and total on the batch, with progress while it runs.
Approval approves that recorded hash (the database refuses any other: migration 0016). 送信 asks the
worker for the release (job `release_batch`): `perform_release` renders again, refuses a file whose hash
is not the approved one, seals, signs, writes and marks the batch released (payouts/release.py). So no
web request renders a file: a city's batch is seconds of CPU, which belong in a worker.

The console's functions run inside the caller's tenant_transaction and append their audit entry there;
the two job functions take the pool and open their own transactions.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from app import audit, outbox
from app.crypto import DecryptionError, FieldCipher
from app.db import fetch_always, fetch_one
from app.errors import Conflict, Forbidden, InvalidInput
from app.principals import Staff
from app.settings import Settings
from app.tenancy.transaction import tenant_transaction
from payouts import delivery, guardrails, holds, pipeline, release
from payouts.holder import batch_checks as holder_checks
from payouts.payments import open_bank

DEFAULT_LEAD_DAYS = 2
SAMPLE_SIZE = 10

log = logging.getLogger("kyufu.payouts")

# The bank's lead time is part of the municipality's bank settings (payout stage, migration 0006).
LEAD_DAYS = "SELECT min_business_days_ahead FROM municipality_bank_settings WHERE municipality_code = $1"
PROGRAM = "SELECT program_id, name, amount_yen FROM programs WHERE municipality_code = $1 AND program_id = $2"
PROGRAMS = (
    "SELECT program_id, name, base_date, payment_mode FROM programs WHERE municipality_code = $1 ORDER BY program_id"
)
# Ready payments of a program (what drafting would freeze now), per receiving bank.
READY_BY_BANK = """
SELECT p.bank_code, count(*) AS count, sum(p.amount_yen)::bigint AS total_yen
FROM payments p JOIN entitlements e ON e.municipality_code = p.municipality_code AND e.entitlement_id = p.entitlement_id
WHERE p.municipality_code = $1 AND e.program_id = $2 AND p.status = 'ready' AND p.batch_id IS NULL
GROUP BY p.bank_code ORDER BY p.bank_code
"""
BATCH_BY_BANK = """
SELECT bank_code, count(*) AS count, sum(amount_yen)::bigint AS total_yen
FROM payments WHERE municipality_code = $1 AND batch_id = $2
GROUP BY bank_code ORDER BY bank_code
"""
BATCH_COLUMNS = """
b.batch_id, b.program_id, pr.name AS program_name, b.transfer_date, b.status, b.drafted_by, d.login AS drafted_by_login,
b.drafted_at, b.record_count, b.total_yen, b.approved_by, a.login AS approved_by_login, b.approved_at,
b.approved_sha256,
b.released_at, b.released_sha256, b.file_name, b.rejected_at, b.rejection_comment, r.login AS rejected_by_login,
b.plaintext_sha256, b.hashed_at, b.hash_error, b.hash_progress, b.hash_generation,
b.release_attempt, b.release_requested_at, b.release_error,
b.expected_count, b.expected_total_yen, b.prepared_count, b.prepared_at, b.draft_error
"""
BATCH_FROM = """
FROM payout_batches b
JOIN programs pr ON pr.municipality_code = b.municipality_code AND pr.program_id = b.program_id
JOIN staff_users d ON d.municipality_code = b.municipality_code AND d.staff_id = b.drafted_by
LEFT JOIN staff_users a ON a.municipality_code = b.municipality_code AND a.staff_id = b.approved_by
LEFT JOIN staff_users r ON r.municipality_code = b.municipality_code AND r.staff_id = b.rejected_by
"""
BATCH = f"SELECT {BATCH_COLUMNS} {BATCH_FROM} WHERE b.municipality_code = $1 AND b.batch_id = $2"
LOCK_BATCH = """
SELECT batch_id, program_id, transfer_date, status, drafted_by, record_count, total_yen, approved_sha256, rejected_at,
       plaintext_sha256, hash_error, release_attempt, release_requested_at, release_error
FROM payout_batches WHERE municipality_code = $1 AND batch_id = $2 FOR UPDATE
"""
BATCHES = f"SELECT {BATCH_COLUMNS} {BATCH_FROM} WHERE b.municipality_code = $1 ORDER BY b.batch_id DESC LIMIT 200"
APPROVE = """
UPDATE payout_batches SET status = 'approved', approved_by = $3, approved_at = now(), approved_sha256 = $4
WHERE municipality_code = $1 AND batch_id = $2 AND status = 'draft'
"""
# ---- the worker's part: the file's hash, then the release (jobs in workers/payouts.py) ----------------
HASH_JOB, RELEASE_JOB = "hash_batch", "release_batch"
# A new hash request for a draft: the previous hash (if any) no longer counts; the job is named by the
# generation, so a stale job finds it moved on and does nothing.
REQUEST_HASH = """
UPDATE payout_batches SET hash_generation = hash_generation + 1, plaintext_sha256 = NULL, hashed_at = NULL,
       hash_error = NULL, hash_progress = 0
WHERE municipality_code = $1 AND batch_id = $2 AND status = 'draft'
RETURNING hash_generation
"""
HASH_TARGET = """
SELECT status, hash_generation, record_count, total_yen FROM payout_batches
WHERE municipality_code = $1 AND batch_id = $2
"""
HASH_PROGRESS = """
UPDATE payout_batches SET hash_progress = $4
WHERE municipality_code = $1 AND batch_id = $2 AND hash_generation = $3 AND plaintext_sha256 IS NULL
"""
RECORD_HASH = """
UPDATE payout_batches SET plaintext_sha256 = $4, hash_error = $5, hashed_at = now(),
       hash_progress = CASE WHEN $4::text IS NULL THEN hash_progress ELSE record_count END
WHERE municipality_code = $1 AND batch_id = $2 AND hash_generation = $3 AND status = 'draft'
"""
REQUEST_RELEASE = """
UPDATE payout_batches SET release_attempt = release_attempt + 1, release_requested_at = now(),
       release_requested_by = $3, release_error = NULL
WHERE municipality_code = $1 AND batch_id = $2 AND status = 'approved'
RETURNING release_attempt
"""
RELEASE_TARGET = """
SELECT b.status, b.release_attempt, b.release_requested_by, u.staff_id, u.municipality_code, u.login, u.display_name,
       u.roles
FROM payout_batches b
JOIN staff_users u ON u.municipality_code = b.municipality_code AND u.staff_id = b.release_requested_by
WHERE b.municipality_code = $1 AND b.batch_id = $2
"""
RECORD_RELEASE_ERROR = """
UPDATE payout_batches SET release_error = $4
WHERE municipality_code = $1 AND batch_id = $2 AND release_attempt = $3 AND status = 'approved'
"""
HASH_PROGRESS_EVERY_S = 1.0
REJECT = """
UPDATE payout_batches SET status = 'draft', approved_by = NULL, approved_at = NULL, approved_sha256 = NULL,
       rejected_at = now(), rejected_by = $3, rejection_comment = $4
WHERE municipality_code = $1 AND batch_id = $2
"""
RESUBMIT = """
UPDATE payout_batches SET rejected_at = NULL, rejected_by = NULL
WHERE municipality_code = $1 AND batch_id = $2
"""
CANCEL_BATCH = "UPDATE payout_batches SET status = 'cancelled' WHERE municipality_code = $1 AND batch_id = $2"
UNFREEZE = """
UPDATE payments SET status = 'ready', batch_id = NULL
WHERE municipality_code = $1 AND batch_id = $2 AND status = 'in_batch'
"""
# The program's verified entitlements: what approved applications say should be paid in total, against
# which the approver compares this batch (and what was paid or batched before).
PROGRAM_TOTALS = """
SELECT
  (SELECT count(*) FROM applications a JOIN entitlements e USING (municipality_code, entitlement_id)
    WHERE a.municipality_code = $1 AND e.program_id = $2 AND a.status IN ('verified', 'approved')) AS verified_count,
  (SELECT coalesce(sum(e.amount_yen), 0)::bigint
    FROM applications a JOIN entitlements e USING (municipality_code, entitlement_id)
    WHERE a.municipality_code = $1 AND e.program_id = $2 AND a.status IN ('verified', 'approved')) AS verified_yen,
  (SELECT coalesce(sum(p.amount_yen), 0)::bigint
    FROM payments p JOIN entitlements e USING (municipality_code, entitlement_id)
    WHERE p.municipality_code = $1 AND e.program_id = $2 AND p.status IN ('in_batch', 'released', 'paid')
      AND p.batch_id IS DISTINCT FROM $3) AS other_batches_yen
"""
# Why this approver may not approve this drafter's batch (NULL: they may): migrations/0014, app/staff/grants.py.
APPROVAL_CONFLICT = "SELECT kyufu_approval_conflict($1, $2, $3)"
INDEPENDENCE_MESSAGES = {
    "same_account": "起案した本人は承認できません。別の承認者が承認してください。",
    "created_by_drafter": "あなたのアカウントはこの起案者が作成したため、この起案は承認できません。"
    "別の承認者が承認してください。",
    "granted_by_drafter": "あなたの承認の権限はこの起案者が申請または確認したため、この起案は承認できません。"
    "別の承認者が承認してください。",
    "shared_hands": "あなたとこの起案者は独立していません（同じ人が両方のアカウントの登録用リンクを発行したか、"
    "一方が他方のリンクを発行しています）。この起案は別の承認者が承認してください。",
}
SAMPLE = """
SELECT payment_id, bank_code, branch_code, account_type, bank_enc, account_number_enc, holder_kana_enc, amount_yen
FROM payments WHERE municipality_code = $1 AND batch_id = $2 ORDER BY payment_id LIMIT $3
"""


async def lead_days(conn: asyncpg.Connection, code: str) -> int:
    value = await conn.fetchval(LEAD_DAYS, code)
    return DEFAULT_LEAD_DAYS if value is None else value


async def programs(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    return await conn.fetch(PROGRAMS, code)


async def program(conn: asyncpg.Connection, code: str, program_id: int) -> asyncpg.Record:
    return await fetch_one(conn, PROGRAM, code, program_id)


async def draft_preview(conn: asyncpg.Connection, code: str, program_id: int) -> dict[str, Any]:
    """What drafting would freeze now: ready payments plus approved applications still without one."""
    from payouts.payments import eligible_totals

    await program(conn, code, program_id)
    by_bank = await conn.fetch(READY_BY_BANK, code, program_id)
    pending = await eligible_totals(conn, code, program_id)
    return {
        "by_bank": by_bank,
        "ready_count": sum(r["count"] for r in by_bank),
        "ready_yen": sum(r["total_yen"] for r in by_bank),
        "pending_count": pending["count"],
        "pending_yen": pending["total_yen"],
    }


async def get_batch(conn: asyncpg.Connection, code: str, batch_id: int) -> asyncpg.Record:
    return await fetch_one(conn, BATCH, code, batch_id)


async def by_bank(conn: asyncpg.Connection, code: str, batch_id: int) -> list[asyncpg.Record]:
    """The batch's count and total per receiving bank."""
    return await conn.fetch(BATCH_BY_BANK, code, batch_id)


async def list_batches(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    return await conn.fetch(BATCHES, code)


async def _lock(conn: asyncpg.Connection, code: str, batch_id: int) -> asyncpg.Record:
    # The row lock serialises approve/reject/cancel/release of one batch: two approvers clicking at once,
    # or a release racing a rejection, see each other's outcome instead of both proceeding.
    return await fetch_one(conn, LOCK_BATCH, code, batch_id)


async def approval_view(
    conn: asyncpg.Connection,
    settings: Settings,
    cipher: FieldCipher,
    code: str,
    staff: Staff,
    batch_id: int,
) -> dict[str, Any]:
    """What the approver sees: totals, per-bank breakdown, difference against the program's verified
    entitlements, a sample of records (personal data: audit-logged), how the payments went through the
    account-holder check (payouts/holder.py, counts only) and the file's SHA-256 as the worker recorded it
    (or its progress, or why it could not be made). Read from the database: nothing here
    renders the file."""
    staff.require("approver")
    batch = await get_batch(conn, code, batch_id)
    totals = await fetch_always(conn, PROGRAM_TOTALS, code, batch["program_id"], batch_id)
    sample = []
    for r in await conn.fetch(SAMPLE, code, batch_id, SAMPLE_SIZE):
        try:
            number, holder = open_bank(cipher, r)
            masked = "****" + number[-3:]
        except DecryptionError as exc:
            # The file cannot be rendered either (the hash job says which payments): nothing to approve.
            log.error(
                "bank details of payment %s (municipality %s) do not decrypt: %s",
                r["payment_id"],
                code,
                type(exc).__name__,
            )
            masked, holder = "（復号できません）", ""
        sample.append(
            {
                "payment_id": r["payment_id"],
                "bank_code": r["bank_code"],
                "branch_code": r["branch_code"],
                "account_type": r["account_type"],
                "account_number_masked": masked,
                "holder_kana": holder,
                "amount_yen": r["amount_yen"],
            }
        )
    await audit.append(
        conn, code, staff, "personal_data.view", "batch", batch_id, {"purpose": "approval", "records": len(sample)}
    )
    return {
        "independence_problem": await independence_problem(conn, code, batch["drafted_by"], staff),
        "batch": batch,
        "by_bank": await by_bank(conn, code, batch_id),
        "totals": totals,
        "remaining_yen": totals["verified_yen"] - totals["other_batches_yen"] - batch["total_yen"],
        "sample": sample,
        "sha256": batch["plaintext_sha256"],
        "render_error": batch["hash_error"],
        "guardrails": await guardrails.view(conn, cipher, code, batch_id),
        "holder_checks": await holder_checks(conn, code, batch_id),
        "on_hold": await holds.batch_hold(conn, code, batch_id),
        "screening": await holds.batch_screening(conn, code, batch_id),
        "hashing": batch["status"] == "draft" and batch["plaintext_sha256"] is None and batch["hash_error"] is None,
    }


async def approve_batch(
    conn: asyncpg.Connection,
    settings: Settings,
    code: str,
    staff: Staff,
    batch_id: int,
    shown_sha256: str,
) -> str:
    """振込承認 of the file whose SHA-256 the approver was shown: the hash the worker recorded for this draft
    (payout_batches_approves_the_recorded_hash refuses any other). Returns the approved hash."""
    staff.require("approver")
    batch = await _lock(conn, code, batch_id)
    if batch["status"] != "draft" or batch["rejected_at"] is not None:
        raise Conflict("この起案は承認待ちではありません。")
    problem = await independence_problem(conn, code, batch["drafted_by"], staff)
    if problem:
        raise Forbidden(problem)
    if batch["hash_error"] is not None:
        raise Conflict(batch["hash_error"])
    if batch["plaintext_sha256"] is None:
        raise Conflict("振込ファイルのハッシュを計算中です。完了してから承認してください。")
    if batch["plaintext_sha256"] != (shown_sha256 or "").strip().lower():
        raise Conflict("表示した後にファイルの内容が変わりました（SHA-256 不一致）。画面を開き直して確認してください。")
    held = await guardrails.duplicate_hold(conn, code, batch_id)
    if held:  # payout_batches_wait_for_duplicate_case (0023) refuses it too
        raise Conflict(guardrails.hold_message(held))
    on_hold = await holds.batch_hold(conn, code, batch_id)
    if on_hold:  # payout_batches_no_held_payment (0025) refuses it too
        raise Conflict(on_hold)
    pending = await guardrails.open_flags(conn, code, batch_id)
    if pending:
        raise Conflict(
            f"1つの口座への支払が上限を超える口座が{pending}件あり、確認されていません。"
            "確認（理由の記録）をしてから承認するか、差し戻してください。"
        )
    # payout_batches_four_eyes (approved_by <> drafted_by) and the payout_batches_independent_approver
    # trigger refuse this too if the check above is bypassed.
    try:
        await conn.execute(APPROVE, code, batch_id, staff.staff_id, batch["plaintext_sha256"])
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name == "payout_batches_wait_for_duplicate_case":  # a case opened meanwhile
            raise Conflict("重複の疑いの確認を待つ支払が含まれています。画面を開き直してください。") from None
        if exc.constraint_name == "payout_batches_no_held_payment":  # a hold placed meanwhile
            raise Conflict("支給保留中の支払が含まれています。画面を開き直してください。") from None
        if exc.constraint_name == "payout_batches_wait_for_dv_request":  # a DV 申出 filed meanwhile (0026)
            raise Conflict("DV等避難者の申出への回答を待つ支払が含まれています。画面を開き直してください。") from None
        if exc.constraint_name == "payout_batches_accounts_within_limit":  # an override by the drafter
            raise Conflict("上限を超える口座の確認は、起案者以外の職員が行ってください。") from None
        if exc.constraint_name not in ("payout_batches_four_eyes", "payout_batches_independent_approver"):
            raise
        same = exc.constraint_name == "payout_batches_four_eyes"
        raise Forbidden(INDEPENDENCE_MESSAGES["same_account" if same else "shared_hands"]) from None
    await audit.append(
        conn,
        code,
        staff,
        "batch.approve",
        "batch",
        batch_id,
        {
            "sha256": batch["plaintext_sha256"],
            "record_count": batch["record_count"],
            "total_yen": batch["total_yen"],
        },
    )
    return batch["plaintext_sha256"]


async def independence_problem(conn: asyncpg.Connection, code: str, drafted_by: int, approver: Staff) -> str:
    """Why `approver` may not approve a batch `drafted_by` drafted, in Japanese ("" if they may)."""
    reason = await conn.fetchval(APPROVAL_CONFLICT, code, drafted_by, approver.staff_id)
    return INDEPENDENCE_MESSAGES.get(reason, "承認できません。") if reason else ""


async def reject_batch(
    conn: asyncpg.Connection,
    settings: Settings,
    code: str,
    staff: Staff,
    batch_id: int,
    comment: str,
) -> None:
    """Send a draft (or an approved, unreleased batch) back to its drafter with a comment."""
    staff.require("approver")
    comment = (comment or "").strip()
    if not comment:
        raise InvalidInput("差戻しの理由（comment）を入力してください。")
    if len(comment) > 1000:
        raise InvalidInput("差戻しの理由（comment）は1000文字以内で入力してください。")
    batch = await _lock(conn, code, batch_id)
    if batch["status"] not in ("draft", "approved"):
        raise Conflict("送信済み・取消済みの起案は差し戻せません。")

    if batch["status"] == "approved" and release.written_files(settings, code, batch_id, batch["transfer_date"]):
        # A release was interrupted after writing the file: it may already be with the bank. Going back to
        # draft (and from there to cancel and a new draft) would pay the same people twice.
        raise Conflict(
            "この起案の振込ファイルは書き出し済みです（送信処理が中断されました）。"
            "差し戻さずに、もう一度「送信」を実行して送信を完了してください。"
        )
    await conn.execute(REJECT, code, batch_id, staff.staff_id, comment)
    # Hashed again for the next approval: the bank settings (the file's header) may be what was wrong.
    await request_hash(conn, code, batch_id)
    await audit.append(
        conn, code, staff, "batch.reject", "batch", batch_id, {"comment": comment, "was": batch["status"]}
    )


async def resubmit_batch(conn: asyncpg.Connection, code: str, staff: Staff, batch_id: int) -> None:
    """The drafter puts a sent-back draft on the approval queue again."""
    staff.require("drafter")
    batch = await _lock(conn, code, batch_id)
    if batch["status"] != "draft" or batch["rejected_at"] is None:
        raise Conflict("差し戻された起案ではありません。")
    await conn.execute(RESUBMIT, code, batch_id)
    await audit.append(conn, code, staff, "batch.resubmit", "batch", batch_id)


async def cancel_batch(conn: asyncpg.Connection, code: str, staff: Staff, batch_id: int) -> None:
    """Withdraw a draft (or one the worker is still preparing): its payments return to 'ready' for a later
    draft, and the preparation's next step finds it cancelled and stops."""
    staff.require("drafter")
    batch = await _lock(conn, code, batch_id)
    if batch["status"] not in ("draft", "preparing"):
        raise Conflict("承認前の起案だけを取り消せます。")
    await conn.execute(UNFREEZE, code, batch_id)
    await conn.execute(CANCEL_BATCH, code, batch_id)
    await audit.append(conn, code, staff, "batch.cancel", "batch", batch_id)


async def release_batch(conn: asyncpg.Connection, settings: Settings, code: str, staff: Staff, batch_id: int) -> int:
    """送信: ask the worker to release an approved batch to the bank (job `release_batch`, through the
    outbox, after this transaction commits); returns the attempt number. The release itself
    (`perform_release`) checks the file against the approval and releases it once; the release-once
    trigger and the release-must-match-approval CHECK back both rules in the database."""
    staff.require("approver")
    batch = await _lock(conn, code, batch_id)
    if batch["status"] == "released":
        raise Conflict("この起案は既に送信済みです。二度は送信できません。")
    if batch["status"] != "approved":
        raise Conflict("承認済みの起案だけを送信できます。")
    if batch["release_requested_at"] is not None and batch["release_error"] is None:
        raise Conflict("送信処理中です。完了までお待ちください。")
    on_hold = await holds.batch_hold(conn, code, batch_id)
    if on_hold:  # a hold placed after approval: the release job would refuse too
        raise Conflict(on_hold)
    attempt = await conn.fetchval(REQUEST_RELEASE, code, batch_id, staff.staff_id)
    await outbox.add(conn, code, RELEASE_JOB, release_job_id(code, batch_id, attempt), code, batch_id, attempt)
    await audit.append(
        conn,
        code,
        staff,
        "batch.release_request",
        "batch",
        batch_id,
        {"sha256": batch["approved_sha256"], "attempt": attempt},
    )
    return attempt


# ---- the worker's part ----------------------------------------------------------------------------------


def hash_job_id(code: str, batch_id: int, generation: int) -> str:
    return outbox.job_id("payouts.hash", code, batch_id, generation)


def release_job_id(code: str, batch_id: int, attempt: int) -> str:
    return outbox.job_id("payouts.release", code, batch_id, attempt)


async def request_hash(conn: asyncpg.Connection, code: str, batch_id: int) -> int:
    """Inside the caller's transaction: forget the draft's hash and ask the worker for a new one."""
    generation = await conn.fetchval(REQUEST_HASH, code, batch_id)
    await outbox.add(conn, code, HASH_JOB, hash_job_id(code, batch_id, generation), code, batch_id, generation)
    return generation


async def compute_hash(pool: asyncpg.Pool, settings: Settings, code: str, batch_id: int, generation: int) -> str:
    """Job `hash_batch`: render the draft's file once from a read-only snapshot and record its SHA-256 (or,
    when the stage refuses — bank settings missing, a payment it cannot write, count or total not the
    batch's — the reason, in Japanese). A stale generation (the draft was sent back or hashed again
    since) does nothing. Database trouble propagates: the job is retried and the sweeper re-derives it."""
    done = {"records": 0}

    def progress(records: int, total: int) -> None:
        done["records"] = records

    async def report_progress() -> None:
        while True:
            await asyncio.sleep(HASH_PROGRESS_EVERY_S)
            async with tenant_transaction(pool, code) as conn:
                await conn.execute(HASH_PROGRESS, code, batch_id, generation, done["records"])

    sha = error = None
    async with tenant_transaction(pool, code, isolation="repeatable_read", readonly=True) as conn:
        target = await conn.fetchrow(HASH_TARGET, code, batch_id)
        fresh = target is not None and target["status"] == "draft" and target["hash_generation"] == generation
        if fresh:
            assert target is not None  # fresh implies it
            reporter = asyncio.create_task(report_progress())
            try:
                rendered = await pipeline.render_in_transaction(
                    conn, settings.master_key_bytes, code, batch_id, progress=progress
                )
            except (ValueError, LookupError) as exc:  # the stage's refusals, named in Japanese
                error = f"振込ファイルを作成できません: {exc}"
            else:
                if (rendered.record_count, rendered.total_yen) != (target["record_count"], target["total_yen"]):
                    error = "振込ファイルの件数・合計金額が起案と一致しません。起案を取り消して起案し直してください。"
                else:
                    sha = rendered.sha256
            finally:
                reporter.cancel()
    async with tenant_transaction(pool, code) as conn:
        if fresh:
            await conn.execute(RECORD_HASH, code, batch_id, generation, sha, error)
        await outbox.mark_done(conn, code, hash_job_id(code, batch_id, generation))
    if not fresh:
        return "stale"
    if error:
        log.warning("hash of batch %s of %s refused", batch_id, code)
        return "refused"
    assert sha is not None, "a fresh render without a refusal has its hash"
    return sha


async def perform_release(pool: asyncpg.Pool, settings: Settings, code: str, batch_id: int, attempt: int) -> str:
    """Job `release_batch`: release the approved batch (payouts.release: render, check against the approved
    hash, seal, sign, write, mark released — in this job's transaction, with its outbox row). A refusal
    that retrying cannot change is recorded on the batch for the console (送信できませんでした: reason);
    database or disk trouble propagates, so the job is retried and the sweeper re-derives it."""
    async with tenant_transaction(pool, code) as conn:
        target = await conn.fetchrow(RELEASE_TARGET, code, batch_id)
        outcome = "stale"
        if target is not None and target["release_attempt"] == attempt:
            requester = Staff.from_row(target)
            held = await guardrails.duplicate_hold(conn, code, batch_id)
            if held:  # a case opened after approval: nothing is sealed while it waits
                message = f"送信できませんでした: {guardrails.hold_message(held)}"
                await conn.execute(RECORD_RELEASE_ERROR, code, batch_id, attempt, message)
                await outbox.mark_done(conn, code, release_job_id(code, batch_id, attempt))
                log.warning("release of batch %s of %s waits for a duplicate case", batch_id, code)
                return "refused: duplicate case"
            on_hold = await holds.batch_hold(conn, code, batch_id)
            if on_hold:  # a hold placed after approval (支給保留・支給停止): nothing is sealed while it stands
                await conn.execute(RECORD_RELEASE_ERROR, code, batch_id, attempt, f"送信できませんでした: {on_hold}")
                await outbox.mark_done(conn, code, release_job_id(code, batch_id, attempt))
                log.warning("release of batch %s of %s waits for a hold", batch_id, code)
                return "refused: hold"
            try:
                async with conn.transaction():  # savepoint: a refusal still lets us record it and mark the row
                    manifest = await release.release_batch(conn, settings, code, batch_id, requester.staff_id)
                    # With a delivery stage, the sealed file is kept in this transaction (payouts/delivery.py).
                    await delivery.keep(conn, settings, code, batch_id, manifest)
                await audit.append(
                    conn,
                    code,
                    requester,
                    "batch.release",
                    "batch",
                    batch_id,
                    {"sha256": manifest.plaintext_sha256, "file_name": manifest.file_name},
                )
                outcome = f"released {manifest.file_name}"
            except release.BatchAlreadyReleased:
                outcome = "already released"
            except (
                release.ApprovalMismatch,
                release.BatchNotApproved,
                pipeline.BatchNotFound,
                ValueError,
                LookupError,
            ) as exc:
                # Permanent for these rows: staff see why, and may send the batch back.
                message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else type(exc).__name__
                await conn.execute(RECORD_RELEASE_ERROR, code, batch_id, attempt, f"送信できませんでした: {message}")
                log.warning("release of batch %s of %s refused: %s", batch_id, code, type(exc).__name__)
                outcome = f"refused: {type(exc).__name__}"
        await outbox.mark_done(conn, code, release_job_id(code, batch_id, attempt))
    return outcome

"""Reconciliation: the bank's returns file → returned / paid payments, once; then, for each returned
(不能) payment, re-contact and one re-issue to a corrected account.

A returns CSV (payouts/returns_csv.py: payment reference = payment_id, reason code) reconciles one
released batch: the listed payments become 'returned' with the reason, every other payment of the batch
'paid' on the transfer date, in one transaction. A released batch's payments are still 'in_batch' in
their rows (release records the fact once, on the batch: migration 0009); the batch row, locked here,
says they were sent. The file's SHA-256 is unique per municipality
(payout_return_imports_file_once), so importing the same file again is a no-op; a different file for an
already reconciled batch is refused (payout_return_imports_batch_once): 不能 after 'paid' is a manual
組戻し case, not an import.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from pathlib import Path

import asyncpg

from app import audit
from app.crypto import FieldCipher
from app.db import fetch_one
from app.errors import Conflict, InvalidInput
from app.principals import Staff
from app.tenancy.transaction import tenant_transaction
from payouts import returns_csv
from payouts.accounts import PayeeAccount
from payouts.payments import insert_payment

ALREADY_IMPORTED = """
SELECT import_id, batch_id, returned_count, paid_count FROM payout_return_imports
WHERE municipality_code = $1 AND file_sha256 = $2
"""
BATCHES_OF = """
SELECT DISTINCT batch_id FROM payments WHERE municipality_code = $1 AND payment_id = ANY($2::bigint[])
"""
LOCK_BATCH = """
SELECT status, transfer_date FROM payout_batches WHERE municipality_code = $1 AND batch_id = $2 FOR UPDATE
"""
BATCH_RECONCILED = "SELECT 1 FROM payout_return_imports WHERE municipality_code = $1 AND batch_id = $2"
# The listed payments that are in this (released) batch and not yet reconciled (anything else is an error).
MATCHING = """
SELECT count(*) FROM payments
WHERE municipality_code = $1 AND batch_id = $2 AND status = 'in_batch' AND payment_id = ANY($3::bigint[])
"""
INSERT_IMPORT = """
INSERT INTO payout_return_imports (municipality_code, batch_id, file_sha256, returned_count, paid_count)
VALUES ($1, $2, $3, $4, $5) RETURNING import_id
"""
MARK_RETURNED = """
UPDATE payments p SET status = 'returned', return_reason = r.reason
FROM unnest($3::bigint[], $4::text[]) AS r (payment_id, reason)
WHERE p.municipality_code = $1 AND p.batch_id = $2 AND p.payment_id = r.payment_id AND p.status = 'in_batch'
"""
RECORD_RETURNS = """
INSERT INTO payment_returns (municipality_code, payment_id, import_id, reason_code, reason)
SELECT $1, r.payment_id, $2, r.code, r.reason
FROM unnest($3::bigint[], $4::text[], $5::text[]) AS r (payment_id, code, reason)
"""
RELEASED_COUNT = "SELECT count(*) FROM payments WHERE municipality_code = $1 AND batch_id = $2 AND status = 'in_batch'"
MARK_PAID = """
UPDATE payments SET status = 'paid', paid_on = $3
WHERE municipality_code = $1 AND batch_id = $2 AND status = 'in_batch'
"""
MARK_ENTITLEMENTS_PAID = """
UPDATE entitlements e SET status = 'paid'
FROM payments p
WHERE p.municipality_code = $1 AND p.batch_id = $2 AND p.status = 'paid'
  AND e.municipality_code = p.municipality_code AND e.entitlement_id = p.entitlement_id AND e.status <> 'paid'
"""


class ReconcileError(Conflict):
    """The returns file cannot be imported; the message says why (Japanese, payment ids only)."""


@dataclasses.dataclass(frozen=True)
class ImportOutcome:
    batch_id: int
    import_id: int
    returned_count: int
    paid_count: int
    already_imported: bool

    def summary(self) -> str:
        if self.already_imported:
            return (
                f"この返却ファイルは取込済みです（バッチ {self.batch_id}、取込 {self.import_id}）。"
                "何も変更していません。"
            )
        return (
            f"バッチ {self.batch_id}: 振込不能 {self.returned_count:,} 件、"
            f"振込済 {self.paid_count:,} 件として取り込みました（取込 {self.import_id}）。"
        )


def _read(file: Path | bytes) -> tuple[bytes, list[returns_csv.ReturnRow]]:
    if isinstance(file, (bytes, bytearray)):
        data = bytes(file)
        with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
            handle.write(data)
            handle.flush()
            rows = returns_csv.read_returns_csv(Path(handle.name))
        return data, rows
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise ReconcileError(f"返却ファイルを読めません: {exc.strerror}") from None
    return data, returns_csv.read_returns_csv(Path(file))


async def import_returns(db, code: str, file: Path | bytes, *, batch_id: int | None = None) -> ImportOutcome:
    """Import a returns CSV for one released batch (see the module docstring).

    `db` is a pool or a connection (inside the caller's tenant_transaction it joins it)."""
    try:
        data, rows = _read(file)
    except returns_csv.ReturnsCsvError as exc:
        raise ReconcileError(str(exc)) from None
    if isinstance(db, asyncpg.Pool):
        async with tenant_transaction(db, code) as conn:
            return await _import(conn, code, data, rows, batch_id)
    if db.is_in_transaction():
        return await _import(db, code, data, rows, batch_id)
    async with tenant_transaction(db, code):
        return await _import(db, code, data, rows, batch_id)


async def _import(conn, code, data, rows, batch_id) -> ImportOutcome:
    sha = hashlib.sha256(data).hexdigest()
    done = await conn.fetchrow(ALREADY_IMPORTED, code, sha)
    if done is not None:
        return ImportOutcome(done["batch_id"], done["import_id"], done["returned_count"], done["paid_count"], True)
    ids = [r.payment_reference for r in rows]
    if batch_id is None:
        found = [r["batch_id"] for r in await conn.fetch(BATCHES_OF, code, ids)] if ids else []
        if len(found) != 1 or found[0] is None:
            raise ReconcileError(
                "返却ファイルの支払から振込バッチを1つに特定できません。--batch でバッチ番号を指定してください。"
            )
        batch_id = found[0]
    batch = await conn.fetchrow(LOCK_BATCH, code, batch_id)
    if batch is None:
        raise ReconcileError("指定された振込バッチが見つかりません。")
    if batch["status"] != "released":
        raise ReconcileError("送信（リリース）済みの振込バッチだけに返却ファイルを取り込めます。")
    if await conn.fetchval(BATCH_RECONCILED, code, batch_id):
        raise ReconcileError(
            "この振込バッチには別の返却ファイルが取込済みです。取込後の不能は組戻し・個別対応として処理してください。"
        )
    matching = await conn.fetchval(MATCHING, code, batch_id, ids)
    if matching != len(ids):
        raise ReconcileError(
            f"返却ファイルの {len(ids) - matching} 件の支払番号が、このバッチの送信済みの支払にありません。"
            "ファイルとバッチの組み合わせを確認してください。"
        )
    released = await conn.fetchval(RELEASED_COUNT, code, batch_id)
    paid_count = released - len(ids)
    try:
        async with conn.transaction():  # savepoint: a concurrent import of the same file loses cleanly
            import_id = await conn.fetchval(INSERT_IMPORT, code, batch_id, sha, len(ids), paid_count)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "payout_return_imports_file_once":
            done = await conn.fetchrow(ALREADY_IMPORTED, code, sha)
            return ImportOutcome(done["batch_id"], done["import_id"], done["returned_count"], done["paid_count"], True)
        raise ReconcileError("この振込バッチには別の返却ファイルが取込済みです。") from None
    codes = [r.reason_code for r in rows]
    reasons = [r.reason for r in rows]
    await conn.execute(MARK_RETURNED, code, batch_id, ids, reasons)
    await conn.execute(RECORD_RETURNS, code, import_id, ids, codes, reasons)
    await conn.execute(MARK_PAID, code, batch_id, batch["transfer_date"])
    await conn.execute(MARK_ENTITLEMENTS_PAID, code, batch_id)
    return ImportOutcome(batch_id, import_id, len(ids), paid_count, False)


# --- after a return: re-contact, then one re-issue --------------------------------------------------

RETURNED = """
SELECT p.payment_id, p.entitlement_id, p.amount_yen, p.bank_code, coalesce(pr.reason, p.return_reason) AS reason,
       p.batch_id, e.program_id, f.recontact_at, f.note, u.login AS recontact_by_login,
       ri.payment_id AS reissued_payment_id, ri.created_at AS reissued_at
FROM payments p
JOIN entitlements e ON e.municipality_code = p.municipality_code AND e.entitlement_id = p.entitlement_id
LEFT JOIN payment_returns pr ON pr.municipality_code = p.municipality_code AND pr.payment_id = p.payment_id
LEFT JOIN payment_followups f ON f.municipality_code = p.municipality_code AND f.payment_id = p.payment_id
LEFT JOIN staff_users u ON u.municipality_code = f.municipality_code AND u.staff_id = f.recontact_by
LEFT JOIN payment_reissues ri ON ri.municipality_code = p.municipality_code AND ri.replaces_payment_id = p.payment_id
WHERE p.municipality_code = $1 AND p.status = 'returned'
ORDER BY ri.payment_id IS NOT NULL, p.payment_id
LIMIT 500
"""
PAYMENT = """
SELECT payment_id, entitlement_id, application_id, amount_yen, status FROM payments
WHERE municipality_code = $1 AND payment_id = $2 FOR UPDATE
"""
MARK = """
INSERT INTO payment_followups (municipality_code, payment_id, recontact_by, note) VALUES ($1, $2, $3, $4)
ON CONFLICT (municipality_code, payment_id) DO UPDATE SET note = EXCLUDED.note, recontact_by = EXCLUDED.recontact_by,
    recontact_at = now()
"""
FOLLOWUP = "SELECT 1 FROM payment_followups WHERE municipality_code = $1 AND payment_id = $2"
REISSUED = "SELECT payment_id FROM payment_reissues WHERE municipality_code = $1 AND replaces_payment_id = $2"
# payment_reissues_once (one re-issue per returned payment) and payments_one_live back this in the database.
RECORD_REISSUE = "INSERT INTO payment_reissues (municipality_code, payment_id, replaces_payment_id) VALUES ($1, $2, $3)"


async def returned(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    return await conn.fetch(RETURNED, code)


async def _returned_payment(conn: asyncpg.Connection, code: str, payment_id: int) -> asyncpg.Record:
    row = await fetch_one(conn, PAYMENT, code, payment_id)
    if row["status"] != "returned":
        raise Conflict("振込不能になった支払ではありません。")
    return row


async def mark_recontact(conn: asyncpg.Connection, code: str, staff: Staff, payment_id: int, note: str) -> None:
    staff.require("reviewer", "drafter")
    note = (note or "").strip()
    if len(note) > 1000:
        raise InvalidInput("メモ（note）は1000文字以内で入力してください。")
    await _returned_payment(conn, code, payment_id)
    await conn.execute(MARK, code, payment_id, staff.staff_id, note)
    await audit.append(conn, code, staff, "payment.recontact", "payment", payment_id, {"note": note})


def corrected_account(form: dict) -> PayeeAccount:
    """A corrected account from the reconciliation form; AccountInvalid (InvalidInput) names the field."""
    return PayeeAccount.parse(
        form.get("bank_code"),
        form.get("branch_code"),
        form.get("account_type"),
        form.get("account_number"),
        form.get("holder_kana"),
    )


async def reissue(
    conn: asyncpg.Connection,
    cipher: FieldCipher,
    code: str,
    staff: Staff,
    payment_id: int,
    account: PayeeAccount,
) -> int:
    """A new 'ready' payment to the corrected account, for a later batch; returns its id. Inside the caller's
    tenant_transaction. payments_one_live (one live or paid payment per entitlement) and
    payment_reissues_once (one re-issue per returned payment) refuse a second one in the database whatever
    was checked here."""
    staff.require("drafter")
    original = await _returned_payment(conn, code, payment_id)
    if await conn.fetchval(FOLLOWUP, code, payment_id) is None:
        raise Conflict("先に再連絡の記録をしてください。")
    if await conn.fetchval(REISSUED, code, payment_id) is not None:
        raise Conflict("この支払は既に再発行されています。")
    try:
        async with conn.transaction():  # a savepoint, so the refusal below leaves the transaction usable
            new_id = await insert_payment(
                conn,
                cipher,
                code,
                entitlement_id=original["entitlement_id"],
                application_id=original["application_id"],
                amount_yen=original["amount_yen"],
                bank_code=account.bank_code,
                branch_code=account.branch_code,
                account_type=account.account_type,
                account_number=account.account_number,
                holder_kana=account.holder_kana,
            )
            await conn.execute(RECORD_REISSUE, code, new_id, payment_id)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name not in ("payments_one_live", "payment_reissues_once"):
            raise
        raise Conflict("この受給権には既に有効な支払があります。二重には支払えません。") from None
    await audit.append(conn, code, staff, "payment.reissue", "payment", payment_id, {"new_payment_id": new_id})
    return new_id

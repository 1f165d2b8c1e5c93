"""Reconciliation: the bank's returns file → returned / paid payments, once; re-issue after a return.

A returns CSV (payouts.banksim format: payment reference = payment_id, reason code) reconciles one
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

from app.crypto import FieldCipher
from app.staff.payments import seal_bank
from app.tenancy.transaction import tenant_transaction
from payouts import banksim, kana

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
SELECT $1, r.payment_id, $2, r.code, r.reason FROM unnest($3::bigint[], $4::text[], $5::text[]) AS r (payment_id, code, reason)
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


class ReconcileError(Exception):
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
            return (f"この返却ファイルは取込済みです（バッチ {self.batch_id}、取込 {self.import_id}）。"
                    "何も変更していません。")
        return (f"バッチ {self.batch_id}: 振込不能 {self.returned_count:,} 件、"
                f"振込済 {self.paid_count:,} 件として取り込みました（取込 {self.import_id}）。")


def _read(file: Path | bytes) -> tuple[bytes, list[banksim.ReturnRow]]:
    if isinstance(file, (bytes, bytearray)):
        data = bytes(file)
        with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
            handle.write(data)
            handle.flush()
            rows = banksim.read_returns_csv(Path(handle.name))
        return data, rows
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise ReconcileError(f"返却ファイルを読めません: {exc.strerror}") from None
    return data, banksim.read_returns_csv(Path(file))


async def import_returns(db, code: str, file: Path | bytes, *, batch_id: int | None = None) -> ImportOutcome:
    """Import a returns CSV for one released batch (see the module docstring).

    `db` is a pool or a connection (inside the caller's tenant_transaction it joins it)."""
    try:
        data, rows = _read(file)
    except banksim.ReturnsCsvError as exc:
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


# --- re-issue -------------------------------------------------------------------------------------

RETURNED_PAYMENT = """
SELECT entitlement_id, application_id, amount_yen, status FROM payments
WHERE municipality_code = $1 AND payment_id = $2 FOR UPDATE
"""
NEXT_PAYMENT_ID = "SELECT nextval('payments_payment_id_seq')"
INSERT_PAYMENT = """
INSERT INTO payments (municipality_code, payment_id, entitlement_id, application_id, amount_yen, bank_code,
                      branch_code, account_type, bank_enc)
OVERRIDING SYSTEM VALUE
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""
RECORD_REISSUE = "INSERT INTO payment_reissues (municipality_code, payment_id, replaces_payment_id) VALUES ($1, $2, $3)"


@dataclasses.dataclass(frozen=True)
class BankDetails:
    """A corrected account (plaintext; encrypted here, bound to the new payment's row)."""

    bank_code: str
    branch_code: str
    account_type: int
    account_number: str
    holder_kana: str


async def reissue_payment(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, payment_id: int, details: BankDetails,
) -> int:
    """A new 'ready' payment to a corrected account for a returned one; returns the new payment_id.

    Inside the caller's tenant_transaction. payments_one_live (one live or paid payment per
    entitlement) and payment_reissues_once (one re-issue per returned payment) make a second re-issue,
    or a re-issue while another payment is live, fail in the database whatever the caller checked."""
    original = await conn.fetchrow(RETURNED_PAYMENT, code, payment_id)
    if original is None:
        raise ReconcileError("指定された支払が見つかりません。")
    if original["status"] != "returned":
        raise ReconcileError("振込不能（返却）になった支払だけを再発行できます。")
    d = details
    if not (len(d.bank_code) == 4 and d.bank_code.isascii() and d.bank_code.isdigit()):
        raise ReconcileError("金融機関コードは半角数字4桁で指定してください。")
    if not (len(d.branch_code) == 3 and d.branch_code.isascii() and d.branch_code.isdigit()):
        raise ReconcileError("支店コードは半角数字3桁で指定してください。")
    if d.account_type not in (1, 2, 4, 9):
        raise ReconcileError("預金種目は 1・2・4・9 のいずれかです。")
    if not (1 <= len(d.account_number) <= 7 and d.account_number.isascii() and d.account_number.isdigit()):
        raise ReconcileError("口座番号は7桁以内の半角数字で指定してください。")
    try:
        holder = kana.to_zengin_kana(d.holder_kana, max_width=30)
    except kana.ZenginKanaError as exc:
        raise ReconcileError(str(exc)) from None
    new_id = await conn.fetchval(NEXT_PAYMENT_ID)
    try:
        async with conn.transaction():  # savepoint: the refusal leaves the caller's transaction usable
            await conn.execute(
                INSERT_PAYMENT, code, new_id, original["entitlement_id"], original["application_id"],
                original["amount_yen"], d.bank_code, d.branch_code, d.account_type,
                seal_bank(cipher, new_id, d.account_number.zfill(7), holder),
            )
            await conn.execute(RECORD_REISSUE, code, new_id, payment_id)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name not in ("payments_one_live", "payment_reissues_once"):
            raise
        raise ReconcileError("この受給権には既に有効な支払（または再発行）があります。二重には支払えません。") from None
    return new_id

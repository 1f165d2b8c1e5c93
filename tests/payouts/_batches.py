"""Building approved batches with encrypted bank details on the real test database."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from payouts import bank, pipeline, settings_store, zengin
from payouts.payments import seal_bank

TRANSFER_DATE = dt.date(2026, 12, 1)
ROWS = [  # (bank, branch, type, account, holder, amount)
    ("0005", "001", 1, "7654321", "ﾔﾏﾀﾞ ﾀﾛｳ", 100_000),
    ("0005", "001", 1, "7654322", "ｽｽﾞｷ ﾊﾅｺ", 50_000),
    ("0009", "123", 2, "7654323", "ｻﾄｳ ｼﾞﾛｳ", 70_000),
    ("9900", "019", 1, "0000123", "ﾀｶﾊｼ ﾖ-ｺ", 30_000),
]


@dataclass
class Batch:
    code: str
    batch_id: int
    payment_ids: list[int]
    identity_path: Path
    drafter: int
    approver: int


def bank_settings(**overrides) -> zengin.BankSettings:
    values = dict(
        requester_code="1234567890",
        requester_name_kana="ﾃｽﾄｼ",
        bank_code="0001",
        branch_code="001",
        account_type=1,
        account_number="1111111",
        separator="crlf",
    )
    values.update(overrides)
    return zengin.BankSettings(**values)


async def make_batch(
    owner_conn, settings, code: str, tmp_path: Path, rows=ROWS, *, approve=True, **bank_overrides
) -> Batch:
    identity = tmp_path / f"bank-{code}-{secrets.token_hex(3)}.txt"
    recipient = bank.write_identity_file(identity)
    async with tenant_transaction(owner_conn, code) as conn:
        await settings_store.put_bank_settings(
            conn,
            code,
            settings_store.StoredBankSettings(bank=bank_settings(**bank_overrides), age_recipients=(recipient,)),
        )
        drafter, approver = [
            await conn.fetchval(
                # Rows for drafted_by/approved_by only: no roles (a role needs a confirmed grant, migration 0014).
                "INSERT INTO staff_users (municipality_code, login, display_name, roles, password_hash)"
                " VALUES ($1, $2, 'テスト', '{}', 'x') RETURNING staff_id",
                code,
                f"{role}-{secrets.token_hex(3)}",
            )
            for role in ("drafter", "approver")
        ]
        snapshot = await conn.fetchval(
            "INSERT INTO registry_snapshots (municipality_code, kind, file_sha256, status)"
            " VALUES ($1, 'residents', $2, 'published') RETURNING snapshot_id",
            code,
            secrets.token_hex(32),
        )
        program = await conn.fetchval(
            "INSERT INTO programs (municipality_code, name, base_date, unit, amount_yen, payment_mode)"
            " VALUES ($1, 'テスト給付金', '2026-01-01', 'household', 100000, 'application') RETURNING program_id",
            code,
        )
        batch_id = await conn.fetchval(
            # 'preparing': payments join a batch only then (migration 0018); 'draft' once they are in.
            "INSERT INTO payout_batches"
            " (municipality_code, program_id, transfer_date, drafted_by, record_count, total_yen, status)"
            " VALUES ($1, $2, $3, $4, $5, $6, 'preparing') RETURNING batch_id",
            code,
            program,
            TRANSFER_DATE,
            drafter,
            len(rows),
            sum(r[5] for r in rows),
        )
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        ids = []
        for i, (bank_code, branch, kind, account, holder, amount) in enumerate(rows):
            ent = await conn.fetchval(
                "INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no,"
                " head_resident_code, members_counted, amount_yen, rule)"
                " VALUES ($1, $2, $3, $4, '12345678901', 1, $5, 't')"
                " RETURNING entitlement_id",
                code,
                program,
                snapshot,
                f"h{i}",
                amount,
            )
            pid = await conn.fetchval("SELECT nextval('payments_payment_id_seq')")
            await conn.execute(
                "INSERT INTO payments (municipality_code, payment_id, entitlement_id, amount_yen, bank_code,"
                " branch_code, account_type, bank_enc, status, batch_id) OVERRIDING SYSTEM VALUE"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'in_batch', $9)",
                code,
                pid,
                ent,
                amount,
                bank_code,
                branch,
                kind,
                seal_bank(cipher, pid, account, holder),
                batch_id,
            )
            ids.append(pid)
        await conn.execute(
            "UPDATE payout_batches SET status = 'draft' WHERE municipality_code = $1 AND batch_id = $2", code, batch_id
        )
    batch = Batch(code, batch_id, ids, identity, drafter, approver)
    if approve:
        await approve_batch(owner_conn, settings, batch)
    return batch


async def approve_batch(owner_conn, settings, batch: Batch) -> str:
    async with tenant_transaction(owner_conn, batch.code) as conn:
        rendered = await pipeline.render_batch(conn, settings, batch.code, batch.batch_id)
        await conn.execute(
            # The hash as the worker records it (plaintext_sha256), then its approval (migration 0016 wants both).
            "UPDATE payout_batches SET status = 'approved', approved_by = $3, approved_at = now(),"
            " approved_sha256 = $4, plaintext_sha256 = $4 WHERE municipality_code = $1 AND batch_id = $2",
            batch.code,
            batch.batch_id,
            batch.approver,
            rendered.sha256,
        )
    return rendered.sha256


def expected_file(batch: Batch, rows=ROWS, **bank_overrides) -> bytes:
    """The reference: payouts.zengin.generate on the same payments."""
    payments = [
        zengin.Payment(
            reference=pid, bank_code=b, branch_code=br, account_type=k, account_number=a, holder_kana=h, amount_yen=y
        )
        for pid, (b, br, k, a, h, y) in zip(batch.payment_ids, rows)
    ]
    return zengin.generate(bank_settings(**bank_overrides), TRANSFER_DATE, payments)

"""Sample rows for the payout stage's tables (migrations/0006_payouts.sql)."""

from __future__ import annotations

import secrets

from tests.samples.domain import batch, entitlement, program, staff
from tests.tenancy_samples import sample

AGE_RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


@sample("municipality_bank_settings")
async def _bank_settings(conn, code):
    await conn.execute(
        "INSERT INTO municipality_bank_settings (municipality_code, requester_code, requester_name_kana, bank_code,"
        " branch_code, account_type, account_number, separator, age_recipients)"
        " VALUES ($1, '1234567890', 'ｻﾝﾌﾟﾙｼ', '0001', '001', 1, '1234567', 'crlf', $2)",
        code,
        [AGE_RECIPIENT],
    )


async def _released_batch(conn, code) -> int:
    batch_id = await batch(conn, code)
    await conn.execute(
        "UPDATE payout_batches SET status = 'released', approved_by = $3, approved_at = now(), approved_sha256 = $4,"
        " released_at = now(), released_sha256 = $4 WHERE municipality_code = $1 AND batch_id = $2",
        code,
        batch_id,
        await staff(conn, code),
        secrets.token_hex(32),
    )
    return batch_id


@sample("payout_releases")
async def _release(conn, code):
    batch_id = await batch(conn, code)
    await conn.execute(
        "INSERT INTO payout_releases (municipality_code, batch_id, released_by, file_name, plaintext_sha256,"
        " ciphertext_sha256, signed_manifest) VALUES ($1, $2, $3, 'sample.txt', $4, $4, '\\x00')",
        code,
        batch_id,
        await staff(conn, code),
        secrets.token_hex(32),
    )


async def _import(conn, code) -> int:
    return await conn.fetchval(
        "INSERT INTO payout_return_imports (municipality_code, batch_id, file_sha256, returned_count, paid_count)"
        " VALUES ($1, $2, $3, 0, 0) RETURNING import_id",
        code,
        await _released_batch(conn, code),
        secrets.token_hex(32),
    )


sample("payout_return_imports")(lambda conn, code: _import(conn, code))


async def _payment(conn, code, status="returned") -> int:
    return await conn.fetchval(
        "INSERT INTO payments (municipality_code, entitlement_id, amount_yen, bank_code, branch_code, account_type,"
        " account_number_enc, holder_kana_enc, status) VALUES ($1, $2, 100000, '0001', '001', 1, '\\x00', '\\x00', $3)"
        " RETURNING payment_id",
        code,
        await entitlement(conn, code),
        status,
    )


@sample("payment_returns")
async def _return(conn, code):
    await conn.execute(
        "INSERT INTO payment_returns (municipality_code, payment_id, import_id, reason_code, reason)"
        " VALUES ($1, $2, $3, '2', '取引なし')",
        code,
        await _payment(conn, code),
        await _import(conn, code),
    )


@sample("payment_reissues")
async def _reissue(conn, code):
    old = await _payment(conn, code)
    new = await _payment(conn, code, "ready")
    await conn.execute(
        "INSERT INTO payment_reissues (municipality_code, payment_id, replaces_payment_id) VALUES ($1, $2, $3)",
        code,
        new,
        old,
    )


# ---- 組戻し and 返還 (migration 0019): a payment that left in a released file ---------------------------


async def _sent_payment(conn, code) -> int:
    """A payment put into a batch while it was prepared, then the batch released (what recovery needs)."""
    batch_id = await conn.fetchval(
        "INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by, record_count,"
        " total_yen, status) VALUES ($1, $2, '2026-12-01', $3, 1, 100000, 'preparing') RETURNING batch_id",
        code,
        await program(conn, code),
        await staff(conn, code),
    )
    payment_id = await conn.fetchval(
        "INSERT INTO payments (municipality_code, entitlement_id, amount_yen, bank_code, branch_code, account_type,"
        " account_number_enc, holder_kana_enc, status, batch_id)"
        " VALUES ($1, $2, 100000, '0001', '001', 1, '\\x00', '\\x00', 'in_batch', $3) RETURNING payment_id",
        code,
        await entitlement(conn, code),
        batch_id,
    )
    sha = secrets.token_hex(32)
    await conn.execute(
        "UPDATE payout_batches SET status = 'released', approved_by = $3, approved_at = now(), approved_sha256 = $4,"
        " plaintext_sha256 = $4, released_at = now(), released_sha256 = $4"
        " WHERE municipality_code = $1 AND batch_id = $2",
        code,
        batch_id,
        await staff(conn, code),
        sha,
    )
    return payment_id


@sample("payment_recalls")
async def _recall(conn, code):
    await conn.execute(
        "INSERT INTO payment_recalls (municipality_code, payment_id, reason, requested_by)"
        " VALUES ($1, $2, '誤振込', $3)",
        code,
        await _sent_payment(conn, code),
        await staff(conn, code),
    )


async def _debt(conn, code) -> int:
    return await conn.fetchval(
        "INSERT INTO payment_debts (municipality_code, payment_id, amount_yen, reason, opened_by)"
        " VALUES ($1, $2, 100000, '受給資格なし', $3) RETURNING debt_id",
        code,
        await _sent_payment(conn, code),
        await staff(conn, code),
    )


sample("payment_debts")(lambda conn, code: _debt(conn, code))


@sample("debt_notices")
async def _notice(conn, code):
    await conn.execute(
        "INSERT INTO debt_notices (municipality_code, debt_id, kind, sent_on, recorded_by)"
        " VALUES ($1, $2, 'demand', '2026-12-10', $3)",
        code,
        await _debt(conn, code),
        await staff(conn, code),
    )


@sample("debt_repayments")
async def _repayment(conn, code):
    await conn.execute(
        "INSERT INTO debt_repayments (municipality_code, debt_id, amount_yen, received_on, recorded_by)"
        " VALUES ($1, $2, 30000, '2026-12-20', $3)",
        code,
        await _debt(conn, code),
        await staff(conn, code),
    )


@sample("payout_batch_account_flags")
async def _account_flag(conn, code):
    # An over-limit account of a draft (migration 0018); the database writes these when a preparation
    # ends, and nothing checks the row's payments here.
    await conn.execute(
        "INSERT INTO payout_batch_account_flags (municipality_code, batch_id, account_key, payments, total_yen,"
        " payment_ids) VALUES ($1, $2, $3, 2, 200000, '{1,2}')",
        code,
        await batch(conn, code),
        secrets.token_bytes(32),
    )

"""Sample rows for the payout stage's tables (migrations/0006_payouts.sql)."""

from __future__ import annotations

import secrets

from tests.samples.domain import batch, entitlement, staff
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

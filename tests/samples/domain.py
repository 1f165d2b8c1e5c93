"""Sample rows for the core domain tables (migrations/0002_domain.sql)."""

from __future__ import annotations

import secrets

from tests.tenancy_samples import sample


async def snapshot(conn, code, kind="residents") -> int:
    return await conn.fetchval(
        "INSERT INTO registry_snapshots (municipality_code, kind, file_sha256, status)"
        " VALUES ($1, $2, $3, 'published') RETURNING snapshot_id",
        code,
        kind,
        secrets.token_hex(32),
    )


async def program(conn, code) -> int:
    return await conn.fetchval(
        "INSERT INTO programs (municipality_code, name, base_date, unit, amount_yen, payment_mode)"
        " VALUES ($1, 'サンプル給付金', '2026-01-01', 'household', 100000, 'letter') RETURNING program_id",
        code,
    )


async def entitlement(conn, code) -> int:
    snap, prog = await snapshot(conn, code), await program(conn, code)
    return await conn.fetchval(
        "INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no, head_resident_code,"
        " members_counted, amount_yen, rule) VALUES ($1, $2, $3, $4, '12345678901', 1, 100000, 'sample')"
        " RETURNING entitlement_id",
        code,
        prog,
        snap,
        secrets.token_hex(4),
    )


async def application(conn, code) -> int:
    ent = await entitlement(conn, code)
    return await conn.fetchval(
        "INSERT INTO applications (municipality_code, entitlement_id, receipt_no, channel, bank_code, branch_code,"
        " account_type, account_number_enc, holder_kana_enc) VALUES ($1, $2, $3, 'online', '0001', '001', 1,"
        " '\\x00', '\\x00') RETURNING application_id",
        code,
        ent,
        secrets.token_hex(6),
    )


async def staff(conn, code) -> int:
    return await conn.fetchval(
        # No roles: a role needs a grant confirmed by a second admin (migration 0014); a row is all this needs.
        "INSERT INTO staff_users (municipality_code, login, display_name, roles, password_hash)"
        " VALUES ($1, $2, 'サンプル', '{}', 'x') RETURNING staff_id",
        code,
        f"s-{secrets.token_hex(4)}",
    )


async def batch(conn, code) -> int:
    return await conn.fetchval(
        "INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by, record_count, total_yen)"
        " VALUES ($1, $2, '2026-12-01', $3, 0, 0) RETURNING batch_id",
        code,
        await program(conn, code),
        await staff(conn, code),
    )


sample("registry_snapshots")(lambda conn, code: snapshot(conn, code))
sample("programs")(lambda conn, code: program(conn, code))
sample("entitlements")(lambda conn, code: entitlement(conn, code))
sample("applications")(lambda conn, code: application(conn, code))
sample("payout_batches")(lambda conn, code: batch(conn, code))


@sample("residents")
async def _resident(conn, code):
    await conn.execute(
        "INSERT INTO residents (municipality_code, snapshot_id, resident_code, household_no, relationship, is_head,"
        " family_name, given_name, family_kana, given_kana, birth_date, sex, address)"
        " VALUES ($1, $2, '12345678901', '1', '世帯主', true, '山田', '太郎', 'ヤマダ', 'タロウ', '1980-01-01',"
        " '1', '東京都')",
        code,
        await snapshot(conn, code),
    )


@sample("tax_statuses")
async def _tax(conn, code):
    await conn.execute(
        "INSERT INTO tax_statuses (municipality_code, snapshot_id, line_no, fiscal_year, household_no, tax_class)"
        " VALUES ($1, $2, 1, 2026, '1', 'exempt')",
        code,
        await snapshot(conn, code, "tax"),
    )


@sample("letters")
async def _letter(conn, code):
    await conn.execute(
        "INSERT INTO letters (municipality_code, entitlement_id, kind, access_code, pin_hash)"
        " VALUES ($1, $2, 'confirmation', $3, '\\x00')",
        code,
        await entitlement(conn, code),
        secrets.token_hex(6),
    )


@sample("registered_accounts")
async def _account(conn, code):
    await conn.execute(
        "INSERT INTO registered_accounts (municipality_code, resident_code, bank_code, branch_code, account_type,"
        " account_number_enc, holder_kana_enc) VALUES ($1, $2, '0001', '001', 1, '\\x00', '\\x00')",
        code,
        f"{secrets.randbelow(10**11):011d}",
    )


@sample("payments")
async def _payment(conn, code):
    await conn.execute(
        "INSERT INTO payments (municipality_code, entitlement_id, amount_yen, bank_code, branch_code, account_type,"
        " account_number_enc, holder_kana_enc) VALUES ($1, $2, 100000, '0001', '001', 1, '\\x00', '\\x00')",
        code,
        await entitlement(conn, code),
    )

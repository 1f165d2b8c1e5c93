"""Sample rows for the staff console's tables (migrations/0005_staff.sql, 0014_staff_enrolment.sql)."""

from __future__ import annotations

import secrets

from tests.samples.domain import entitlement, staff
from tests.tenancy_samples import sample


@sample("staff_sessions")
async def _session(conn, code):
    await conn.execute(
        "INSERT INTO staff_sessions (municipality_code, token_sha256, staff_id) VALUES ($1, $2, $3)",
        code,
        secrets.token_hex(32),
        await staff(conn, code),
    )


@sample("staff_settings")
async def _settings(conn, code):
    await conn.execute("INSERT INTO staff_settings (municipality_code) VALUES ($1) ON CONFLICT DO NOTHING", code)


@sample("audit_log")
async def _audit(conn, code):
    # seq/prev_hash/hash are assigned by the chaining trigger.
    await conn.execute(
        "INSERT INTO audit_log (municipality_code, seq, occurred_at, action, prev_hash, hash)"
        " VALUES ($1, 1, now(), 'sample', repeat('0', 64), repeat('0', 64))",
        code,
    )


@sample("payment_followups")
async def _followup(conn, code):
    payment_id = await conn.fetchval(
        "INSERT INTO payments (municipality_code, entitlement_id, amount_yen, bank_code, branch_code, account_type,"
        " account_number_enc, holder_kana_enc, status, return_reason) VALUES ($1, $2, 100000, '0001', '001', 1,"
        " '\\x00', '\\x00', 'returned', 'sample') RETURNING payment_id",
        code,
        await entitlement(conn, code),
    )
    await conn.execute(
        "INSERT INTO payment_followups (municipality_code, payment_id, recontact_by) VALUES ($1, $2, $3)",
        code,
        payment_id,
        await staff(conn, code),
    )


@sample("staff_enrolments")
async def _enrolment(conn, code):
    await conn.execute(
        "INSERT INTO staff_enrolments (municipality_code, staff_id, token_sha256, totp_secret, issued_by_operator,"
        " expires_at) VALUES ($1, $2, $3, '\\x00', 'sample', now() + interval '1 hour')",
        code,
        await staff(conn, code),
        secrets.token_hex(32),
    )


@sample("staff_role_grants")
async def _grant(conn, code):
    await conn.execute(
        "INSERT INTO staff_role_grants (municipality_code, staff_id, role, requested_by_operator)"
        " VALUES ($1, $2, 'reviewer', 'sample')",
        code,
        await staff(conn, code),
    )

"""Sample rows for the intake tables (migrations/0004_intake.sql)."""

from __future__ import annotations

import secrets

from tests.samples.domain import application
from tests.tenancy_samples import sample


@sample("intake_idempotency_keys")
async def _key(conn, code):
    await conn.execute(
        "INSERT INTO intake_idempotency_keys"
        " (municipality_code, idempotency_key, request_sha256, status_code, response)"
        " VALUES ($1, $2, $3, 201, '{}')",
        code,
        secrets.token_hex(8),
        secrets.token_bytes(32),
    )


@sample("intake_duplicate_claims")
async def _duplicate(conn, code):
    app_id = await application(conn, code)
    ent = await conn.fetchval(
        "SELECT entitlement_id FROM applications WHERE municipality_code = $1 AND application_id = $2", code, app_id
    )
    await conn.execute(
        "INSERT INTO intake_duplicate_claims (municipality_code, entitlement_id, application_id, channel)"
        " VALUES ($1, $2, $3, 'paper')",
        code,
        ent,
        app_id,
    )


@sample("intake_identity_lockouts")
async def _identity_lockout(conn, code):
    await conn.execute(
        "INSERT INTO intake_identity_lockouts (municipality_code, identity_key, failed_attempts) VALUES ($1, $2, 1)",
        code,
        secrets.token_bytes(32),
    )


@sample("application_account_changes")
async def _account_change(conn, code):
    app_id = await application(conn, code)
    await conn.execute(
        "INSERT INTO application_account_changes (municipality_code, application_id, entitlement_id, changed_by,"
        " channel, old_bank_code, old_branch_code, old_account_type, old_account_number_enc, old_holder_kana_enc,"
        " new_bank_code, new_branch_code)"
        " SELECT $1, application_id, entitlement_id, 'sample', 'online', '0001', '001', 1, '\\x00', '\\x00', '0005',"
        " '123' FROM applications WHERE municipality_code = $1 AND application_id = $2",
        code,
        app_id,
    )

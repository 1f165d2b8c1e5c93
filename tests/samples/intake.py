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

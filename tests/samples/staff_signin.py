"""Sample rows for the staff sign-in limits (migrations/0015_staff_signin.sql)."""

from __future__ import annotations

import secrets

from tests.samples.domain import staff
from tests.tenancy_samples import sample


@sample("staff_signin_failures")
async def _failures(conn, code):
    await conn.execute(
        "INSERT INTO staff_signin_failures (municipality_code, login_hmac, staff_id, failures, last_failed_at)"
        " VALUES ($1, $2, $3, 1, now())",
        code,
        secrets.token_hex(32),
        await staff(conn, code),
    )


@sample("staff_devices")
async def _device(conn, code):
    await conn.execute(
        "INSERT INTO staff_devices (municipality_code, staff_id, device_sha256) VALUES ($1, $2, $3)",
        code,
        await staff(conn, code),
        secrets.token_hex(32),
    )

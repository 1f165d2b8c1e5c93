"""Sample rows for the proxy and DV tables (migrations/0026_proxy_and_dv.sql)."""

from __future__ import annotations

import secrets

from tests.samples.domain import entitlement, staff
from tests.tenancy_samples import sample


async def proxy_application(conn, code) -> int:
    ent = await entitlement(conn, code)
    return await conn.fetchval(
        "INSERT INTO applications (municipality_code, entitlement_id, receipt_no, channel, bank_code, branch_code,"
        " account_type, account_number_enc, holder_kana_enc, is_proxy, identification) VALUES ($1, $2, $3, 'paper',"
        " '0001', '001', 1, '\\x00', '\\x00', true, 'counter') RETURNING application_id",
        code,
        ent,
        secrets.token_hex(6),
    )


def reference() -> str:
    h = secrets.token_hex(6).upper()
    return f"V-{h[:4]}-{h[4:8]}-{h[8:]}"


@sample("application_proxies")
async def _proxy(conn, code):
    await conn.execute(
        "INSERT INTO application_proxies (municipality_code, application_id, relationship, proxy_enc, evidence,"
        " recorded_by) VALUES ($1, $2, 'caregiver', '\\x00', '{proxy_identity,delegation}', $3)",
        code,
        await proxy_application(conn, code),
        await staff(conn, code),
    )


@sample("dv_requests")
async def _dv_request(conn, code):
    app_id = await proxy_application(conn, code)
    ent, program = await conn.fetchrow(
        "SELECT e.entitlement_id, e.program_id FROM applications a JOIN entitlements e USING (municipality_code,"
        " entitlement_id) WHERE a.municipality_code = $1 AND a.application_id = $2",
        code,
        app_id,
    )
    other = await conn.fetchval("SELECT code FROM municipalities WHERE code <> $1 ORDER BY code LIMIT 1", code)
    await conn.execute(
        "INSERT INTO dv_requests (municipality_code, reference, program_id, registered_municipality_code, evidence,"
        " evidence_issued_on, persons, details_enc, entitlement_id, application_id, filed_by)"
        " VALUES ($1, $2, $3, $4, 'protection_order', '2026-01-01', 1, '\\x00', $5, $6, $7)",
        code,
        reference(),
        program,
        other,
        ent,
        app_id,
        await staff(conn, code),
    )


@sample("dv_exclusions")
async def _dv_exclusion(conn, code):
    await conn.execute(
        "INSERT INTO dv_exclusions (municipality_code, reference, entitlement_id, resident_code, person, counted,"
        " share_yen, applied_by) VALUES ($1, $2, $3, '12345678901', 0, true, 100000, $4)",
        code,
        reference(),
        await entitlement(conn, code),
        await staff(conn, code),
    )

"""Sample rows for the registry area's tables (migrations/0003_registry.sql, 0011_residents_partitioned.sql)."""

from __future__ import annotations

from tests.samples.domain import application, entitlement, program, snapshot
from tests.tenancy_samples import sample


@sample("entitlement_conflicts")
async def _conflict(conn, code):
    await conn.execute(
        "INSERT INTO entitlement_conflicts (municipality_code, entitlement_id, snapshot_id, kind)"
        " VALUES ($1, $2, $3, 'no_longer_eligible')",
        code,
        await entitlement(conn, code),
        await snapshot(conn, code),
    )


@sample("application_account_keys")
async def _account_key(conn, code):
    await conn.execute(
        "INSERT INTO application_account_keys (municipality_code, application_id, account_key)"
        " VALUES ($1, $2, '\\x01')",
        code,
        await application(conn, code),
    )


@sample("eligibility_runs")
async def _eligibility_run(conn, code):
    await conn.execute(
        "INSERT INTO eligibility_runs (municipality_code, program_id, program_digest, snapshot_id)"
        " VALUES ($1, $2, 'x', $3)",
        code,
        await program(conn, code),
        await snapshot(conn, code),
    )

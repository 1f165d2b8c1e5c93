"""Sample rows for 支給保留・支給停止 and the registry screening (migrations/0025_holds.sql)."""

from __future__ import annotations

from tests.samples.domain import entitlement, snapshot, staff
from tests.tenancy_samples import sample


@sample("payment_holds")
async def _hold(conn, code):
    await conn.execute(
        "INSERT INTO payment_holds (municipality_code, entitlement_id, reason, source, note, placed_by)"
        " VALUES ($1, $2, 'investigation', 'staff', 'サンプル', $3)",
        code,
        await entitlement(conn, code),
        await staff(conn, code),
    )


@sample("registry_screenings")
async def _screening(conn, code):
    await conn.execute(
        "INSERT INTO registry_screenings (municipality_code, snapshot_id, checked, held) VALUES ($1, $2, 0, 0)",
        code,
        await snapshot(conn, code),
    )

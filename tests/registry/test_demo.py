"""The demo seed: idempotent, and prints letter codes a person can sign in with."""

from __future__ import annotations

from app.tenancy.transaction import tenant_transaction
from devtools.demo_registry import seed_demo


async def test_seed_demo_is_idempotent_and_prints_codes(app_pool, settings, code):
    async with app_pool.acquire() as conn:
        first = await seed_demo(conn, settings, code)
        second = await seed_demo(conn, settings, code)
    assert sum("PIN" in line for line in first) == 6  # 3 for the letter program, 3 for the push program
    assert [line for line in first if "PIN" not in line] == [line for line in second if "PIN" not in line]
    async with tenant_transaction(app_pool, code) as conn:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM programs) AS programs, (SELECT count(*) FROM registry_snapshots) AS snapshots"
        )
    assert dict(counts) == {"programs": 3, "snapshots": 3}

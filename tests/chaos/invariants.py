"""The invariants every fault scenario ends with, checked per municipality in tenant transactions:

* no lost application: every receipt a client got a 2xx for is exactly one application;
* exactly one verification result per application: none still `received`, and exactly one outbox row
  `verify:{code}:{id}`, done;
* no entitlement with two active applications, no payment in two batches (a column, checked anyway for
  statuses), no entitlement paid twice, and each batch's record count and total equal its payments'.
"""

from __future__ import annotations

import asyncio
import time

from app.tenancy.transaction import tenant_transaction

COUNTS = """
SELECT
  (SELECT count(*) FROM applications) AS applications,
  (SELECT count(*) FROM applications WHERE status = 'received') AS unverified,
  (SELECT count(*) FROM (SELECT entitlement_id FROM applications WHERE status NOT IN ('rejected', 'withdrawn')
                          GROUP BY entitlement_id HAVING count(*) > 1) d) AS entitlements_with_two_active,
  (SELECT count(*) FROM applications a WHERE (SELECT count(*) FROM outbox o
        WHERE o.job_id = 'verify:' || a.municipality_code || ':' || a.application_id AND o.done_at IS NOT NULL) <> 1)
        AS applications_without_one_verification,
  (SELECT count(*) FROM (SELECT entitlement_id FROM payments WHERE status IN ('in_batch', 'released', 'paid')
                          GROUP BY entitlement_id HAVING count(*) > 1) p) AS entitlements_paid_twice,
  (SELECT count(*) FROM payout_batches b WHERE b.status <> 'cancelled'
        AND (b.record_count <> (SELECT count(*) FROM payments p WHERE p.batch_id = b.batch_id)
             OR b.total_yen <> (SELECT coalesce(sum(amount_yen), 0) FROM payments p WHERE p.batch_id = b.batch_id)))
        AS batches_with_wrong_totals
"""
RECEIPTS = "SELECT receipt_no, count(*) AS n FROM applications WHERE receipt_no = ANY($1::text[]) GROUP BY receipt_no"


async def counts(pool, code: str) -> dict:
    async with tenant_transaction(pool, code, readonly=True) as conn:
        return dict(await conn.fetchrow(COUNTS))


async def wait_until_verified(pool, code: str, expected: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        c = await counts(pool, code)
        if (c["applications"] >= expected and c["unverified"] == 0) or time.monotonic() > deadline:
            return c
        await asyncio.sleep(0.5)


async def check(pool, code: str, receipts: list[str], expected_applications: int, *, timeout: float = 90) -> dict:
    """Assert every invariant; return the counts for the report."""
    c = await wait_until_verified(pool, code, expected_applications, timeout)
    async with tenant_transaction(pool, code, readonly=True) as conn:
        found = {r["receipt_no"]: r["n"] for r in await conn.fetch(RECEIPTS, receipts)}
    lost = [r for r in receipts if found.get(r) != 1]
    assert not lost, f"{len(lost)} receipts without exactly one application"
    assert c["applications"] == expected_applications, c
    assert c["unverified"] == 0, c
    assert c["applications_without_one_verification"] == 0, c
    assert c["entitlements_with_two_active"] == 0, c
    assert c["entitlements_paid_twice"] == 0, c
    assert c["batches_with_wrong_totals"] == 0, c
    return c

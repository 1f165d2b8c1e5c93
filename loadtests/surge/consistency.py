"""The check the surge ends with, against the database, after verification has drained:

* every receipt a client was given (201 from the API, or the web receipt page) is exactly one
  application, and no letter was given two different receipts;
* every application reached a verification result: none still `received`, and exactly one done
  `verify:{code}:{id}` outbox row each;
* no entitlement has two applications (of any status);
* every lost-response replay got the same receipt back (counted by the clients).

Applications no client saw a receipt for (a resident who gave up after the submit was committed) are
counted, not failed: the resident sees the receipt on the status page, and the invariant is about the
receipts that were given.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from app.db import fetch_always
from app.tenancy.transaction import tenant_transaction

COUNTS = """
SELECT
  (SELECT count(*) FROM applications WHERE municipality_code = $1) AS applications,
  (SELECT count(*) FROM applications WHERE municipality_code = $1 AND status = 'received') AS unverified,
  (SELECT count(*) FROM outbox WHERE municipality_code = $1 AND done_at IS NULL) AS outbox_backlog,
  (SELECT count(*) FROM (SELECT entitlement_id FROM applications WHERE municipality_code = $1
                         GROUP BY entitlement_id HAVING count(*) > 1) d) AS entitlements_with_two_applications,
  (SELECT count(*) FROM applications a WHERE a.municipality_code = $1 AND (
      SELECT count(*) FROM outbox o WHERE o.municipality_code = a.municipality_code
        AND o.job_id = 'verify:' || a.municipality_code || ':' || a.application_id AND o.done_at IS NOT NULL) <> 1)
      AS applications_without_one_verification
"""
BY_STATUS = """
SELECT status, count(*) AS n FROM applications WHERE municipality_code = $1 GROUP BY status ORDER BY status
"""
RECEIPTS = """
SELECT r.receipt_no, count(a.application_id) AS n
FROM unnest($2::text[]) AS r(receipt_no)
LEFT JOIN applications a ON a.municipality_code = $1 AND a.receipt_no = r.receipt_no
GROUP BY r.receipt_no
"""
ALL_RECEIPTS = "SELECT receipt_no FROM applications WHERE municipality_code = $1"


async def _counts(conn: asyncpg.Connection, code: str) -> dict:
    async with tenant_transaction(conn, code, readonly=True) as tx:
        return dict(await fetch_always(tx, COUNTS, code))


async def wait_drained(database_url: str, code: str, timeout_s: float) -> dict:
    """Wait until no application is `received` and the outbox is empty, or the timeout; report which."""
    conn = await asyncpg.connect(database_url)
    t0 = time.monotonic()
    try:
        while True:
            c = await _counts(conn, code)
            drained = c["unverified"] == 0 and c["outbox_backlog"] == 0
            if drained or time.monotonic() - t0 > timeout_s:
                return {
                    "drained": drained,
                    "seconds": round(time.monotonic() - t0, 1),
                    "unverified": c["unverified"],
                    "outbox_backlog": c["outbox_backlog"],
                }
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def check(database_url: str, code: str, receipts: list[dict], clients: dict) -> dict:
    """All the invariants above; `receipts` are the clients' {letter, receipt_no, via} records."""
    by_letter: dict[int, set[str]] = {}
    for r in receipts:
        by_letter.setdefault(r["letter"], set()).add(r["receipt_no"])
    given = sorted({r["receipt_no"] for r in receipts})
    conn = await asyncpg.connect(database_url)
    try:
        c = await _counts(conn, code)
        async with tenant_transaction(conn, code, readonly=True) as tx:
            found = {r["receipt_no"]: r["n"] for r in await tx.fetch(RECEIPTS, code, given)}
            in_db = {r["receipt_no"] for r in await tx.fetch(ALL_RECEIPTS, code)}
            statuses = {r["status"]: r["n"] for r in await tx.fetch(BY_STATUS, code)}
    finally:
        await conn.close()
    checks = {
        "receipts_without_exactly_one_application": sum(1 for n in found.values() if n != 1),
        "letters_with_two_receipts": sum(1 for s in by_letter.values() if len(s) > 1),
        "applications_unverified": c["unverified"],
        "applications_without_one_verification": c["applications_without_one_verification"],
        "entitlements_with_two_applications": c["entitlements_with_two_applications"],
        "replays_with_another_answer": clients.get("replay_mismatch", 0),
    }
    return {
        "ok": all(v == 0 for v in checks.values()) and len(given) > 0,
        "checks": checks,
        "receipts_given": len(given),
        "receipt_answers": len(receipts),
        "applications": c["applications"],
        "applications_by_status": statuses,
        "applications_without_client_receipt": len(in_db - set(given)),
    }

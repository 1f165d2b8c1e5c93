"""Jobs of the payout stage (collected by workers/settings.py): the draft's file hash and the release.

Both are enqueued only from outbox rows written with the request that needs them (payouts.batches:
drafting or sending back asks for `hash_batch`; 送信 asks for `release_batch`) and mark their row done in
the transaction that records their outcome, so a lost or repeated job is harmless: a stale generation
or attempt does nothing, a batch already released is a no-op (the release-once trigger backs this), and a
crash before commit re-derives the job, whose release adopts the file it had written (payouts/release.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from app.tenancy.transaction import tenant_transaction
from payouts import batches

log = logging.getLogger("kyufu.jobs.payouts")


async def hash_batch(ctx: dict[str, Any], code: str, batch_id: int, generation: int) -> str:
    return await batches.compute_hash(ctx["pool"], ctx["settings"], code, batch_id, generation)


async def release_batch(ctx: dict[str, Any], code: str, batch_id: int, attempt: int) -> str:
    outcome = await batches.perform_release(ctx["pool"], ctx["settings"], code, batch_id, attempt)
    log.info("release job of batch %s of %s: %s", batch_id, code, outcome.split(" ")[0])
    return outcome


JOBS: list = [hash_batch, release_batch]

DUE = """
SELECT job_name, args FROM outbox
WHERE municipality_code = $1 AND done_at IS NULL AND job_name = ANY($2::text[]) ORDER BY outbox_id
"""


async def run_due(pool, settings, code: str) -> list[str]:
    """Run a municipality's pending payout jobs in this process, in outbox order, exactly as the worker
    would (the same functions and ctx): for `kyufu demo e2e`, which is one process, and for tests that
    drive the console step by step. Returns each job's outcome."""
    ctx = {"pool": pool, "settings": settings}
    async with tenant_transaction(pool, code, readonly=True) as conn:
        rows = await conn.fetch(DUE, code, [job.__name__ for job in JOBS])
    return [await globals()[r["job_name"]](ctx, *json.loads(r["args"])) for r in rows]


CRON_JOBS: list = []

"""Jobs of the payout stage (collected by workers/settings.py): a draft's preparation, its file hash and
the release.

All are enqueued only from outbox rows written with the request or the job step that needs them
(payouts.drafting: 振込起案 asks for `prepare_batch`, whose last step asks for `hash_batch`; payouts.batches:
sending back asks for `hash_batch`; 送信 asks for `release_batch`) and mark their row done in
the transaction that records their outcome, so a lost or repeated job is harmless: a stale generation
or attempt does nothing, a batch already released is a no-op (the release-once trigger backs this), and a
crash before commit re-derives the job, whose release adopts the file it had written (payouts/release.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from app import outbox
from app.tenancy.transaction import tenant_transaction
from payouts import batches, drafting

log = logging.getLogger("kyufu.jobs.payouts")


async def prepare_batch(ctx: dict[str, Any], code: str, batch_id: int, step: int) -> str:
    outcome = await drafting.prepare_batch(ctx["pool"], ctx["settings"], code, batch_id, step)
    # The next step or the hash was written to the outbox with this step's last chunk: hand it to the
    # worker now rather than at the sweeper's next round (best effort, as in the console).
    if "redis" in ctx and outcome != "stale":
        try:
            await outbox.dispatch(ctx["pool"], ctx["redis"], code)
        except Exception as exc:  # Redis trouble: the sweeper enqueues the row
            log.warning("dispatch after preparing batch %s of %s deferred (%s)", batch_id, code, type(exc).__name__)
    log.info("prepare job of batch %s of %s step %s: %s", batch_id, code, step, outcome)
    return outcome


async def hash_batch(ctx: dict[str, Any], code: str, batch_id: int, generation: int) -> str:
    return await batches.compute_hash(ctx["pool"], ctx["settings"], code, batch_id, generation)


async def release_batch(ctx: dict[str, Any], code: str, batch_id: int, attempt: int) -> str:
    outcome = await batches.perform_release(ctx["pool"], ctx["settings"], code, batch_id, attempt)
    log.info("release job of batch %s of %s: %s", batch_id, code, outcome.split(" ")[0])
    return outcome


JOBS: list = [prepare_batch, hash_batch, release_batch]

DUE = """
SELECT job_name, args FROM outbox
WHERE municipality_code = $1 AND done_at IS NULL AND job_name = ANY($2::text[]) ORDER BY outbox_id
"""


async def run_due(pool, settings, code: str, only: tuple[str, ...] = ()) -> list[str]:
    """Run a municipality's pending payout jobs in this process, in outbox order, exactly as the worker
    would (the same functions and ctx), until none is pending (a job may ask for the next one: a draft's
    preparation asks for its hash): for `kyufu demo e2e`, which is one process, and for tests that drive
    the console step by step. Returns each job's outcome; `only` limits it to the named jobs."""
    ctx = {"pool": pool, "settings": settings}
    names = list(only) if only else [job.__name__ for job in JOBS]
    outcomes: list[str] = []
    for _ in range(10_000):  # a bound, not a limit anyone reaches: each step makes progress
        async with tenant_transaction(pool, code, readonly=True) as conn:
            rows = await conn.fetch(DUE, code, names)
        if not rows:
            return outcomes
        outcomes += [await globals()[r["job_name"]](ctx, *json.loads(r["args"])) for r in rows]
    raise RuntimeError(f"payout jobs of {code} did not settle")


CRON_JOBS: list = []

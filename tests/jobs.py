"""Run a municipality's pending payout jobs (prepare_batch, hash_batch, release_batch) the way the worker
does, for tests that drive the console's functions step by step; the chaos tests run the real
`kyufu worker` instead."""

from __future__ import annotations

from app.tenancy.transaction import tenant_transaction
from payouts import drafting
from workers.payouts import run_due


async def run_payout_jobs(pool, settings, code: str, only: tuple[str, ...] = ()) -> list[str]:
    return await run_due(pool, settings, code, only)


async def draft(pool, world, transfer_date, who: str = "draft", **expected) -> int:
    """振込起案 as the console does it, then the worker's preparation (not the hash): the batch is a draft
    with its payments frozen, or cancelled with its draft_error."""
    async with tenant_transaction(pool, world.code) as conn:
        batch_id = await drafting.draft_batch(
            conn, world.code, world.staff[who], world.program_id, transfer_date, **expected
        )
    await run_due(pool, world.settings, world.code, ("prepare_batch",))
    return batch_id

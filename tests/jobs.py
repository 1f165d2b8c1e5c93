"""Run a municipality's pending payout jobs (hash_batch, release_batch) the way the worker does, for tests
that drive the console's functions step by step; the chaos tests run the real `kyufu worker` instead."""

from __future__ import annotations


async def run_payout_jobs(pool, settings, code: str) -> list[str]:
    from workers.payouts import run_due

    return await run_due(pool, settings, code)

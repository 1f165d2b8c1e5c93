"""The outbox re-derives jobs that Redis lost."""

from __future__ import annotations

from arq.jobs import Job

from app import outbox
from app.main import arq_redis
from app.tenancy.transaction import tenant_transaction


async def test_dispatch_enqueues_once_and_sweeper_rederives_after_redis_loses_it(app_pool, settings, municipality):
    code = await municipality()
    redis = arq_redis(settings)
    try:
        async with tenant_transaction(app_pool, code) as conn:
            await outbox.add(conn, code, "verify_application", f"verify:{code}:1", code, 1)
            await outbox.add(conn, code, "verify_application", f"verify:{code}:1", code, 1)  # same job: one row
        # batch_size=1: one job per row (the single re-check); batching is tested in tests/registry.
        assert await outbox.dispatch(app_pool, redis, code, batch_size=1) == 1
        assert await outbox.dispatch(app_pool, redis, code, batch_size=1) == 0  # enqueued, not yet due again
        assert await Job(f"verify:{code}:1", redis).status() == "queued"

        await redis.flushdb()  # Redis restarted empty
        assert await Job(f"verify:{code}:1", redis).status() == "not_found"
        assert await outbox.sweep(app_pool, redis, retry_after_s=0, batch_size=1) >= 1
        assert await Job(f"verify:{code}:1", redis).status() == "queued"

        async with tenant_transaction(app_pool, code) as conn:
            await outbox.mark_done(conn, code, f"verify:{code}:1")
        await redis.flushdb()
        assert await outbox.dispatch(app_pool, redis, code, older_than_s=0) == 0  # done rows are never re-sent
        assert await outbox.backlog(app_pool, code) == (0, 0.0)
    finally:
        await redis.flushdb()
        await redis.aclose()


async def test_a_failed_runs_result_does_not_block_the_sweeper(app_pool, settings, municipality):
    """arq keeps a failed job's result for an hour; a row still not done must be re-enqueued anyway
    (found by tests/chaos/test_postgres.py: PostgreSQL restarted under running verification jobs)."""
    from arq.constants import result_key_prefix

    code = await municipality()
    job_id = f"verify:{code}:2"
    redis = arq_redis(settings)
    try:
        async with tenant_transaction(app_pool, code) as conn:
            await outbox.add(conn, code, "verify_application", job_id, code, 2)
        await redis.set(result_key_prefix + job_id, b"a failed run", px=3_600_000)  # no job key: it ran
        assert await outbox.dispatch(app_pool, redis, code, batch_size=1) == 1
        assert await Job(job_id, redis).status() == "queued"
        assert not await redis.exists(result_key_prefix + job_id)
    finally:
        await redis.delete(result_key_prefix + job_id, "arq:job:" + job_id)
        await redis.zrem(redis.default_queue_name, job_id)
        await redis.aclose()

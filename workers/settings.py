"""arq WorkerSettings. `kyufu worker` builds Settings once and passes them through arq's ctx.

Startup and shutdown mirror the web app's lifespan: the same app-role pool (with the same role safety
check) and the same lazily connecting arq client.
"""

from __future__ import annotations

import importlib
from typing import Any

from arq import cron
from arq.connections import RedisSettings

from app import outbox
from app.db import create_app_pool
from app.redisconn import arq_client, sentinel_target
from app.settings import Settings, load_settings, require

# Every 15 s: cheap (an indexed query per municipality) and bounds how long a job lost by Redis waits.
SWEEP_SECONDS = set(range(0, 60, 15))


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or load_settings()
    ctx["settings"] = settings
    ctx["pool"] = await create_app_pool(settings)
    if settings.worker_metrics_port:
        from app.metrics import serve_metrics

        serve_metrics(settings.metrics_host, settings.worker_metrics_port)


async def shutdown(ctx: dict[str, Any]) -> None:
    pool = ctx.get("pool")
    if pool is not None:
        await pool.close()


async def sweep_outbox(ctx: dict[str, Any]) -> int:
    settings: Settings = ctx["settings"]
    return await outbox.sweep(ctx["pool"], ctx["redis"], settings.outbox_retry_after_s, settings.verify_batch_size)


# Each area's jobs: the module has `JOBS` (functions) and optionally `CRON_JOBS` (arq cron objects).
JOB_MODULES = [
    "workers.metrics",
    "workers.verification",
    "workers.payouts",
    "workers.progress",
    "workers.delivery",
]


def _collect(attr: str) -> list[Any]:
    found: list[Any] = []
    for module in JOB_MODULES:
        found.extend(getattr(importlib.import_module(module), attr, []))
    return found


def _redis(url: str) -> dict[str, Any]:
    """arq's connection to one server (RedisSettings: it retries at start while Valkey comes up), or
    through Sentinel a client of our own (app/redisconn.py: arq's Sentinel support sends the Sentinels no
    password), which follows the primary after a failover."""
    if sentinel_target(url) is None:
        return {"redis_settings": RedisSettings.from_dsn(url)}
    return {"redis_pool": arq_client(url, timeout_s=10, failover_retries=10)}


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for arq.Worker."""
    return dict(
        functions=_collect("JOBS"),
        cron_jobs=[
            cron(sweep_outbox, second=SWEEP_SECONDS, run_at_startup=True, unique=True, timeout=60),
            *_collect("CRON_JOBS"),
        ],
        on_startup=startup,
        on_shutdown=shutdown,
        **_redis(require(settings.redis_url, "REDIS_URL")),
        ctx={"settings": settings},
        health_check_interval=30,
        max_jobs=50,
        # Short on purpose: after a worker is killed, arq re-runs its jobs only when their in-progress lock
        # expires, which is the longest function timeout + 10 s (see workers/verification.py).
        job_timeout=60,
        # Jobs are idempotent, so retrying after a crash or a transient error is safe.
        max_tries=5,
        keep_result=3600,
    )

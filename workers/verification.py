"""Verification jobs: check applications against the registry; settle プッシュ型 programs after their
辞退 deadline.

`verify_application` is the job the intake side enqueues (through the outbox, job id
`verify:{code}:{application_id}`); `verify_applications_batch` decides many applications in one
transaction (a few statements for the whole batch instead of per application) and marks all their outbox
rows done with it. Both are idempotent: the decision and the outbox row commit together, and an
application already decided is left alone.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from arq import cron

from app import outbox
from app.registry.push import due_programs, settle_push
from app.registry.verify import verify_applications
from app.tenancy.municipalities import load_field_cipher, municipality_codes
from app.tenancy.transaction import platform_transaction, tenant_transaction

log = logging.getLogger("kyufu.verification")

# Marks the outbox rows of a whole batch done (outbox.mark_done does one row).
MARK_DONE_MANY = """
UPDATE outbox SET done_at = now() WHERE municipality_code = $1 AND job_id = ANY($2::text[]) AND done_at IS NULL
"""


job_id = outbox.verify_job_id


async def verify_application(ctx: dict[str, Any], municipality_code: str, application_id: int) -> str | None:
    """Decide one application; returns its new status (None if it was already decided)."""
    pool: asyncpg.Pool = ctx["pool"]
    async with tenant_transaction(pool, municipality_code) as conn:
        cipher = await load_field_cipher(conn, ctx["settings"].master_key_bytes, municipality_code)
        decisions = await verify_applications(conn, cipher, municipality_code, [application_id])
        await outbox.mark_done(conn, municipality_code, job_id(municipality_code, application_id))
    if decisions:
        log.info(
            "application %s of %s: %s %s",
            application_id,
            municipality_code,
            decisions[0].status,
            ",".join(decisions[0].reasons),
        )
        return decisions[0].status
    return None


async def verify_applications_batch(ctx: dict[str, Any], municipality_code: str, application_ids: list[int]) -> int:
    """Decide many applications in one transaction; returns how many were decided by this run."""
    pool: asyncpg.Pool = ctx["pool"]
    async with tenant_transaction(pool, municipality_code) as conn:
        cipher = await load_field_cipher(conn, ctx["settings"].master_key_bytes, municipality_code)
        decisions = await verify_applications(conn, cipher, municipality_code, list(application_ids))
        await conn.execute(MARK_DONE_MANY, municipality_code, [job_id(municipality_code, i) for i in application_ids])
    log.info("verified %d of %d applications of %s", len(decisions), len(application_ids), municipality_code)
    return len(decisions)


async def settle_due_push_programs(ctx: dict[str, Any]) -> int:
    """Cron: settle every プッシュ型 program of every municipality whose 辞退 deadline has passed."""
    pool: asyncpg.Pool = ctx["pool"]
    async with platform_transaction(pool) as conn:
        codes = await municipality_codes(conn)
    total = 0
    for code in codes:
        async with tenant_transaction(pool, code) as conn:
            programs = await due_programs(conn, code)
        for program_id in programs:
            async with tenant_transaction(pool, code) as conn:
                cipher = await load_field_cipher(conn, ctx["settings"].master_key_bytes, code)
                total += await settle_push(conn, cipher, code, program_id, actor="cron")
    if total:
        log.info("push settlement created %d applications", total)
    return total


JOBS: list = [verify_application, verify_applications_batch]
# Hourly: a deadline passes at midnight (Japan time); settlement is idempotent, so repeats cost a query.
# Timeouts stay short: arq keeps a killed worker's in-progress jobs locked for the LONGEST function timeout
# + 10 s before another worker may run them, so one long timeout would stall every job after a crash.
CRON_JOBS: list = [cron(settle_due_push_programs, minute={5}, unique=True, timeout=120)]

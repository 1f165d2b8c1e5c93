"""Jobs of the payout stage (collected by workers/settings.py).

`release_batch` seals and records an approved batch. It is enqueued only from an outbox row
(`request_release`, in the approver's transaction) and marks that row done in the same transaction as
the release, so a lost or repeated job is harmless: a batch already released is a no-op (the database's
release-once trigger backs this), and a crash before commit re-derives the job and the release adopts
the file it had written (payouts/release.py).
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from app.tenancy.transaction import tenant_transaction
from payouts import pipeline, release
from workers import outbox

log = logging.getLogger("kyufu.jobs.payouts")
JOB_NAME = "release_batch"


def release_job_id(batch_id: int) -> str:
    return f"payouts.release:{batch_id}"


async def request_release(conn: asyncpg.Connection, code: str, batch_id: int, released_by: int) -> None:
    """Inside the caller's tenant_transaction: the release runs after commit, exactly once in effect."""
    await outbox.add(conn, code, JOB_NAME, release_job_id(batch_id), code, batch_id, released_by)


async def release_batch(ctx: dict[str, Any], code: str, batch_id: int, released_by: int) -> str:
    async with tenant_transaction(ctx["pool"], code) as conn:
        try:
            async with conn.transaction():  # savepoint: a refusal still lets us mark the row done
                manifest = await release.release_batch(conn, ctx["settings"], code, batch_id, released_by)
            outcome = f"released {manifest.file_name}"
        except release.BatchAlreadyReleased:
            outcome = "already released"
        except (release.ApprovalMismatch, release.BatchNotApproved, pipeline.BatchNotFound) as exc:
            # Permanent: retrying cannot change the rows; staff see the batch still unreleased.
            log.warning("release of batch %s of %s refused: %s", batch_id, code, type(exc).__name__)
            outcome = f"refused: {type(exc).__name__}"
        await outbox.mark_done(conn, code, release_job_id(batch_id))
    return outcome


JOBS: list = [release_batch]
CRON_JOBS: list = []

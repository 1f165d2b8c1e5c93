"""`python -m devtools.progress_bench --applications 1000000`: how long the 支給状況 figures take
(app/staff/progress.py, the statement the console's /staff/progress page and its CSV run) for one
municipality with N applications, on a scratch embedded PostgreSQL in a temporary directory (removed at
the end; never the test suite's or `make run`'s).

Seeding (not timed): one program, N entitlements and applications submitted over 30 days (70% verified,
10% waiting for 審査, 15% decided by a reviewer, 5% received), and 60% of them paid through 6 batches
with 0.5% returned (振込不能). The bank details are placeholder bytes: the figures never read them.
Timed, as the app role inside tenant_transaction, five runs each (the first warms the cache): counting
(program_progress without a kept count: the statement and the days), the console home's figures
(overview.program_overview) for comparison, and a view from the count kept in Valkey (progress.current
with a fresh count, then program_progress): what /staff/progress does on almost every view. The plan of
the statement is printed with its buffers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
from arq.connections import ArqRedis

from app.migrate import migrate
from app.services import EmbeddedServices
from app.staff import overview, progress
from app.tenancy.municipalities import add_municipality
from app.tenancy.transaction import tenant_transaction

CODE = "131016"
BATCHES = 6


async def seed(owner_url: str, n: int) -> None:
    conn = await asyncpg.connect(owner_url)
    try:
        await add_municipality(conn, b"\x00" * 32, CODE, "ベンチ区")
        async with tenant_transaction(conn, CODE):
            staff = await conn.fetchval(
                "INSERT INTO staff_users (municipality_code, login, display_name, roles, password_hash)"
                " VALUES ($1, 'bench', 'bench', '{}', 'x') RETURNING staff_id",
                CODE,
            )
            snapshot = await conn.fetchval(
                "INSERT INTO registry_snapshots (municipality_code, kind, file_sha256, status)"
                " VALUES ($1, 'residents', repeat('0', 64), 'published') RETURNING snapshot_id",
                CODE,
            )
            program = await conn.fetchval(
                "INSERT INTO programs (municipality_code, name, base_date, unit, amount_yen, payment_mode)"
                " VALUES ($1, 'ベンチ給付金', '2026-01-01', 'household', 100000, 'application') RETURNING program_id",
                CODE,
            )
            await conn.execute(
                "INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no,"
                " head_resident_code, members_counted, amount_yen, rule, status)"
                " SELECT $1, $2, $3, i::text, lpad(i::text, 11, '0'), 1, 100000, 'bench', 'claimed'"
                " FROM generate_series(1, $4) i",
                CODE,
                program,
                snapshot,
                n,
            )
            await conn.execute(
                """
                INSERT INTO applications (municipality_code, entitlement_id, receipt_no, channel, status,
                    applicant_resident_code, bank_code, branch_code, account_type, account_number_enc,
                    holder_kana_enc, submitted_at, decided_at, decided_by)
                SELECT $1, e.entitlement_id, lpad(e.entitlement_id::text, 11, '0'), 'online', s.status,
                       e.head_resident_code, '0001', '001', 1, '\\x00', '\\x00', s.at,
                       CASE WHEN s.status = 'received' THEN NULL
                            WHEN s.by_staff THEN s.at + interval '3 days' ELSE s.at + interval '1 second' END,
                       CASE WHEN s.by_staff THEN $2::bigint END
                FROM entitlements e
                CROSS JOIN LATERAL (SELECT
                    CASE WHEN e.entitlement_id % 20 < 14 THEN 'verified' WHEN e.entitlement_id % 20 < 16
                         THEN 'needs_review' WHEN e.entitlement_id % 20 < 19 THEN 'approved' ELSE 'received' END
                      AS status,
                    e.entitlement_id % 20 BETWEEN 16 AND 18 AS by_staff,
                    timestamptz '2026-11-01 00:00+09' + (e.entitlement_id % 30) * interval '1 day'
                      + (e.entitlement_id % 86400) * interval '1 second' AS at) s
                WHERE e.municipality_code = $1
                """,
                CODE,
                staff,
            )
            for k in range(BATCHES):
                batch = await conn.fetchval(
                    "INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by,"
                    " record_count, total_yen, status, drafted_at) VALUES ($1, $2, $3, $4, 0, 0, 'preparing', $5)"
                    " RETURNING batch_id",
                    CODE,
                    program,
                    dt.date(2026, 12, 1) + dt.timedelta(days=k),
                    staff,
                    dt.datetime(2026, 11, 25, tzinfo=dt.UTC) + dt.timedelta(days=k),
                )
                await conn.execute(
                    "INSERT INTO payments (municipality_code, entitlement_id, application_id, amount_yen, bank_code,"
                    " branch_code, account_type, bank_enc, status, batch_id)"
                    " SELECT a.municipality_code, a.entitlement_id, a.application_id, 100000, '0001', '001', 1,"
                    " '\\x00', 'in_batch', $2 FROM applications a"
                    " WHERE a.municipality_code = $1 AND a.status IN ('verified', 'approved')"
                    " AND a.application_id % 10 < 7 AND a.application_id % $3 = $4",
                    CODE,
                    batch,
                    BATCHES,
                    k,
                )
                await conn.execute(
                    "UPDATE payments SET status = 'paid', paid_on = $3"
                    " WHERE municipality_code = $1 AND batch_id = $2 AND payment_id % 200 <> 0",
                    CODE,
                    batch,
                    dt.date(2026, 12, 1) + dt.timedelta(days=k),
                )
                await conn.execute(
                    "UPDATE payments SET status = 'returned', return_reason = '口座なし'"
                    " WHERE municipality_code = $1 AND batch_id = $2 AND status = 'in_batch'",
                    CODE,
                    batch,
                )
                imp = await conn.fetchval(
                    "INSERT INTO payout_return_imports (municipality_code, batch_id, file_sha256, returned_count,"
                    " paid_count) VALUES ($1, $2::bigint, lpad($2::bigint::text, 64, '0'), 0, 0)"
                    " RETURNING import_id",
                    CODE,
                    batch,
                )
                await conn.execute(
                    "INSERT INTO payment_returns (municipality_code, payment_id, import_id, reason_code, reason)"
                    " SELECT $1, payment_id, $3, '2', '口座なし' FROM payments"
                    " WHERE municipality_code = $1 AND batch_id = $2 AND status = 'returned'",
                    CODE,
                    batch,
                    imp,
                )
                await conn.execute(
                    "UPDATE payout_batches b SET record_count = t.c, total_yen = t.s, status = 'draft'"
                    " FROM (SELECT count(*) AS c, sum(amount_yen) AS s FROM payments"
                    "       WHERE municipality_code = $1 AND batch_id = $2) t"
                    " WHERE b.municipality_code = $1 AND b.batch_id = $2",
                    CODE,
                    batch,
                )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def measure(app_url: str, redis_url: str, runs: int) -> tuple[list[float], list[float], list[float]]:
    conn = await asyncpg.connect(app_url)
    redis = ArqRedis.from_url(redis_url)
    try:
        times, dashboard, kept = [], [], []
        for _ in range(runs):
            start = time.perf_counter()
            async with tenant_transaction(conn, CODE):
                figures = await progress.program_progress(conn, CODE, today=dt.date(2026, 12, 10))
            times.append(time.perf_counter() - start)
            # The console home's figures (app/staff/overview.py) read the same rows: the yardstick.
            start = time.perf_counter()
            async with tenant_transaction(conn, CODE):
                await overview.program_overview(conn, CODE)  # counted live: no Redis given
            dashboard.append(time.perf_counter() - start)
        async with tenant_transaction(conn, CODE):
            await progress.refresh(conn, redis, CODE)
        for _ in range(runs):
            start = time.perf_counter()
            async with tenant_transaction(conn, CODE, readonly=True):
                counted = await progress.current(conn, redis, CODE)
                await progress.program_progress(conn, CODE, counted=counted, today=dt.date(2026, 12, 10))
            kept.append(time.perf_counter() - start)
        [p] = figures
        last = p.days[-1]
        print(
            f"program {p.program_id}: {len(p.days)} days; totals at {last.day}: "
            + ", ".join(f"{progress.LABELS[s]} {last.total[s].n:,}" for s in progress.SERIES)
        )
        async with tenant_transaction(conn, CODE):
            await conn.execute(progress.WORK_MEM)
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + progress.DAILY, CODE)
        print("\n".join(r[0] for r in plan))
        return times, dashboard, kept
    finally:
        await redis.aclose()
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applications", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kyufu-progress-bench-"))
    services = EmbeddedServices(root, durable=False)
    try:
        services.start_postgres()
        services.bootstrap_database()
        services.start_valkey()
        urls = services.urls()
        asyncio.run(migrate(urls["DATABASE_OWNER_URL"]))
        start = time.perf_counter()
        asyncio.run(seed(urls["DATABASE_OWNER_URL"], args.applications))
        print(f"seeded {args.applications:,} applications in {time.perf_counter() - start:.1f} s")
        times, dashboard, kept = asyncio.run(measure(urls["DATABASE_URL"], urls["REDIS_URL"], args.runs))
        for name, values in (
            ("counting 支給状況 (program_progress)", times),
            ("the console home (overview.program_overview)", dashboard),
            ("a 支給状況 view from the kept count", kept),
        ):
            print(
                f"{name} at {args.applications:,} applications: "
                + ", ".join(f"{t * 1000:.0f}" for t in values)
                + f" ms (median {statistics.median(values) * 1000:.0f} ms)"
            )
    finally:
        services.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

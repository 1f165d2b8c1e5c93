"""`kyufu registry bench`: the registry benchmarks, against a scratch server (never the test suite's).

1. import of a synthetic extract (default 1,000,000 residents) vs a bare COPY of the same CSV into an
   unindexed table, in the same run (the import is the whole of import_residents: with the C encoder
   built, its check and encoding on the client and the typed binary COPY (migrations/0012), else the CSV
   COPY with the line rules in the server (0011); then the bulk index builds and the ATTACH);
2. eligibility for that municipality (about 450,000 households), and the no-op re-run;
3. verification throughput with one arq worker process: one job per application vs batched jobs.

Figures are printed as measured. Usage (scratch server):
  KYUFU_DATA_DIR=/tmp/regbench kyufu services up && KYUFU_DATA_DIR=/tmp/regbench kyufu db migrate
  KYUFU_DATA_DIR=/tmp/regbench kyufu registry bench
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import platform
import time
from collections.abc import AsyncIterator
from typing import cast

import asyncpg

BARE_TABLE = "bench_bare_copy"
ENCODER_NOTE = "typed binary if the C encoder accepts the file"


@contextlib.asynccontextmanager
async def connection(pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection, typed as the Connection the domain functions take (asyncpg's pool hands out a
    proxy with the same methods)."""
    async with pool.acquire() as proxy:
        yield cast(asyncpg.Connection, proxy)


def _t() -> float:
    return time.perf_counter()


async def _server_cpu(conn) -> float | None:
    """CPU seconds used so far by the connection's server process (embedded server on this machine only).
    The cores are shared with other benchmarks: wall time grows with their load, CPU time much less, so
    both are printed."""
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu(before: float | None, after: float | None) -> str:
    return "" if before is None or after is None else f" (server CPU {after - before:.2f} s)"


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


async def _bench(args, settings) -> None:
    from app.db import connect_owner, create_app_pool
    from app.progress import progress_bar
    from app.registry import residentcsv
    from app.registry.eligibility import determine_eligibility
    from app.registry.imports import RESIDENT_COLUMNS, import_residents
    from app.registry.programs import create_program, parse_program
    from app.tenancy.municipalities import MunicipalityExists, add_municipality
    from app.tenancy.transaction import tenant_transaction
    from devtools.synthetic import generate

    code = args.municipality
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB RAM, "
        f"Python {platform.python_version()}"
    )
    owner = await connect_owner(settings)
    try:
        try:
            await add_municipality(owner, settings.master_key_bytes, code, "ベンチマーク市")
        except MunicipalityExists:
            pass
    finally:
        await owner.close()
    # Households sized so the extract has about --residents people (mean household size 2.225).
    households = round(args.residents / 2.225)
    if "import" not in args.skip:
        t = _t()
        with progress_bar("合成データの生成（世帯）", households) as bar:
            # A fresh file each run: never a re-import no-op.
            files = generate(households, seed=int(time.time()), progress=bar)
        print(
            f"generated {files.residents} residents in {files.households} households "
            f"({len(files.residents_csv) / 2**20:.1f} MiB CSV) in {_t() - t:.1f} s"
        )

    pool = await create_app_pool(settings, min_size=2, max_size=20, server_settings={"temp_buffers": "256MB"})
    try:
        snapshot_id = None
        if "import" not in args.skip:
            # Bare COPY: same bytes, same server, into an unindexed table of text columns (owner role).
            owner = await connect_owner(settings)
            try:
                await owner.execute(f"DROP TABLE IF EXISTS {BARE_TABLE}")
                cols = ", ".join(f"{c.name} text" for c in RESIDENT_COLUMNS)
                await owner.execute(f"CREATE TABLE {BARE_TABLE} ({cols})")
                c0, t = await _server_cpu(owner), _t()
                with progress_bar("比較用の素の COPY"):
                    await owner.copy_to_table(
                        BARE_TABLE,
                        source=io.BytesIO(files.residents_csv),
                        format="csv",
                        header=True,
                        columns=[c.name for c in RESIDENT_COLUMNS],
                    )
                bare = _t() - t
                bare_cpu = _cpu(c0, await _server_cpu(owner))
                await owner.execute(f"DROP TABLE {BARE_TABLE}")
            finally:
                await owner.close()
            async with connection(pool) as conn:
                await conn.execute("SET statement_timeout = '15min'")
                c0, t = await _server_cpu(conn), _t()
                async with tenant_transaction(conn, code):
                    with progress_bar("住民票の取込") as bar:
                        result = await import_residents(conn, code, files.residents_csv, progress=bar)
                full = _t() - t
                full_cpu = _cpu(c0, await _server_cpu(conn))
            snapshot_id = result.snapshot_id
            print(f"bare COPY into unindexed table: {bare:.2f} s{bare_cpu}")
            print(
                f"kyufu registry import ({result.rows} rows, validation and COPY into the snapshot's partition "
                f"({ENCODER_NOTE if residentcsv.available() else 'CSV, no C encoder'}), "
                "bulk indexes, attach): "
                f"{full:.2f} s{full_cpu}; ratio {full / bare:.2f}  [{_load()}]"
            )

        if "eligibility" not in args.skip:
            async with connection(pool) as conn:
                await conn.execute("SET statement_timeout = '15min'")
                async with tenant_transaction(conn, code):
                    program_id = await create_program(
                        conn,
                        code,
                        parse_program(
                            dict(
                                name=f"ベンチ {time.time()}",
                                base_date=dt.date(2026, 4, 1),
                                unit="household",
                                amount_yen=100000,
                                child_amount_yen=50000,
                                payment_mode="application",
                            )
                        ),
                    )
                c0, t = await _server_cpu(conn), _t()
                async with tenant_transaction(conn, code):
                    with progress_bar("資格判定") as bar:
                        r = await determine_eligibility(conn, code, program_id, snapshot_id, progress=bar)
                first = _t() - t
                c1, t = await _server_cpu(conn), _t()
                async with tenant_transaction(conn, code):
                    with progress_bar("資格判定（再実行）") as bar:
                        again = await determine_eligibility(conn, code, program_id, snapshot_id, progress=bar)
                rerun = _t() - t
                c2 = await _server_cpu(conn)
            print(
                f"eligibility: {r.households} households, {r.people} people, {r.total_yen} yen in {first:.2f} s"
                f"{_cpu(c0, c1)}; no-op re-run {rerun:.2f} s{_cpu(c1, c2)} (no_op={again.no_op})  [{_load()}]"
            )

        if "verify" not in args.skip:
            await _bench_verify(pool, settings, code, args.applications, args.batch_size)
    finally:
        await pool.close()


async def _make_applications(pool, settings, code: str, n: int) -> list[int]:
    """n applications on open entitlements, as intake would write them (holder kana = the head's)."""
    from app.registry.receipts import receipt_key, receipt_number
    from app.tenancy.municipalities import load_field_cipher
    from app.tenancy.transaction import tenant_transaction
    from payouts.kana import to_zengin_kana

    async with tenant_transaction(pool, code) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        rows = await conn.fetch(
            """
            SELECT e.entitlement_id, e.head_resident_code, r.family_kana, r.given_kana
            FROM entitlements e JOIN residents r ON r.municipality_code = e.municipality_code
              AND r.snapshot_id = e.snapshot_id AND r.resident_code = e.head_resident_code
            WHERE e.municipality_code = $1 AND e.status = 'open'
              AND NOT EXISTS (SELECT 1 FROM applications a WHERE a.municipality_code = e.municipality_code
                              AND a.entitlement_id = e.entitlement_id)
            LIMIT $2""",
            code,
            n,
        )
        ids = [
            r[0]
            for r in await conn.fetch(
                "SELECT nextval(pg_get_serial_sequence('applications', 'application_id')) FROM generate_series(1, $1)",
                len(rows),
            )
        ]
        await conn.execute(
            """
            INSERT INTO applications (application_id, municipality_code, entitlement_id, receipt_no, channel,
                applicant_resident_code, bank_code, branch_code, account_type, account_number_enc, holder_kana_enc)
            OVERRIDING SYSTEM VALUE
            SELECT id, $1, e, r, 'online', h, '0001', '001', 1, n, k
            FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bytea[], $6::bytea[], $7::text[])
                AS u(id, e, h, n, k, r)""",
            code,
            ids,
            [r["entitlement_id"] for r in rows],
            [r["head_resident_code"] for r in rows],
            [cipher.encrypt("applications", "account_number", i, f"{i % 10**7:07d}") for i in ids],
            [
                cipher.encrypt(
                    "applications", "holder_kana", i, to_zengin_kana(f"{r['family_kana']} {r['given_kana']}")
                )
                for i, r in zip(ids, rows)
            ],
            [receipt_number(receipt_key(cipher.key), i) for i in ids],
        )
        await conn.execute(
            """
            INSERT INTO outbox (municipality_code, job_name, job_id, args)
            SELECT $1, 'verify_application', 'verify:' || $1 || ':' || id, jsonb_build_array($1, id)
            FROM unnest($2::bigint[]) AS id""",
            code,
            ids,
        )
    return ids


async def _bench_verify(pool, settings, code: str, n: int, batch_size: int) -> None:
    """One in-process arq worker (burst mode), the worker settings `kyufu worker` uses."""
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker

    from app.progress import progress_bar
    from workers.settings import worker_settings

    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        for label in ("single", "batched"):
            ids = await _make_applications(pool, settings, code, n)
            if label == "single":
                for i in ids:
                    await redis.enqueue_job("verify_application", code, i, _job_id=f"verify:{code}:{i}")
            else:
                for k in range(0, len(ids), batch_size):
                    await redis.enqueue_job("verify_applications_batch", code, ids[k : k + batch_size])
            kwargs = worker_settings(settings)
            kwargs.update(burst=True, cron_jobs=[], poll_delay=0.05, handle_signals=False)
            worker = Worker(**kwargs)
            t = _t()
            with progress_bar(f"審査 ({label}, {len(ids)} 件)"):
                await worker.main()
            elapsed = _t() - t
            await worker.close()
            async with connection(pool) as conn:
                from app.tenancy.transaction import tenant_transaction

                async with tenant_transaction(conn, code):
                    decided = await conn.fetchval(
                        "SELECT count(*) FROM applications"
                        " WHERE application_id = ANY($1::bigint[]) AND status <> 'received'",
                        ids,
                    )
            extra = f", {batch_size} per job" if label == "batched" else ""
            print(
                f"verification ({label}{extra}): {decided}/{len(ids)} applications in {elapsed:.2f} s = "
                f"{decided / elapsed:.0f} applications/s (one worker process, max_jobs={kwargs['max_jobs']})"
            )
    finally:
        await redis.aclose()


def run_bench(args, settings) -> int:
    import logging

    # Per-job log lines would dominate the output (and the timing) of thousands of jobs.
    for name in ("arq", "kyufu.verification"):
        logging.getLogger(name).setLevel(logging.WARNING)
    asyncio.run(_bench(args, settings))
    return 0

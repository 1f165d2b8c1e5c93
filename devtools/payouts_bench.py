"""`kyufu payouts bench --payments N`: the payout stage against its floor, on real PostgreSQL.

Seeding (not timed): a fresh scratch municipality, N entitlements and N approved payments with
AES-GCM-encrypted bank details (COPY, ciphertexts made in one pass), split into batches of at most
999,999 records (合計件数 is N(6), so a bigger payout is several files), each approved with the SHA-256
of its rendered file — what drafting and approval do.

Timed, per batch, summed:
* floor: `COPY (pipeline.STAGE_QUERY) TO STDOUT` — the stage's own read, to a
  sink that drops the bytes; run before and after the stage, the smaller sum counts (the stricter ratio);
* stage: payouts.release.render_and_seal — read, decrypt, validate, format, hash, age-encrypt, write
  and fsync the .age file and the signed manifest.
Marking the batch released (payout_batches + payout_releases; since migration 0009 no payment row is
rewritten) is measured and printed apart (mark_s): it is database write work, not the file stage.
CPU seconds of the stage per process (main incl. the sealer thread, the pool's workers, the PostgreSQL
backend) and the load average are printed too: on a shared machine wall time says how busy it was as
much as how fast the stage is.

Run it against a scratch embedded server, never the test suite's:
    KYUFU_DATA_DIR=/tmp/paybench kyufu services up && KYUFU_DATA_DIR=/tmp/paybench kyufu db migrate
    KYUFU_DATA_DIR=/tmp/paybench kyufu payouts bench --payments 1000000
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import math
import os
import random
import secrets
import time
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.db import connect_owner, fetch_always
from app.progress import progress_bar
from app.tenancy.codes import check_digit
from app.tenancy.municipalities import add_municipality, load_field_cipher
from app.tenancy.transaction import tenant_transaction
from payouts import pipeline, release, settings_store, zengin

MAX_BATCH = zengin.MAX_COUNT
SEED_CHUNK = 50_000

_ROWS = "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝ"
_VOICEABLE = "ｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾊﾋﾌﾍﾎ"


def _syllables(rng: random.Random, n: int) -> str:
    out = []
    for _ in range(n):
        c = rng.choice(_ROWS)
        out.append(c + "ﾞ" if c in _VOICEABLE and rng.random() < 0.2 else c)
    return "".join(out)


def synthetic_name(rng: random.Random) -> str:
    """A valid Zengin party name of realistic length (family, space, given)."""
    return _syllables(rng, rng.randint(2, 5)) + " " + _syllables(rng, rng.randint(2, 4))


def _encrypt_row(aead: AESGCM, header: bytes, aad_prefix: bytes, payment_id: int, plaintext: bytes) -> bytes:
    nonce = os.urandom(12)
    return header + nonce + aead.encrypt(nonce, plaintext, aad_prefix + str(payment_id).encode())


def scratch_code() -> str:
    body = f"{secrets.randbelow(47) + 1:02d}{secrets.randbelow(900) + 100:03d}"
    return body + check_digit(body)


async def seed(
    conn: asyncpg.Connection, settings, code: str, n: int, *, seed_value: int = 1, progress=None
) -> list[int]:
    """Seed N approved payments for `code` in batches of ≤ 999,999; return the batch ids.

    `conn` is an owner connection outside any transaction (each step commits on its own)."""
    recipient = _bench_recipient(settings)
    async with tenant_transaction(conn, code):
        await settings_store.put_bank_settings(
            conn,
            code,
            settings_store.StoredBankSettings(
                bank=zengin.BankSettings(
                    requester_code="1234567890",
                    requester_name_kana="ｷﾕｳﾌｼ ｶｲｹｲｶﾝﾘｼﾔ",
                    bank_code="0001",
                    branch_code="001",
                    account_type=1,
                    account_number="1234567",
                    separator="crlf",
                ),
                age_recipients=(recipient,),
            ),
        )
        # The rows drafted_by/approved_by point at. The bench measures the stage, not the console: no roles
        # (a role needs a grant confirmed by a second admin, migration 0014) and no credentials.
        drafter = await conn.fetchval(
            "INSERT INTO staff_users (municipality_code, login, display_name, roles, password_hash)"
            " VALUES ($1, 'bench-drafter', 'bench', '{}', 'x') RETURNING staff_id",
            code,
        )
        approver = await conn.fetchval(
            "INSERT INTO staff_users (municipality_code, login, display_name, roles, password_hash)"
            " VALUES ($1, 'bench-approver', 'bench', '{}', 'x') RETURNING staff_id",
            code,
        )
        snapshot = await conn.fetchval(
            "INSERT INTO registry_snapshots (municipality_code, kind, file_sha256, status)"
            " VALUES ($1, 'residents', $2, 'published') RETURNING snapshot_id",
            code,
            secrets.token_hex(32),
        )
        program = await conn.fetchval(
            "INSERT INTO programs (municipality_code, name, base_date, unit, amount_yen, payment_mode)"
            " VALUES ($1, 'ベンチ給付金', '2026-01-01', 'household', 100000, 'application') RETURNING program_id",
            code,
        )
        # Entitlements of 200,000 yen: above every seeded payment (10,000-199,999; no payment may exceed its
        # entitlement, migration 0018).
        first_ent, last_ent = await fetch_always(
            conn,
            "WITH e AS (INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no,"
            " head_resident_code, members_counted, amount_yen, rule)"
            " SELECT $1, $2, $3, i::text, lpad(i::text, 11, '0'), 1, 200000, 'bench' FROM generate_series(1, $4) i"
            " RETURNING entitlement_id) SELECT min(entitlement_id), max(entitlement_id) FROM e",
            code,
            program,
            snapshot,
            n,
        )
        if last_ent - first_ent + 1 != n:
            raise RuntimeError("entitlement ids are not contiguous; seed into an idle scratch database")
        first_pid = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('payments', 'payment_id'))")
        await conn.execute("SELECT setval(pg_get_serial_sequence('payments', 'payment_id'), $1)", first_pid + n)
        per_batch = math.ceil(n / math.ceil(n / MAX_BATCH))
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)

    rng = random.Random(seed_value)
    aead = AESGCM(cipher.key)
    header = bytes([1]) + cipher.key_version.to_bytes(4, "big")
    aad_bank = f"{code}|payments|bank|".encode()  # payouts.payments.seal_bank, in one pass
    banks = ["0001", "0005", "0009", "0010", "0017", "0033", "0036", "9900"]

    async def rows():
        for lo in range(0, n, SEED_CHUNK):
            lines = []
            for i in range(lo, min(n, lo + SEED_CHUNK)):
                pid = first_pid + i
                bank_details = f"{rng.randrange(10_000_000):07d}\x00{synthetic_name(rng)}".encode()
                lines.append(
                    f"{code}\t{pid}\t{first_ent + i}\t{rng.randrange(10_000, 200_000)}\t{rng.choice(banks)}\t"
                    f"{rng.randrange(1000):03d}\t{1 if rng.random() < 0.9 else 2}\t"
                    f"\\\\x{_encrypt_row(aead, header, aad_bank, pid, bank_details).hex()}\tin_batch\t"
                    f"{i // per_batch}\n"
                )
            if progress is not None:  # app.progress bar: (payments encrypted so far, N)
                progress(min(n, lo + SEED_CHUNK), n)
            yield "".join(lines).encode()

    columns = (
        "municipality_code, payment_id, entitlement_id, amount_yen, bank_code, branch_code, account_type,"
        " bank_enc, status, batch_id"
    )
    async with tenant_transaction(conn, code):
        # COPY FROM is refused on a table with row-level security: stage in a temp table (its batch_id column
        # holds the batch's number), then one INSERT per batch. Payments join a batch only while it is
        # 'preparing', and one batch of a program prepares at a time (migrations 0017, 0018), as in the worker.
        await conn.execute(f"CREATE TEMP TABLE bench_payments ON COMMIT DROP AS SELECT {columns} FROM payments LIMIT 0")
        await conn.copy_to_table("bench_payments", source=rows(), format="text")
        batches = []
        for k in range(math.ceil(n / per_batch)):
            batch_id = await conn.fetchval(
                "INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by,"
                " record_count, total_yen, status) VALUES ($1, $2, $3, $4, 0, 0, 'preparing') RETURNING batch_id",
                code,
                program,
                dt.date(2026, 12, 1),
                drafter,
            )
            staged = columns.replace("batch_id", "$1::bigint")
            await conn.execute(
                f"INSERT INTO payments ({columns}) OVERRIDING SYSTEM VALUE"
                f" SELECT {staged} FROM bench_payments WHERE batch_id = $2",
                batch_id,
                k,
            )
            await conn.execute(
                "UPDATE payout_batches SET status = 'draft' WHERE municipality_code = $1 AND batch_id = $2",
                code,
                batch_id,
            )
            batches.append(batch_id)
        await conn.execute(
            "UPDATE payout_batches b SET record_count = t.c, total_yen = t.s FROM"
            " (SELECT batch_id, count(*) AS c, sum(amount_yen) AS s FROM payments WHERE municipality_code = $1"
            "  AND batch_id = ANY($2::bigint[]) GROUP BY batch_id) t"
            " WHERE b.municipality_code = $1 AND b.batch_id = t.batch_id",
            code,
            batches,
        )
    await conn.execute("ANALYZE payments")
    # Approval: the SHA-256 of each batch's rendered file (this is drafting's work, not the stage's).
    for batch_id in batches:
        async with tenant_transaction(conn, code):
            rendered = await pipeline.render_in_transaction(conn, settings.master_key_bytes, code, batch_id)
            await conn.execute(
                "UPDATE payout_batches SET status = 'approved', approved_by = $3, approved_at = now(),"
                " approved_sha256 = $4, plaintext_sha256 = $4 WHERE municipality_code = $1 AND batch_id = $2",
                code,
                batch_id,
                approver,
                rendered.sha256,
            )
    return batches


def _bench_recipient(settings) -> str:
    from payouts.bank import write_identity_file

    path = Path(settings.data_dir) / "bench-bank-identity.txt"
    if not path.exists():
        return write_identity_file(path)
    return next(line.split(": ", 1)[1] for line in path.read_text().splitlines() if line.startswith("# public key: "))


async def floor(conn: asyncpg.Connection, code: str, batch_id: int) -> float:
    """One timed COPY of exactly the stage's read, in the same kind of transaction."""
    received = 0

    async def drop(data: bytes) -> None:
        nonlocal received
        received += len(data)

    async with tenant_transaction(conn, code, isolation="repeatable_read", readonly=True):
        await conn.execute(pipeline.HEX_BYTEA)
        started = time.perf_counter()
        await conn.copy_from_query(pipeline.STAGE_QUERY, code, batch_id, output=drop)
        return time.perf_counter() - started


def _reset_peak_rss() -> None:
    # Linux: writing 5 resets VmHWM, so seeding's memory does not count as the stage's.
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _hwm_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run(settings, n: int, *, parallel: bool | None = None) -> dict:
    conn = await connect_owner(settings)
    try:
        code = scratch_code()
        while await conn.fetchval("SELECT 1 FROM municipalities WHERE code = $1", code):
            code = scratch_code()
        await add_municipality(conn, settings.master_key_bytes, code, "ベンチ市")
        t0 = time.perf_counter()
        with progress_bar("シード（計測外）: 支払の暗号化と投入") as bar:
            batches = await seed(conn, settings, code, n, progress=bar)
        seed_s = time.perf_counter() - t0
        pipeline.warm_pool()

        backend = await conn.fetchval("SELECT pg_backend_pid()")
        load_before = os.getloadavg()
        backend_cpu = _cpu_s(backend)
        floors_before = [await floor(conn, code, b) for b in batches]
        floor_backend_cpu = _cpu_s(backend) - backend_cpu
        _reset_peak_rss()
        stage_s = mark_s = 0.0
        sizes = 0
        workers = _pool_pids()
        cpu = {"main": 0.0, "workers": 0.0, "postgres": 0.0}
        for batch_id in batches:
            async with tenant_transaction(conn, code):
                batch = await pipeline.load_batch(conn, code, batch_id, for_update=True)
                before = (time.process_time(), sum(map(_cpu_s, workers)), _cpu_s(backend))
                started = time.perf_counter()
                with progress_bar(f"ステージ: バッチ {batch_id}（件）", batch.record_count) as bar:
                    sealed = await release.render_and_seal(conn, settings, code, batch, parallel=parallel, progress=bar)
                stage_s += time.perf_counter() - started
                cpu["main"] += time.process_time() - before[0]
                cpu["workers"] += sum(map(_cpu_s, workers)) - before[1]
                cpu["postgres"] += _cpu_s(backend) - before[2]
                sizes += sealed.age_path.stat().st_size
                started = time.perf_counter()
                assert batch.approved_by is not None  # an approved batch (payout_batches_approved_has_hash)
                await release.mark_released(conn, code, batch, sealed, batch.approved_by)
            mark_s += time.perf_counter() - started
        main_peak = _hwm_mb()
        worker_peaks = [_hwm_mb(pid) for pid in _pool_pids()]
        floors_after = [await floor(conn, code, b) for b in batches]
        floor_s = min(sum(floors_before), sum(floors_after))
        load_after = os.getloadavg()
    finally:
        await conn.close()
    return {
        "payments": n,
        "batches": len(batches),
        "render": "threads" if pipeline.uses_threads() else "processes",
        "municipality": code,
        "seed_s": seed_s,
        "floor_s": floor_s,
        "floor_before_s": sum(floors_before),
        "floor_after_s": sum(floors_after),
        "stage_s": stage_s,
        "mark_s": mark_s,
        "ciphertext_mb": sizes / 1e6,
        "main_peak_rss_mb": main_peak,
        "worker_peak_rss_mb": worker_peaks,
        "peak_rss_mb": main_peak + sum(worker_peaks),
        "floor_cpu_postgres_s": floor_backend_cpu,
        "stage_cpu_main_s": cpu["main"],
        "stage_cpu_workers_s": cpu["workers"],
        "stage_cpu_postgres_s": cpu["postgres"],
        "loadavg_before": "/".join(f"{v:.2f}" for v in load_before),
        "loadavg_after": "/".join(f"{v:.2f}" for v in load_after),
    }


def _cpu_s(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process so far (Linux /proc): contention on a shared machine
    inflates wall time, not CPU time, so the profile reports both."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pool_pids() -> list[int]:
    """The pool's worker processes; none when rendering runs on threads of this process (the C loop),
    whose CPU time is then part of stage_cpu_main_s."""
    pool = pipeline._pool
    if not isinstance(pool, concurrent.futures.ProcessPoolExecutor):
        return []
    return list(pool._processes)


REPORT_KEYS = (
    "municipality",
    "batches",
    "render",
    "seed_s",
    "floor_before_s",
    "floor_after_s",
    "mark_s",
    "ciphertext_mb",
    "main_peak_rss_mb",
    "worker_peak_rss_mb",
    "floor_cpu_postgres_s",
    "stage_cpu_main_s",
    "stage_cpu_workers_s",
    "stage_cpu_postgres_s",
    "loadavg_before",
    "loadavg_after",
)


def report_lines(r: dict) -> list[str]:
    """What `kyufu payouts bench` prints: key=value lines, then final_line."""
    lines = []
    for key in REPORT_KEYS:
        value = r[key]
        if isinstance(value, float):
            value = f"{value:.3f}"
        elif isinstance(value, list):
            value = ",".join(f"{v:.0f}" for v in value)
        lines.append(f"{key}={value}")
    return [*lines, final_line(r)]


def final_line(r: dict) -> str:
    return (
        f"payments={r['payments']} floor_s={r['floor_s']:.3f} stage_s={r['stage_s']:.3f} "
        f"ratio={r['stage_s'] / r['floor_s']:.2f} payments_per_s={r['payments'] / r['stage_s']:.0f} "
        f"peak_rss_mb={r['peak_rss_mb']:.0f}"
    )

"""Load test of the submit path, with a hello-world baseline under the same generator and concurrency.

    .venv/bin/python loadtests/submit_bench.py [--duration 10] [--connections 64] [--threads 2]
                                               [--workers 2] [--letters 200000]

Loopback only and bounded (one run of --duration seconds each). It starts its own embedded PostgreSQL
(durable: fsync on) and Valkey in a temporary directory, migrates, registers a municipality and seeds
--letters households with letters, then runs kyufu (`uvicorn --workers N`) and the hello-world app in
turn under Debian's `wrk` with loadtests/submit.lua (every request its own letter and Idempotency-Key).
It prints accepted applications/s, p50/p99, the ratio to hello-world, and a consistency check: the
applications in the database equal the 201 receipts, with no entitlement claimed twice.

Both servers get the same script, so the same requests and the same per-request work in wrk. Rates are
over the submission window the script measures (first request sent to last answer received) and
p50/p99 are of the submissions alone, not of the /healthz requests that drain the connections.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.db import fetch_always  # noqa: E402
from app.migrate import migrate  # noqa: E402
from app.services import EmbeddedServices, _free_port, _port_open  # noqa: E402
from app.tenancy.municipalities import add_municipality  # noqa: E402
from app.tenancy.transaction import tenant_transaction  # noqa: E402

CHECK = """
SELECT count(*) AS applications, count(DISTINCT entitlement_id) AS entitlements
FROM applications WHERE municipality_code = $1
"""


async def seed(urls: dict, master_key: bytes, n: int, letters_file: Path) -> str:
    import asyncpg

    sys.path.insert(0, str(ROOT))
    from tests.intake.helpers import make_letters

    code = "131016"
    owner = await asyncpg.connect(urls["DATABASE_OWNER_URL"])
    try:
        await add_municipality(owner, master_key, code, "負荷試験市")
    finally:
        await owner.close()
    conn = await asyncpg.connect(urls["DATABASE_URL"])
    try:
        with letters_file.open("w") as fh:
            program = None
            for start in range(0, n, 20000):
                made = await make_letters(conn, master_key, code, min(20000, n - start), program_id=program)
                program = made[0].program_id
                fh.writelines(f"{m.code}\t{m.access_code}\t{m.pin}\n" for m in made)
    finally:
        await conn.close()
    # Fresh statistics, as autovacuum would have them a minute after a registry import; without them
    # the planner reads every letter per sign-in, which measures the seeding, not the submit path.
    owner = await asyncpg.connect(urls["DATABASE_OWNER_URL"])
    try:
        await owner.execute("ANALYZE letters; ANALYZE entitlements")
    finally:
        await owner.close()
    return code


def wrk(url: str, script: Path, args, env: dict) -> dict:
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def serve(app: str, port: int, workers: int, env: dict, factory: bool) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]
    if factory:
        cmd.append("--factory")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while not _port_open(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{app} did not start")
        time.sleep(0.1)
    time.sleep(1.0)  # let every worker process finish its startup
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


DRAIN_S = 2


def report(name: str, r: dict) -> float:
    rate = r["created"] / (r["window_us"] / 1e6)
    print(
        f"{name:12s} {rate:9.0f} 201/s   p50 {r['p50_us'] / 1000:6.1f} ms   p99 {r['p99_us'] / 1000:6.1f} ms   "
        f"submissions {r['submissions']} in {r['window_us'] / 1e6:.2f} s  201 {r['created']}  409 {r['duplicate']}  "
        f"other status (e.g. 503 shed) {r['other']}  socket errors {r['errors']}"
    )
    return rate


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--letters", type=int, default=200_000)
    p.add_argument("--no-fsync", action="store_true", help="PostgreSQL with fsync off (isolates disk latency)")
    args = p.parse_args()

    root = Path(tempfile.mkdtemp(prefix="kyufu-load-"))
    svc = EmbeddedServices(root, durable=not args.no_fsync)
    procs: list[subprocess.Popen] = []
    try:
        urls = svc.up()
        asyncio.run(migrate(urls["DATABASE_OWNER_URL"]))
        master_b64 = base64.b64encode(secrets.token_bytes(32)).decode()
        letters_file = root / "letters.tsv"
        t0 = time.monotonic()
        code = asyncio.run(seed(urls, base64.b64decode(master_b64), args.letters, letters_file))
        print(f"seeded {args.letters} letters in {time.monotonic() - t0:.1f}s")
        env = dict(
            os.environ,
            KYUFU_ENV="test",
            KYUFU_DATA_DIR=str(root),
            DATABASE_URL=urls["DATABASE_URL"],
            DATABASE_OWNER_URL=urls["DATABASE_OWNER_URL"],
            REDIS_URL=urls["REDIS_URL"],
            KYUFU_MASTER_KEY=master_b64,
            KYUFU_SESSION_SECRET=base64.b64encode(secrets.token_bytes(32)).decode(),
            KYUFU_DB_POOL_MIN="4",
            KYUFU_DB_POOL_MAX="16",
            LETTERS=str(letters_file),
            WRK_THREADS=str(args.threads),
            SUBMIT_SECONDS=str(args.duration - DRAIN_S),
        )
        print(
            f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s; uvicorn --workers {args.workers}; "
            f"{os.cpu_count()} CPUs"
        )

        port = _free_port()
        procs.append(serve("app.main:app_factory", port, args.workers, env, factory=True))
        submit = wrk(f"http://127.0.0.1:{port}", ROOT / "loadtests" / "submit.lua", args, env)
        stop(procs.pop())

        hport = _free_port()
        procs.append(serve("loadtests.hello:app", hport, args.workers, env, factory=False))
        hello = wrk(f"http://127.0.0.1:{hport}", ROOT / "loadtests" / "submit.lua", args, env)
        stop(procs.pop())

        rate = report("submit", submit)
        base = report("hello-world", hello)
        print(f"ratio submit/hello-world: {rate / base:.2f}")

        async def check():
            import asyncpg

            conn = await asyncpg.connect(urls["DATABASE_URL"])
            try:
                async with tenant_transaction(conn, code, readonly=True) as c:
                    return dict(await fetch_always(c, CHECK, code))
            finally:
                await conn.close()

        db = asyncio.run(check())
        ok = db["applications"] == submit["created"] and db["entitlements"] == db["applications"]
        print(
            f"consistency: applications in DB {db['applications']}, 201 receipts {submit['created']}, "
            f"distinct entitlements {db['entitlements']} -> {'OK' if ok else 'MISMATCH'}"
        )
        return 0 if ok else 1
    finally:
        for proc in procs:
            stop(proc)
        svc.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

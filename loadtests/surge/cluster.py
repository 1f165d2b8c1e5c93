"""The system under test for the surge: embedded PostgreSQL + Valkey in a private directory, one
municipality with letters and reviewers, kyufu under `uvicorn --workers N` and one verification worker.

Loopback only. Seeding reuses loadtests/submit_bench.py (same letters, same households), so the wrk
bench and the surge measure the same data. The app runs with the shipped settings (pool size, admission
limit, Retry-After) unless the caller overrides one; the report records which.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.migrate import migrate  # noqa: E402
from app.services import EmbeddedServices, _free_port, _port_open  # noqa: E402
from loadtests.submit_bench import seed, stop  # noqa: E402

# Reviewers of the seeded municipality. The first also administers (a small town's usual set-up), so
# it needs a TOTP code at sign-in: the scenario exercises both sign-in paths.
STAFF = [("surge-admin", ["reviewer", "admin"]), ("surge-rev1", ["reviewer"]), ("surge-rev2", ["reviewer"])]


async def seed_staff(
    urls: dict,
    master_key: bytes,
    code: str,
    staff: list[tuple[str, list[str]]] = STAFF,
    *,
    second_admin: str = "surge-admin2",
    operator: str = "surge-seed",
) -> list[dict]:
    """Ready accounts for `staff` ((login, roles); the first with the admin role is the first admin) and
    their credentials: [{municipality, login, password, totp_secret}] in the order of `staff`."""
    import asyncpg

    from app.staff.actors import Operator
    from app.tenancy.municipalities import load_field_cipher
    from app.tenancy.transaction import tenant_transaction
    from devtools.demo_staff import Person, provision

    conn = await asyncpg.connect(urls["DATABASE_URL"])
    # Through the real enrolment and grant path (devtools/demo_staff.py): the first admin and a second admin, who
    # only confirms and is not one of the scenario's users, are bootstrapped; the others are created by
    # one admin and confirmed by the other (an approver by the second, so that no drafter shares hands with it).
    people = {login: Person(login, login, tuple(roles), secrets.token_urlsafe(12)) for login, roles in staff}
    first = next(login for login, roles in staff if "admin" in roles)
    admins = (people[first], Person(second_admin, second_admin, ("admin",), secrets.token_urlsafe(12)))
    try:
        async with tenant_transaction(conn, code) as tx:
            cipher = await load_field_cipher(tx, master_key, code)
            totp = await provision(
                tx, cipher, code, Operator(operator), admins, [p for login, p in people.items() if login != first]
            )
        out = [
            {"municipality": code, "login": login, "password": people[login].password, "totp_secret": totp[login]}
            for login, _roles in staff
        ]
    finally:
        await conn.close()
    return out


async def settle(urls: dict) -> None:
    """Do now what the seed would otherwise trigger during the first measured step: autovacuum of the
    freshly loaded tables and the checkpoint after the bulk load. (Before this and the warm-up run, a
    first step at 10 journeys/s had p99 1.9 s where the same rate later in the run had 78 ms.)"""
    import asyncpg

    owner = await asyncpg.connect(urls["DATABASE_OWNER_URL"])
    try:
        await owner.execute("VACUUM (ANALYZE) residents, entitlements, letters, staff_users")
    finally:
        await owner.close()
    admin = await asyncpg.connect(urls["DATABASE_ADMIN_URL"])  # CHECKPOINT needs the superuser
    try:
        await admin.execute("CHECKPOINT")
    finally:
        await admin.close()


class Cluster:
    """Everything lives under `root` (a temp dir); `down()` stops the processes and the servers."""

    def __init__(
        self, root: Path, *, web_workers: int = 2, durable: bool = True, overrides: dict[str, str] | None = None
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.services = EmbeddedServices(self.root / "services", durable=durable)
        self.web_workers = web_workers
        self.overrides = overrides or {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.port = _free_port()
        self.worker_metrics_port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.letters_file = self.root / "letters.tsv"
        self.staff_file = self.root / "staff.json"
        self.code = ""

    def boot(self) -> None:
        """Start the servers and migrate; make the master key and the environment every process of the
        cluster (app, worker, `kyufu` commands) runs with. No municipality yet."""
        self.urls = self.services.up()
        asyncio.run(migrate(self.urls["DATABASE_OWNER_URL"]))
        master_b64 = base64.b64encode(secrets.token_bytes(32)).decode()
        self.master_key = base64.b64decode(master_b64)
        self.env = dict(
            os.environ,
            KYUFU_ENV="test",
            KYUFU_DATA_DIR=str(self.root / "data"),
            DATABASE_URL=self.urls["DATABASE_URL"],
            DATABASE_OWNER_URL=self.urls["DATABASE_OWNER_URL"],
            REDIS_URL=self.urls["REDIS_URL"],
            KYUFU_MASTER_KEY=master_b64,
            KYUFU_SESSION_SECRET=base64.b64encode(secrets.token_bytes(32)).decode(),
            KYUFU_OUTBOX_DIR=str(self.root / "outbox"),
            KYUFU_WORKER_METRICS_PORT=str(self.worker_metrics_port),
            **self.overrides,
        )

    def setup(self, letters: int) -> float:
        """Start the servers, migrate, seed; return the seconds it took."""
        t0 = time.monotonic()
        self.boot()
        self.code = asyncio.run(seed(self.urls, self.master_key, letters, self.letters_file))
        staff = asyncio.run(seed_staff(self.urls, self.master_key, self.code))
        self.staff_file.write_text(json.dumps(staff))
        asyncio.run(settle(self.urls))
        return time.monotonic() - t0

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")
        # Own session: stopping it never signals the caller, and uvicorn's --workers children follow it.
        proc = subprocess.Popen(
            cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs[name] = proc
        return proc

    def start_app(self) -> None:
        proc = self._spawn(
            "app",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app_factory",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.web_workers),
                "--log-level",
                "warning",
                "--no-access-log",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
            ],
        )
        deadline = time.monotonic() + 30
        while not _port_open(self.port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("app did not start:\n" + self.log_tail("app"))
            time.sleep(0.1)
        time.sleep(1.0)  # every worker process finishes its startup (pool, Redis) before the first user

    def start_worker(self) -> None:
        proc = self._spawn("worker", [sys.executable, "-m", "app.cli", "worker"])
        deadline = time.monotonic() + 30
        while not _port_open(self.worker_metrics_port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("worker did not start:\n" + self.log_tail("worker"))
            time.sleep(0.1)

    def log_tail(self, name: str, chars: int = 2000) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def tracebacks(self) -> dict[str, dict[str, int]]:
        """Exceptions with a traceback in the app and worker logs (a 500 or a crashed job leaves one),
        counted by exception class: the class only, as a message may quote data."""
        out: dict[str, dict[str, int]] = {}
        for name in ("app", "worker"):
            path = self.root / f"{name}.log"
            found: dict[str, int] = {}
            in_tb = False
            for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
                if line.startswith("Traceback"):
                    in_tb = True
                elif in_tb and line and not line[0].isspace():
                    cls = line.split(":", 1)[0].strip()
                    found[cls] = found.get(cls, 0) + 1
                    in_tb = False
            out[name] = found
        return out

    def down(self, *, remove: bool = True) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                stop(proc)
        self.procs.clear()
        self.services.down()
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

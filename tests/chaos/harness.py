"""A private cluster for fault injection: embedded PostgreSQL + Valkey in a temp dir (never the suite's
shared servers) and `python -m app.cli serve` / `worker` as real subprocesses that can be SIGKILLed and
restarted. Loopback only."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from app.migrate import migrate
from app.services import EmbeddedServices, _free_port
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CODE = "131016"  # the municipality of every scenario (tests/chaos/conftest.py)


class Cluster:
    def __init__(self, *, outbox_retry_after_s: int = 2) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="kyufu-chaos-"))
        self.services = EmbeddedServices(self.root / "services", durable=False)
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.procs: dict[str, subprocess.Popen] = {}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.retry_after_s = outbox_retry_after_s

    def start(self) -> Cluster:
        self.services.up()
        urls = self.services.urls()
        asyncio.run(migrate(urls["DATABASE_OWNER_URL"]))
        self.env = dict(os.environ)
        self.env.update(
            KYUFU_ENV="test",
            KYUFU_DATA_DIR=str(self.root / "data"),
            DATABASE_URL=urls["DATABASE_URL"],
            DATABASE_OWNER_URL=urls["DATABASE_OWNER_URL"],
            REDIS_URL=urls["REDIS_URL"],
            KYUFU_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
            KYUFU_SESSION_SECRET=base64.b64encode(secrets.token_bytes(32)).decode(),
            KYUFU_OUTBOX_DIR=str(self.root / "outbox"),
            KYUFU_OUTBOX_RETRY_AFTER_S=str(self.retry_after_s),
            KYUFU_PORT=str(self.port),
        )
        self.settings = Settings(
            **{k: v for k, v in self.env.items() if k.startswith(("KYUFU_", "DATABASE_", "REDIS_"))}
        )
        return self

    # ---- processes -------------------------------------------------------------------------------

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()  # the child has its own descriptor
        self.procs[name] = proc
        return proc

    def run_cli(self, name: str, *args: str, timeout: float = 120) -> tuple[int, str]:
        """Run `python -m app.cli ARGS` to the end; its exit code and output (kept in logs/NAME.log)."""
        proc = self.spawn(name, *args)
        try:
            proc.wait(timeout=timeout)
        finally:
            self.stop(name)
        return proc.returncode, self.log_tail(name, 20_000)

    @property
    def outbox(self) -> Path:
        """The municipality's outbox directory (payouts.release.outbox_dir)."""
        return Path(self.env["KYUFU_OUTBOX_DIR"]) / CODE

    def outbox_files(self) -> list[str]:
        """Every name in the outbox directory, temp files (".name.XXXX.tmp") included."""
        return sorted(p.name for p in self.outbox.iterdir()) if self.outbox.exists() else []

    def start_app(self) -> None:
        self.spawn("app", "serve", "--port", str(self.port))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("app did not start:\n" + (self.logs / "app.log").read_text()[-2000:])

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def start_worker(self) -> None:
        self.spawn("worker", "worker")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    # ---- PostgreSQL ------------------------------------------------------------------------------

    async def commits_survive_a_crash(self) -> None:
        """The cluster runs with synchronous_commit off (EmbeddedServices durable=False): a commit is
        acknowledged before its WAL is written, so an immediate stop could lose a receipt the client was
        given, which production (synchronous_commit on) never does. Turn it on; fsync stays off, which
        only matters if the machine, not PostgreSQL, crashes."""
        conn = await asyncpg.connect(self.services.urls()["DATABASE_ADMIN_URL"])
        try:
            await conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    def stop_postgres(self, mode: str = "immediate") -> None:
        """`pg_ctl stop -m immediate` is a PostgreSQL crash (every backend quits at once, crash recovery
        at the next start); `fast` is an operator's restart (sessions terminated, clean checkpoint)."""
        self.services.stop_postgres(mode)
        if self.services.status()["postgres"]:
            raise RuntimeError("PostgreSQL is still running")

    def start_postgres(self) -> None:
        self.services.start_postgres()  # the same data directory and port (services.json)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        self.services.destroy()
        shutil.rmtree(self.root, ignore_errors=True)

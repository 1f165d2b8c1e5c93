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

import httpx

from app.migrate import migrate
from app.services import EmbeddedServices, _free_port
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


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

    def start(self) -> "Cluster":
        self.services.up()
        urls = self.services.urls()
        asyncio.run(migrate(urls["DATABASE_OWNER_URL"]))
        self.env = dict(os.environ)
        self.env.update(
            KYUFU_ENV="test", KYUFU_DATA_DIR=str(self.root / "data"), DATABASE_URL=urls["DATABASE_URL"],
            DATABASE_OWNER_URL=urls["DATABASE_OWNER_URL"], REDIS_URL=urls["REDIS_URL"],
            KYUFU_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
            KYUFU_SESSION_SECRET=base64.b64encode(secrets.token_bytes(32)).decode(),
            KYUFU_OUTBOX_DIR=str(self.root / "outbox"), KYUFU_OUTBOX_RETRY_AFTER_S=str(self.retry_after_s),
            KYUFU_PORT=str(self.port),
        )
        self.settings = Settings(**{k: v for k, v in self.env.items() if k.startswith(("KYUFU_", "DATABASE_", "REDIS_"))})
        return self

    # ---- processes -------------------------------------------------------------------------------

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=self.env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()  # the child has its own descriptor
        self.procs[name] = proc
        return proc

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

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        self.services.down()
        shutil.rmtree(self.root, ignore_errors=True)

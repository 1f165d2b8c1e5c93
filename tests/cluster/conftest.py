"""The `ha` fixture: a fresh one-machine HA cluster (devtools/cluster) in a temporary directory, with one
municipality (CODE), and a test-side app-role pool that reaches PostgreSQL through HAProxy's leader port,
like the app nodes do. Every test module here is marked `cluster` (`make cluster-chaos`)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest

from app.db import create_app_pool
from app.settings import Settings
from app.tenancy.municipalities import add_municipality
from devtools.cluster.control import Cluster

CODE = "131016"


class HA(Cluster):
    """The cluster as a test drives it: settings and a pool of its own, and the outbox directory."""

    settings: Settings
    pool: asyncpg.Pool

    @property
    def outbox(self) -> Path:
        """Where the bank finds the municipality's released files: the drop directory any worker delivers
        to (each worker's own outbox is a scratch area on its disk)."""
        return self.bank_drop / CODE

    def outbox_files(self) -> list[str]:
        return sorted(p.name for p in self.outbox.iterdir()) if self.outbox.exists() else []

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    async def fresh_pool(self, timeout: float = 90) -> None:
        """After a failover the pool's connections were cut by HAProxy: a new pool, once the leader port
        answers again (to the new leader)."""
        self.pool.terminate()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.pool = await create_app_pool(self.settings, min_size=1, max_size=4)
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)


@pytest.fixture
async def ha():
    root = Path(tempfile.mkdtemp(prefix="kyufu-ha-"))
    # The sweeper re-enqueues an unfinished job after 2 s (not 60): the scenarios end in seconds.
    c = HA(root, extra_env={"KYUFU_OUTBOX_RETRY_AFTER_S": "2"})
    try:
        await asyncio.to_thread(c.up)
        env = c.env()
        c.settings = Settings(**{k: v for k, v in env.items() if k.startswith(("KYUFU_", "DATABASE_", "REDIS_"))})
        conn = await asyncpg.connect(c.settings.database_owner_url)
        try:
            await add_municipality(conn, c.settings.master_key_bytes, CODE, "千代田区（HA）")
        finally:
            await conn.close()
        c.pool = await create_app_pool(c.settings, min_size=1, max_size=4)
        yield c
        await c.pool.close()
    finally:
        # KYUFU_KEEP_CLUSTER=1 keeps the nodes' directories and logs to read after a failure.
        await asyncio.to_thread(c.down if os.environ.get("KYUFU_KEEP_CLUSTER") else c.destroy)

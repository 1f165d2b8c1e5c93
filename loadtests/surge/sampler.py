"""Once a second during the surge: what an operator would watch, as a time series for the report.

* arq queue depth: straight from Valkey (ZCARD of arq's queue); the app serves no /metrics on its public
  port, and the worker's gauge of it is recomputed every 30 s;
* outbox backlog and its oldest row's age: straight from the database, because the worker's gauges of the
  same (`kyufu_outbox_backlog`, `kyufu_outbox_oldest_seconds`) are recomputed only every 30 s
  (workers/metrics.py). Their scraped values are kept beside the exact ones, to show that lag;
* applications by status (how far verification and 審査 have got);
* the machine's load average and CPU use, and the locust process's CPU share (the generator runs on the
  same two cores as everything it measures).

Runs in a thread with its own event loop, so the caller can block on subprocesses meanwhile.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.request

import psutil

BACKLOG = """
SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_s
FROM outbox WHERE municipality_code = $1 AND done_at IS NULL
"""
BY_STATUS = "SELECT status, count(*) AS n FROM applications WHERE municipality_code = $1 GROUP BY status"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def scrape(url: str, names: tuple[str, ...]) -> dict[str, float]:
    """Sum each named metric's samples in a Prometheus text page (absent → not in the result)."""
    with _OPENER.open(url, timeout=2) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for name in names:
        for m in re.finditer(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.eE+-]+)$", text, re.M):
            out[name] = out.get(name, 0.0) + float(m.group(1))
    return out


class Sampler:
    def __init__(self, database_url: str, code: str, redis_url: str, worker_metrics_url: str) -> None:
        self.database_url, self.code = database_url, code
        self.redis_url, self.worker_metrics_url = redis_url, worker_metrics_url
        self.samples: list[dict] = []
        self.locust_pid: int | None = None  # set by the caller while a locust run is going
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="surge-sampler", daemon=True)

    def start(self) -> None:
        psutil.cpu_percent()  # the first call only sets the baseline
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def latest(self) -> dict:
        return self.samples[-1] if self.samples else {}

    async def _run(self) -> None:
        import asyncpg
        from redis.asyncio import Redis

        from app.db import fetch_always
        from app.tenancy.transaction import tenant_transaction

        conn = await asyncpg.connect(self.database_url)
        redis = Redis.from_url(self.redis_url, socket_timeout=1)
        locust_proc: psutil.Process | None = None
        try:
            next_t = time.time()
            while not self._stop.is_set():
                s: dict = {"t": time.time()}
                async with tenant_transaction(conn, self.code, readonly=True) as tx:
                    row = await fetch_always(tx, BACKLOG, self.code)
                    s["outbox_backlog"], s["outbox_oldest_s"] = int(row["pending"]), float(row["oldest_s"])
                    s["applications"] = {r["status"]: r["n"] for r in await tx.fetch(BY_STATUS, self.code)}
                loop = asyncio.get_running_loop()
                try:
                    s["worker"] = await loop.run_in_executor(
                        None, scrape, self.worker_metrics_url, ("kyufu_outbox_backlog", "kyufu_arq_queue_depth")
                    )
                except OSError as exc:  # a scrape that failed is a gap in the chart, named in the sample
                    s["worker"] = {"error": type(exc).__name__}
                try:
                    s["queue_depth"] = await redis.zcard("arq:queue")
                except Exception as exc:  # a gap in the chart, named in the sample
                    s["queue_depth"], s["queue_depth_error"] = None, type(exc).__name__
                s["load1"] = psutil.getloadavg()[0]
                s["cpu_percent"] = psutil.cpu_percent()
                if self.locust_pid and (locust_proc is None or locust_proc.pid != self.locust_pid):
                    try:
                        locust_proc = psutil.Process(self.locust_pid)
                        locust_proc.cpu_percent()
                    except psutil.NoSuchProcess:
                        locust_proc = None
                if locust_proc is not None:
                    try:
                        s["locust_cpu_percent"] = locust_proc.cpu_percent()
                    except psutil.NoSuchProcess:
                        locust_proc = None
                self.samples.append(s)
                next_t += 1.0
                await asyncio.sleep(max(0.0, next_t - time.time()))
        finally:
            await redis.aclose()
            await conn.close()

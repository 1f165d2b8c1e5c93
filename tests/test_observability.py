"""/metrics, request ids and JSON access logs without personal data."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import httpx
import psutil
from prometheus_client import generate_latest
from starlette.testclient import TestClient

from app.main import create_app
from app.observability import JsonFormatter
from app.services import _free_port
from tests.conftest import ROOT
from workers.metrics import collect_metrics


def test_metrics_count_requests_by_route_template(settings):
    with TestClient(create_app(settings)) as client:
        client.get("/healthz")
        client.get("/no/such/page-with-a-secret-123")
    body = generate_latest().decode()
    assert 'kyufu_http_requests_total{method="GET",route="/healthz",status="200"}' in body
    assert "page-with-a-secret" not in body  # raw paths never become labels
    assert 'route="unmatched"' in body


def test_the_public_app_serves_no_metrics(settings):
    """Issue 12: /metrics on the public port let anyone read each municipality's series."""
    with TestClient(create_app(settings)) as client:
        r = client.get("/metrics")
    assert r.status_code == 404 and "kyufu_" not in r.text


def test_kyufu_serve_puts_metrics_on_a_loopback_port_of_their_own(subprocess_env):
    """The real `kyufu serve`: the public port has no /metrics, the metrics port has them (bound to
    127.0.0.1 by default), and no series is labelled with a batch id."""
    port, metrics_port = _free_port(), _free_port()
    env = dict(subprocess_env, KYUFU_METRICS_PORT=str(metrics_port), KYUFU_JSON_LOGS="false")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "kyufu serve did not start"
                time.sleep(0.2)
        public = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert public.status_code == 404 and "kyufu_http" not in public.text
        private = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert private.status_code == 200 and "kyufu_http_requests_total" in private.text
        assert 'batch="' not in private.text
        listening = {c.laddr for c in psutil.Process(proc.pid).net_connections() if c.status == "LISTEN"}
        assert ("127.0.0.1", metrics_port) in listening
    finally:
        proc.terminate()
        proc.wait(15)


def test_request_id_is_echoed_or_generated(settings):
    with TestClient(create_app(settings)) as client:
        assert (
            client.get("/healthz", headers={"X-Request-ID": "abc12345-req"}).headers["x-request-id"] == "abc12345-req"
        )
        generated = client.get("/healthz").headers["x-request-id"]
        assert len(generated) == 32


def test_json_log_line_has_request_fields():
    record = logging.LogRecord("kyufu.access", logging.INFO, __file__, 1, "request", None, None)
    record.route, record.status, record.duration_ms = "/m/{municipality_code}", 200, 1.5
    entry = json.loads(JsonFormatter().format(record))
    assert entry["route"] == "/m/{municipality_code}" and entry["status"] == 200 and entry["msg"] == "request"


async def test_worker_gauges_cover_each_municipality(app_pool, settings, municipality):
    from app.main import arq_redis

    code = await municipality()
    redis = arq_redis(settings)
    try:
        await collect_metrics({"pool": app_pool, "redis": redis})
    finally:
        await redis.aclose()
    assert f'kyufu_outbox_backlog{{municipality="{code}"}} 0.0' in generate_latest().decode()


def test_an_idle_workers_routine_jobs_are_not_logged_but_their_failures_and_real_jobs_are():
    """Issue 18, point 13: the sweep and metrics crons and arq's health record, every 15-30 s, are not logged."""
    import logging

    from app.observability import RoutineJobFilter

    keep = RoutineJobFilter().filter

    def record(msg: str, level: int = logging.INFO, name: str = "arq.worker") -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, msg, None, None)

    # arq's own wording (arq/worker.py): start, finish, health.
    assert not keep(record("  1.00s → cron:sweep_outbox()"))
    assert not keep(record("  0.00s ← cron:sweep_outbox ● 0"))
    assert not keep(record("  0.02s ← cron:collect_metrics ● "))
    assert not keep(record("recording health: Dec-06 07:02:15 j_complete=118 j_failed=0"))
    assert keep(record(" 60.01s ! cron:sweep_outbox failed, TimeoutError: ", logging.ERROR))
    assert keep(record("  0.38s → payouts.prepare:131016:2:0:prepare_batch('131016', 2, 0)"))
    assert keep(record("outbox sweep enqueued 3 jobs", name="kyufu.outbox"))

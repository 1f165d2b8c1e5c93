"""/metrics, request ids and JSON access logs without personal data."""

from __future__ import annotations

import json
import logging

from starlette.testclient import TestClient

from app.main import create_app
from app.observability import JsonFormatter
from workers.metrics import collect_metrics


def test_metrics_count_requests_by_route_template(settings):
    with TestClient(create_app(settings)) as client:
        client.get("/healthz")
        client.get("/no/such/page-with-a-secret-123")
        body = client.get("/metrics").text
    assert 'kyufu_http_requests_total{method="GET",route="/healthz",status="200"}' in body
    assert "page-with-a-secret" not in body  # raw paths never become labels
    assert 'route="unmatched"' in body


def test_request_id_is_echoed_or_generated(settings):
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz", headers={"X-Request-ID": "abc12345-req"}).headers["x-request-id"] == "abc12345-req"
        generated = client.get("/healthz").headers["x-request-id"]
        assert len(generated) == 32


def test_json_log_line_has_request_fields():
    record = logging.LogRecord("kyufu.access", logging.INFO, __file__, 1, "request", None, None)
    record.route, record.status, record.duration_ms = "/m/{municipality_code}", 200, 1.5
    entry = json.loads(JsonFormatter().format(record))
    assert entry["route"] == "/m/{municipality_code}" and entry["status"] == 200 and entry["msg"] == "request"


async def test_worker_gauges_cover_each_municipality(app_pool, settings, municipality):
    from prometheus_client import generate_latest

    from app.main import arq_redis

    code = await municipality()
    redis = arq_redis(settings)
    try:
        await collect_metrics({"pool": app_pool, "redis": redis})
    finally:
        await redis.aclose()
    assert f'kyufu_outbox_backlog{{municipality="{code}"}} 0.0' in generate_latest().decode()

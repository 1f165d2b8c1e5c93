"""/healthz and /readyz, and the worker's arq health check."""

from __future__ import annotations

from starlette.testclient import TestClient

from app.main import create_app
from workers.settings import worker_settings


def test_healthz_and_readyz_when_both_servers_answer(settings):
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_readyz_names_redis_when_it_is_unreachable(settings):
    from app.services import _free_port

    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{_free_port()}/0"})
    # The app still starts without Redis: applications are kept in the outbox until it returns.
    with TestClient(create_app(broken)) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert set(ready.json()["failed"]) == {"redis"}


def test_worker_health_check_interval_is_at_most_a_minute(settings):
    assert worker_settings(settings)["health_check_interval"] <= 60

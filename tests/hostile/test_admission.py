"""Admission control: past max_in_flight the app answers at once with 503 + Retry-After and the Japanese
「ただいま混み合っています。N分後にもう一度お試しください。」 (JSON for the API, a page otherwise); health,
readiness and metrics are never shed; admitted requests are unaffected and capacity comes back."""

from __future__ import annotations

import asyncio
import time

import httpx

from app.main import create_app
from tests.live_server import start_live_server

BUSY = "ただいま混み合っています。1分後にもう一度お試しください。"


async def test_overload_is_shed_fast_with_retry_after_and_admitted_requests_are_unaffected(settings):
    server = start_live_server(create_app(settings.model_copy(update={"max_in_flight": 2, "busy_retry_after_s": 60})))
    release = asyncio.Event()

    async def trickle():  # a body that arrives only when released: the request stays in flight
        yield b'{"municipality_code": "131016",'
        await release.wait()
        yield b' "access_code": "X", "pin": "1"}'

    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            held = [asyncio.create_task(client.post("/api/v1/status", content=trickle(),
                                                    headers={"content-type": "application/json"}))
                    for _ in range(2)]
            deadline = time.monotonic() + 10
            while True:  # wait until both are admitted (their bodies are being read)
                r = await client.get("/api/v1/banks", params={"q": "みずほ"})
                if r.status_code == 503 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert r.status_code == 503
            start = time.monotonic()
            shed = await client.get("/api/v1/banks", params={"q": "みずほ"})
            page = await client.get("/m/131016/", headers={"accept": "text/html"})
            shed_s = time.monotonic() - start
            assert shed.status_code == 503 and shed.headers["retry-after"] == "60"
            assert shed.json()["error"]["message"] == BUSY and shed.json()["error"]["retry_after_s"] == 60
            assert page.status_code == 503 and BUSY in page.text and "text/html" in page.headers["content-type"]
            assert page.headers["content-security-policy"] and page.headers["retry-after"] == "60"
            assert shed_s < 1.0, shed_s  # refused at once, not after a queue
            for path in ("/healthz", "/metrics"):
                assert (await client.get(path)).status_code == 200, path
            release.set()
            answers = await asyncio.gather(*held)
            # The admitted requests were answered normally (this body is a valid request for an unknown code).
            assert [a.status_code for a in answers] != [503, 503] and all(a.status_code < 500 for a in answers)
            ok = await client.get("/api/v1/banks", params={"q": "みずほ"})
            assert ok.status_code == 200 and ok.json()["items"]
            metrics = (await client.get("/metrics")).text
            assert 'kyufu_admission_shed_total{kind="api"}' in metrics
    finally:
        server.stop()


def test_the_default_limit_admits_the_suites_concurrency(settings):
    """The default must not shed normal use: tests and a single user never come near it."""
    assert settings.max_in_flight >= 32


def test_the_limit_adapts_to_the_time_of_admitted_requests():
    """AIMD: slow windows under concurrency cut the limit by a quarter down to the floor; fast windows
    grow it back to the ceiling; a lone slow request (no concurrency) does not count as overload."""
    from app.web.admission import AdmissionMiddleware

    gate = AdmissionMiddleware(None, max_in_flight=64, retry_after_s=60, target_latency_s=0.1, min_in_flight=4)
    for _ in range(3):  # one slow request at a time: not overload
        gate._window_peak = 1
        for _ in range(gate.WINDOW):
            gate.observe(0.5)
    assert gate.limit == 64
    seen = []
    for _ in range(20):  # slow and concurrent: 64 → 48 → 36 → ... → 4, never below
        gate._window_peak = 40
        for _ in range(gate.WINDOW):
            gate.observe(0.3)
        seen.append(gate.limit)
    assert seen[:3] == [48, 36, 27] and seen[-1] == 4 and min(seen) == 4
    for _ in range(3):  # between half the target and the target: hold
        for _ in range(gate.WINDOW):
            gate.observe(0.07)
    assert gate.limit == 4
    for _ in range(60):  # fast: grows back, never above the ceiling
        for _ in range(gate.WINDOW):
            gate.observe(0.01)
    assert gate.limit == 64
    with __import__("pytest").raises(ValueError):
        AdmissionMiddleware(None, max_in_flight=4, retry_after_s=60, min_in_flight=5)

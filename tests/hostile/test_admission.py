"""Admission control: past the limit the app answers at once with 503 + Retry-After and the Japanese
「ただいま混み合っています。N分後にもう一度お試しください。」 (JSON for the API, a page otherwise); health,
readiness and metrics are never shed; admitted requests are unaffected and capacity comes back.

Issue 12, finding 1: slow bodies must not hold slots (one anonymous client with 70 connections that each
sent one byte of a 1000-byte body stalled every municipality), one address may not take the whole
capacity, a body has a time limit, /readyz reports saturation, and nothing logs a traceback."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import httpx
from prometheus_client import REGISTRY
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.main import create_app
from tests.live_server import start_live_server

BUSY = "ただいま混み合っています。1分後にもう一度お試しください。"
ATTACKER = "203.0.113.66"  # uvicorn believes X-Forwarded-For from loopback (its default), as from a proxy


def _app_with_hold(settings, **overrides):
    """The real app plus one test route whose requests stay in flight until `release` is set."""
    release = threading.Event()

    async def hold(request):
        await request.body()
        await asyncio.to_thread(release.wait, 20)
        return JSONResponse({"held": True})

    app = create_app(settings.model_copy(update=overrides))
    app.router.routes.append(Route("/api/v1/test-hold", hold, methods=["POST"]))
    return app, release


def _shed(kind: str) -> float:
    return REGISTRY.get_sample_value("kyufu_admission_shed_total", {"kind": kind}) or 0.0


async def _wait_admitted(client, n: int, **kwargs):
    """Start n held requests and wait until all are in flight."""
    tasks = [asyncio.create_task(client.post("/api/v1/test-hold", content=b"{}", **kwargs)) for _ in range(n)]
    await asyncio.sleep(0.3)
    return tasks


async def test_overload_is_shed_fast_with_retry_after_and_admitted_requests_are_unaffected(settings, monkeypatch):
    monkeypatch.setattr("app.web.admission.SATURATED_FOR_S", 0.5)
    app, release = _app_with_hold(settings, max_in_flight=2, busy_retry_after_s=60, max_in_flight_per_client=64)
    server = start_live_server(app)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            assert (await client.get("/readyz")).json()["status"] == "ready"
            held = await _wait_admitted(client, 2)
            before = _shed("api")
            start = time.monotonic()
            shed = await client.get("/api/v1/banks", params={"q": "みずほ"})
            page = await client.get("/m/131016/", headers={"accept": "text/html"})
            shed_s = time.monotonic() - start
            assert shed.status_code == 503 and shed.headers["retry-after"] == "60"
            assert shed.json()["error"]["message"] == BUSY and shed.json()["error"]["retry_after_s"] == 60
            assert page.status_code == 503 and BUSY in page.text and "text/html" in page.headers["content-type"]
            assert page.headers["content-security-policy"] and page.headers["retry-after"] == "60"
            assert shed_s < 1.0, shed_s  # refused at once, not after a queue
            assert _shed("api") == before + 1
            assert (await client.get("/healthz")).status_code == 200
            # Readiness tells the load balancer; liveness stays 200.
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "saturated"
            assert ready.json()["admission"]["in_flight"] == 2
            release.set()
            answers = await asyncio.gather(*held)
            assert [a.status_code for a in answers] == [200, 200]
            ok = await client.get("/api/v1/banks", params={"q": "みずほ"})
            assert ok.status_code == 200 and ok.json()["items"]
            await asyncio.sleep(0.6)
            assert (await client.get("/readyz")).json()["status"] == "ready"
    finally:
        release.set()
        server.stop()


def _slow_body(port: int, path: str, address: str) -> socket.socket:
    """A request whose headers promise 1000 bytes of body, of which one is sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-Forwarded-For: {address}\r\nContent-Length: 1000\r\n\r\n{{".encode()
    )
    return sock


def _status_of(sock: socket.socket) -> int | None:
    """The status line the server sent on this connection, or None if it sent nothing yet."""
    sock.settimeout(0.05)
    try:
        data = sock.recv(4096)
    except (TimeoutError, BlockingIOError):
        return None
    except ConnectionResetError:
        return -1
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else -1


async def test_slow_bodies_from_one_client_stall_nobody(settings, caplog):
    """70 connections of one anonymous client, each one byte into a 1000-byte body: every other visitor
    is served (the resident site, the API, the staff sign-in), /readyz stays ready, the attacker's
    connections past its share get 429 at once and the rest 408 after the body time limit, and nothing
    is logged as an error."""
    app = create_app(settings.model_copy(update={"max_in_flight": 64, "body_timeout_s": 2.0}))
    server = start_live_server(app)
    port = int(server.url.rsplit(":", 1)[1])
    caplog.set_level(logging.INFO)
    socks = []
    try:
        paths = ("/api/v1/status", "/staff/login", "/m/131016/signin")
        socks = [_slow_body(port, paths[i % 3], ATTACKER) for i in range(70)]
        await asyncio.sleep(0.5)
        early = [_status_of(s) for s in socks]
        assert early.count(429) == 70 - settings.max_pending_bodies_per_client, early
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            started = time.monotonic()
            for _ in range(3):
                assert (await client.get("/m/131016/")).status_code < 500
                api = await client.post(
                    "/api/v1/status", json={"municipality_code": "131016", "access_code": "X", "pin": "1"}
                )
                assert api.status_code not in (429, 503), api.text
                staff = await client.get("/staff/login")
                assert staff.status_code == 200
            assert time.monotonic() - started < 5
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
        deadline = time.monotonic() + 10
        late = {}
        while len(late) < settings.max_pending_bodies_per_client and time.monotonic() < deadline:
            for i, s in enumerate(socks):
                if early[i] is None and i not in late:
                    status = _status_of(s)
                    if status is not None:
                        late[i] = status
            await asyncio.sleep(0.1)
        assert sorted(set(late.values())) == [408], late
    finally:
        for s in socks:
            s.close()
        server.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [(r.name, r.getMessage()) for r in errors]


async def test_a_client_that_goes_away_mid_body_leaves_no_traceback(settings, caplog):
    server = start_live_server(create_app(settings))
    port = int(server.url.rsplit(":", 1)[1])
    caplog.set_level(logging.INFO)
    try:
        for _ in range(10):
            _slow_body(port, "/api/v1/status", ATTACKER).close()
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (await client.get("/healthz")).status_code == 200
    finally:
        server.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(("kyufu", "uvicorn"))]


async def test_one_address_cannot_take_more_than_its_share_once_half_full(settings):
    app, release = _app_with_hold(settings, max_in_flight=8, max_in_flight_per_client=2)
    server = start_live_server(app)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            greedy = {"X-Forwarded-For": ATTACKER}
            # Under half full anyone may use the process: four from one address are admitted.
            held = await _wait_admitted(client, 4, headers=greedy)
            refused = await client.post("/api/v1/test-hold", content=b"{}", headers=greedy)
            assert refused.status_code == 429 and refused.headers["retry-after"]
            assert "集中" in refused.json()["error"]["message"]
            # Other addresses still get in, each up to its share, until the limit.
            others = await _wait_admitted(client, 2, headers={"X-Forwarded-For": "198.51.100.7"})
            others += await _wait_admitted(client, 1, headers={"X-Forwarded-For": "198.51.100.9"})
            ok = await client.get("/api/v1/banks", params={"q": "みずほ"}, headers={"X-Forwarded-For": "198.51.100.8"})
            assert ok.status_code == 200
            release.set()
            assert [r.status_code for r in await asyncio.gather(*held, *others)] == [200] * 7
    finally:
        release.set()
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

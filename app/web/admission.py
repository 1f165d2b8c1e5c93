"""Admission control: past a fixed number of requests in flight in this process, answer at once with
503 + Retry-After and 「ただいま混み合っています。N分後にもう一度お試しください。」 (JSON under /api/),
instead of queueing work the database cannot finish before the client gives up.

Why a count of requests in flight and not a rate: the cost of a request varies (a bank type-ahead vs. a
submit waiting for its batch), and what makes latency explode is the queue in front of the asyncpg pool
and the event loop. Holding in-flight work down keeps admitted requests fast; the rest are shed in
microseconds. Liveness/readiness, /metrics and /static are never shed (operators and the load balancer
must see an overloaded process as alive, and pages need their CSS).

Why the limit adapts: a fixed limit is either high enough for legitimate concurrency (the batched submit
API wants many requests waiting cheaply for one commit) and then lets a surge queue up to seconds per
request (measured by loadtests/surge: p99 1.9-3.0 s with 64 and 0 % shed), or low enough to keep pages fast
and then starves the batcher (4: 21 submits/s). So the limit is AIMD on the measured time of admitted
requests, as TCP does with its window: every window of completions, if their 90th percentile exceeds the
target while more than min_in_flight requests were in flight at once (a lone slow request, e.g. a staff
sign-in's argon2, is not overload) the limit is cut by a quarter (not below min_in_flight); if it is under
half the target the limit grows by an eighth (not above max_in_flight). Normal use never leaves
max_in_flight.
"""

from __future__ import annotations

import math
import time

from prometheus_client import Counter, Gauge
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

IN_FLIGHT = Gauge("kyufu_http_in_flight", "Requests being handled by this process (admitted)")
LIMIT = Gauge("kyufu_admission_limit", "Current adaptive limit of requests in flight in this process")
SHED = Counter("kyufu_admission_shed_total", "Requests refused with 503 by admission control", ["kind"])

EXEMPT_PREFIXES = ("/healthz", "/readyz", "/metrics", "/static/")


def busy_message(retry_after_s: int) -> str:
    minutes = max(1, math.ceil(retry_after_s / 60))
    return f"ただいま混み合っています。{minutes}分後にもう一度お試しください。"


class AdmissionMiddleware:
    """Pure ASGI. One event loop per process, so the counters need no lock (no await between the check
    and the increment)."""

    WINDOW = 32  # completions per adjustment (or fewer, once a second)

    def __init__(self, app: ASGIApp, *, max_in_flight: int, retry_after_s: int, target_latency_s: float = 0.1,
                 min_in_flight: int = 4) -> None:
        if not 1 <= min_in_flight <= max_in_flight:
            raise ValueError("need 1 <= min_in_flight <= max_in_flight")
        self.app = app
        self.max_in_flight = max_in_flight
        self.min_in_flight = min_in_flight
        self.retry_after_s = retry_after_s
        self.target_latency_s = target_latency_s
        self.limit = max_in_flight
        self.in_flight = 0
        self._window: list[float] = []
        self._window_started = time.monotonic()
        self._window_peak = 0  # most requests in flight at once during the window
        LIMIT.set(self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await self._shed(scope, receive, send)
            return
        self.in_flight += 1
        IN_FLIGHT.inc()
        if self.in_flight > self._window_peak:
            self._window_peak = self.in_flight
        started = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()
            self.observe(time.monotonic() - started)

    def observe(self, seconds: float) -> None:
        """One admitted request's time; adjusts the limit at the end of each window."""
        window = self._window
        window.append(seconds)
        now = time.monotonic()
        if len(window) < self.WINDOW and now - self._window_started < 1.0:
            return
        window.sort()
        p90 = window[min(len(window) - 1, (len(window) * 9) // 10)]
        if p90 > self.target_latency_s and self._window_peak > self.min_in_flight:
            self.limit = max(self.min_in_flight, (self.limit * 3) // 4)
        elif p90 < self.target_latency_s / 2:
            self.limit = min(self.max_in_flight, self.limit + max(1, self.limit // 8))
        LIMIT.set(self.limit)
        window.clear()
        self._window_started = now
        self._window_peak = self.in_flight

    async def _shed(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Imported here: app.web.setup imports this module.
        from app.web.setup import _error_response, wants_json

        request = Request(scope, receive)
        SHED.labels("api" if wants_json(request) else "page").inc()
        response = _error_response(request, 503, busy_message(self.retry_after_s),
                                   {"retry_after_s": self.retry_after_s})
        response.headers["Retry-After"] = str(self.retry_after_s)
        response.headers["Cache-Control"] = "no-store"
        await response(scope, receive, send)

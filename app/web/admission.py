"""Admission control: past a fixed number of requests in flight in this process, answer at once with
503 + Retry-After and 「ただいま混み合っています。N分後にもう一度お試しください。」 (JSON under /api/),
instead of queueing work the database cannot finish before the client gives up.

Why a count of requests in flight and not a rate: the cost of a request varies (a bank type-ahead vs. a
submit waiting for its batch), and what makes latency explode is the queue in front of the asyncpg pool.
Holding in-flight work to a small multiple of the pool keeps admitted requests fast; the rest are shed
in microseconds. Liveness/readiness, /metrics and /static are never shed (operators and the load
balancer must see an overloaded process as alive, and pages need their CSS).
"""

from __future__ import annotations

import math

from prometheus_client import Counter, Gauge
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

IN_FLIGHT = Gauge("kyufu_http_in_flight", "Requests being handled by this process (admitted)")
SHED = Counter("kyufu_admission_shed_total", "Requests refused with 503 by admission control", ["kind"])

EXEMPT_PREFIXES = ("/healthz", "/readyz", "/metrics", "/static/")


def busy_message(retry_after_s: int) -> str:
    minutes = max(1, math.ceil(retry_after_s / 60))
    return f"ただいま混み合っています。{minutes}分後にもう一度お試しください。"


class AdmissionMiddleware:
    """Pure ASGI. One event loop per process, so the counter needs no lock (no await between the check
    and the increment)."""

    def __init__(self, app: ASGIApp, *, max_in_flight: int, retry_after_s: int) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await self._shed(scope, receive, send)
            return
        self.in_flight += 1
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()

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

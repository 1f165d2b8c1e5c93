"""Admission control: past a number of requests in flight in this process, answer at once with 503 +
Retry-After and 「ただいま混み合っています。N分後にもう一度お試しください。」 (JSON under /api/),
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

Why a request is counted only once its body is in (issue 12): counted from its headers, 70 connections
that each sent `Content-Length: 1000` and one byte held every slot, and every municipality's residents
and staff got 503 for as long as they waited. Now the body is read first, outside the count, within
`body_timeout_s` (408 after that) and the body limit of app.web.setup (413); a client address may have at
most `max_pending_bodies_per_client` bodies arriving at once (429 past that). A client that goes away
while sending is dropped quietly (it was 64 ClientDisconnect tracebacks).

Why a per-client share: once admitted, one address could still take the whole limit with slow requests.
While the process is less than half full anyone may use it; past half, an address that already holds
`max_in_flight_per_client` requests gets 429 + Retry-After, so no one address can hold more than half of
the capacity. The address is the peer's, or X-Forwarded-For's when uvicorn trusts the peer as a proxy
(KYUFU_FORWARDED_ALLOW_IPS; see `kyufu serve`). Behind carrier-grade NAT many residents share one
address; that is why the share applies only under pressure and is a setting.

/readyz reports `saturated` (503) while requests are being shed, so a load balancer sends new work to
another node; /healthz stays 200 (the process is alive and answering).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict

from prometheus_client import Counter, Gauge
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.web.responses import STATUS_MESSAGES, error_response, wants_json

IN_FLIGHT = Gauge("kyufu_http_in_flight", "Requests being handled by this process (admitted)")
LIMIT = Gauge("kyufu_admission_limit", "Current adaptive limit of requests in flight in this process")
SHED = Counter("kyufu_admission_shed_total", "Requests refused by admission control", ["kind"])

EXEMPT_PREFIXES = ("/healthz", "/readyz", "/metrics", "/static/")
# /readyz says saturated for this long after the last request shed for want of capacity.
SATURATED_FOR_S = 5.0
PER_CLIENT_RETRY_AFTER_S = 5

log = logging.getLogger("kyufu.web")


def busy_message(retry_after_s: int) -> str:
    minutes = max(1, math.ceil(retry_after_s / 60))
    return f"ただいま混み合っています。{minutes}分後にもう一度お試しください。"


BODY_TIMEOUT_MESSAGE = (
    "送信に時間がかかりすぎたため、受け付けられませんでした。通信環境を確かめて、もう一度お試しください。"
)
PER_CLIENT_MESSAGE = "このネットワークからの処理が集中しています。少し待ってからもう一度お試しください。"


def client_address(scope: Scope) -> str:
    """The client's address as this process sees it: the peer, or X-Forwarded-For's client when uvicorn
    trusts the peer as a proxy (it rewrites scope["client"] before the app runs)."""
    client = scope.get("client")
    return client[0] if client else "-"


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value != b"0"
        if name == b"transfer-encoding":
            return True
    return False


class _ClientGone(Exception):
    """The client disconnected while sending its body."""


class AdmissionMiddleware:
    """Pure ASGI. One event loop per process, so the counters need no lock (no await between a check
    and its increment)."""

    WINDOW = 32  # completions per adjustment (or fewer, once a second)

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        retry_after_s: int,
        target_latency_s: float = 0.1,
        min_in_flight: int = 4,
        max_in_flight_per_client: int = 8,
        body_timeout_s: float = 10.0,
        max_pending_bodies_per_client: int = 16,
        state=None,
    ) -> None:
        if not 1 <= min_in_flight <= max_in_flight:
            raise ValueError("need 1 <= min_in_flight <= max_in_flight")
        self.app = app
        self.max_in_flight = max_in_flight
        self.min_in_flight = min_in_flight
        self.retry_after_s = retry_after_s
        self.target_latency_s = target_latency_s
        self.max_in_flight_per_client = max_in_flight_per_client
        self.body_timeout_s = body_timeout_s
        self.max_pending_bodies_per_client = max_pending_bodies_per_client
        self.limit = max_in_flight
        self.in_flight = 0
        self.by_client: defaultdict[str, int] = defaultdict(int)
        self.pending_bodies: defaultdict[str, int] = defaultdict(int)
        self.last_shed = -math.inf
        self._window: list[float] = []
        self._window_started = time.monotonic()
        self._window_peak = 0  # most requests in flight at once during the window
        LIMIT.set(self.limit)
        if state is not None:  # the app's state: /readyz reads the gate's saturation from there
            state.admission = self

    # ---- what /readyz reports ----------------------------------------------------------------

    def saturated(self) -> bool:
        return self.in_flight >= self.limit or time.monotonic() - self.last_shed < SATURATED_FOR_S

    def snapshot(self) -> dict:
        return {
            "in_flight": self.in_flight,
            "limit": self.limit,
            "saturated": self.saturated(),
            "pending_bodies": sum(self.pending_bodies.values()),
        }

    # ---- the gate ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        if _has_body(scope):
            body = await self._read_body(scope, receive, send, client)
            if body is None:
                return  # answered (408/413/429) or the client is gone
            receive = _replay(body, receive)
        if self.in_flight >= self.limit:
            self.last_shed = time.monotonic()
            await self._refuse(
                scope, receive, send, 503, busy_message(self.retry_after_s), self.retry_after_s, kind="api"
            )
            return
        if self.by_client[client] >= self.max_in_flight_per_client and self.in_flight * 2 >= self.limit:
            await self._refuse(
                scope, receive, send, 429, PER_CLIENT_MESSAGE, PER_CLIENT_RETRY_AFTER_S, kind="per_client"
            )
            return
        self.in_flight += 1
        self.by_client[client] += 1
        IN_FLIGHT.inc()
        if self.in_flight > self._window_peak:
            self._window_peak = self.in_flight
        started = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.by_client[client] -= 1
            if not self.by_client[client]:
                del self.by_client[client]
            IN_FLIGHT.dec()
            self.observe(time.monotonic() - started)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send, client: str) -> bytes | None:
        """The whole body, read within body_timeout_s; None once the request has been answered here."""
        if self.pending_bodies[client] >= self.max_pending_bodies_per_client:
            await self._refuse(
                scope, receive, send, 429, PER_CLIENT_MESSAGE, PER_CLIENT_RETRY_AFTER_S, kind="per_client_bodies"
            )
            return None
        self.pending_bodies[client] += 1
        try:
            async with asyncio.timeout(self.body_timeout_s):
                return await _receive_body(receive)
        except TimeoutError:
            SHED.labels("body_timeout").inc()
            await self._refuse(scope, receive, send, 408, BODY_TIMEOUT_MESSAGE, None, kind=None, close=True)
            return None
        except HTTPException as exc:  # the body limit (app.web.setup.SecurityMiddleware): 413
            await self._refuse(
                scope,
                receive,
                send,
                exc.status_code,
                STATUS_MESSAGES.get(exc.status_code, ""),
                None,
                kind=None,
                close=True,
            )
            return None
        except _ClientGone:
            log.info("client disconnected while sending a request body")
            return None
        finally:
            self.pending_bodies[client] -= 1
            if not self.pending_bodies[client]:
                del self.pending_bodies[client]

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

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        message: str,
        retry_after_s: int | None,
        *,
        kind: str | None,
        close: bool = False,
    ) -> None:
        request = Request(scope, receive)
        if kind is not None:
            SHED.labels(("api" if wants_json(request) else "page") if kind == "api" else kind).inc()
        extra = {"retry_after_s": retry_after_s} if retry_after_s is not None else None
        response = error_response(request, status, message, extra)
        if retry_after_s is not None:
            response.headers["Retry-After"] = str(retry_after_s)
        response.headers["Cache-Control"] = "no-store"
        if close:  # the rest of the body may still be on its way: do not read it as the next request
            response.headers["Connection"] = "close"
        await response(scope, receive, send)


async def _receive_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body as one message, then the real channel (which reports a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

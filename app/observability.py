"""HTTP request metrics (Prometheus) and structured logs with a request id. The business and job metrics
and the listener that serves them (never the public port) are in app/metrics.py.

Log lines are JSON objects carrying identifiers and counts only: a route template (never the raw path,
which can hold an access code), a status, a duration and a request id. Personal data never reaches a
logger anywhere in kyufu; this formatter does not try to scrub it, it relies on that rule.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
import uuid

from prometheus_client import Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

REQUESTS = Counter("kyufu_http_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "kyufu_http_request_seconds",
    "HTTP request latency",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        for key in ("route", "method", "status", "duration_ms"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


# An idle worker's routine: the outbox sweep and the metrics collection every 15 s, arq's health record every
# 30 s. Logged, they are ~15 lines a minute of nothing, which scroll the demo's logins off the screen and
# bury the lines that matter. A sweep that enqueues something says so itself (kyufu.outbox), and a failed
# routine job is logged by arq at ERROR/WARNING, which this lets through.
ROUTINE_JOBS = ("cron:sweep_outbox", "cron:collect_metrics")


class RoutineJobFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "arq.worker" or record.levelno > logging.INFO:
            return True
        text = record.getMessage()
        return not (any(job in text for job in ROUTINE_JOBS) or text.startswith("recording health"))


def configure_logging(level: int = logging.INFO, json_logs: bool = True) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RoutineJobFilter())
    handler.setFormatter(
        JsonFormatter() if json_logs else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


access_log = logging.getLogger("kyufu.access")


def _route_template(app, scope: Scope) -> str:
    """The matched route's path template (e.g. /m/{municipality_code}/status), never the raw path."""
    for route in getattr(app, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", None) or getattr(route, "path_format", "?"))
    return "unmatched"


class ObservabilityMiddleware:
    """Request id (X-Request-ID in and out), per-route metrics and one JSON access log line."""

    def __init__(self, app: ASGIApp, router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if 8 <= len(incoming) <= 64 and incoming.replace("-", "").isalnum() else uuid.uuid4().hex
        token = request_id_var.set(rid)
        route = _route_template(self.router, scope)
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            method = scope["method"]
            REQUESTS.labels(route, method, str(status)).inc()
            LATENCY.labels(route, method).observe(elapsed)
            if route not in ("/healthz", "/readyz", "/metrics"):
                access_log.info(
                    "request",
                    extra={"route": route, "method": method, "status": status, "duration_ms": round(elapsed * 1000, 2)},
                )
            request_id_var.reset(token)


def setup(app, settings) -> None:
    app.add_middleware(ObservabilityMiddleware, router=app.router)

"""The business and job metrics (Prometheus), defined once for every process that sets them, and the
listener that serves them. Core: payouts and workers set these without importing the web layer (the
HTTP request metrics and the access log live in app/observability.py).

Served on a listener of their own (`serve_metrics`: KYUFU_METRICS_PORT for `kyufu serve`,
KYUFU_WORKER_METRICS_PORT for the worker), never on the public port: their labels name municipalities
(for the platform's operators) and no label carries a batch id, a person or a raw path (issue 12).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

APPLICATIONS = Gauge("kyufu_applications", "Applications by status", ["municipality", "status"])
OUTBOX_BACKLOG = Gauge("kyufu_outbox_backlog", "Outbox rows not done", ["municipality"])
OUTBOX_OLDEST = Gauge("kyufu_outbox_oldest_seconds", "Age of the oldest outbox row not done", ["municipality"])
QUEUE_DEPTH = Gauge("kyufu_arq_queue_depth", "Jobs waiting in the arq queue")
JOBS = Counter("kyufu_jobs_total", "Job outcomes", ["job", "outcome"])
BATCH_PROGRESS = Gauge(
    "kyufu_batch_generation_records", "Records written by the batch being generated", ["municipality"]
)


def serve_metrics(host: str, port: int) -> None:
    """Serve this process's metrics at http://host:port/metrics from a background thread. Bind it to an
    address only operators reach (loopback, or a private network whose port is not published)."""
    start_http_server(port, addr=host)

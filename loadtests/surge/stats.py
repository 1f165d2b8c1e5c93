"""Figures from the clients' request records ("start_epoch_s,latency_ms,status,name" lines).

Admitted = answered by the application (any status but 503); shed = 503 (admission control, or the API's
own 「再送してください」 when a batch failed); error = no HTTP answer (status 0) or a 5xx other than 503.
Percentiles are nearest-rank over every request in the window, not estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The first request of each kind of journey: their count over a window is the achieved arrival rate.
JOURNEY_STARTS = ("web GET start", "api POST applications", "status POST api", "status GET page")


@dataclass
class Records:
    start: np.ndarray  # epoch seconds
    latency: np.ndarray  # ms
    status: np.ndarray
    name: np.ndarray  # str

    @classmethod
    def load(cls, paths: list[Path]) -> Records:
        rows = []
        for path in paths:
            if path.exists():
                with path.open() as fh:
                    rows += [line.rstrip("\n").split(",", 3) for line in fh if line.count(",") >= 3]
        if not rows:
            return cls(np.zeros(0), np.zeros(0), np.zeros(0, dtype=int), np.zeros(0, dtype=object))
        start, latency, status, name = zip(*rows)
        order = np.argsort(np.asarray(start, dtype=float), kind="stable")
        return cls(
            np.asarray(start, dtype=float)[order],
            np.asarray(latency, dtype=float)[order],
            np.asarray(status, dtype=int)[order],
            np.asarray(name, dtype=object)[order],
        )

    def window(self, t0: float, t1: float) -> Records:
        m = (self.start >= t0) & (self.start < t1)
        return Records(self.start[m], self.latency[m], self.status[m], self.name[m])

    @property
    def admitted(self) -> np.ndarray:
        return (self.status != 503) & (self.status != 0)

    @property
    def shed(self) -> np.ndarray:
        return self.status == 503

    @property
    def errors(self) -> np.ndarray:
        return (self.status == 0) | ((self.status >= 500) & (self.status != 503))


def pct(values: np.ndarray, p: float) -> float | None:
    if len(values) == 0:
        return None
    return round(float(np.percentile(values, p, method="inverted_cdf")), 1)


def summarize(r: Records, seconds: float) -> dict:
    """The window's figures; `seconds` is its length (rates are per second of it)."""
    adm = r.latency[r.admitted]
    shed = r.latency[r.shed]
    n = len(r.status)
    journeys = int(np.isin(r.name, JOURNEY_STARTS).sum())
    return {
        "seconds": round(seconds, 1),
        "requests": n,
        "requests_per_s": round(n / seconds, 1) if seconds else None,
        "admitted": int(r.admitted.sum()),
        "admitted_per_s": round(int(r.admitted.sum()) / seconds, 1) if seconds else None,
        "shed": int(r.shed.sum()),
        "shed_fraction": round(int(r.shed.sum()) / n, 4) if n else 0.0,
        "errors": int(r.errors.sum()),
        "status_4xx": int(((r.status >= 400) & (r.status < 500)).sum()),
        "journeys_started_per_s": round(journeys / seconds, 1) if seconds else None,
        "admitted_ms": {"p50": pct(adm, 50), "p95": pct(adm, 95), "p99": pct(adm, 99), "max": pct(adm, 100)},
        "shed_ms": {"p50": pct(shed, 50), "p99": pct(shed, 99), "max": pct(shed, 100)},
    }


def by_name(r: Records) -> dict:
    out = {}
    for name in sorted(set(r.name.tolist())):
        m = r.name == name
        sub = Records(r.start[m], r.latency[m], r.status[m], r.name[m])
        adm = sub.latency[sub.admitted]
        statuses, counts = np.unique(sub.status, return_counts=True)
        out[name] = {
            "requests": int(m.sum()),
            "p50_ms": pct(adm, 50),
            "p99_ms": pct(adm, 99),
            "status": {str(s): int(c) for s, c in zip(statuses, counts)},
        }
    return out


def per_second(r: Records, t0: float, t1: float) -> dict:
    """Per-second buckets (by request start) from t0 to t1, for the charts."""
    n = max(1, int(np.ceil(t1 - t0)))
    idx = np.clip((r.start - t0).astype(int), 0, n - 1)
    series: dict[str, list] = {
        "t": list(range(n)),
        "admitted": [],
        "shed": [],
        "errors": [],
        "shed_fraction": [],
        "p50_ms": [],
        "p95_ms": [],
        "p99_ms": [],
    }
    adm, shed, err = r.admitted, r.shed, r.errors
    for i in range(n):
        m = idx == i
        lat = r.latency[m & adm]
        total = int(m.sum())
        series["admitted"].append(int((m & adm).sum()))
        series["shed"].append(int((m & shed).sum()))
        series["errors"].append(int((m & err).sum()))
        series["shed_fraction"].append(round(int((m & shed).sum()) / total, 4) if total else None)
        for p in (50, 95, 99):
            series[f"p{p}_ms"].append(pct(lat, p))
    return series


def during_sign_ins(r: Records, name: str = "staff POST login") -> dict:
    """Admitted requests that started while a staff sign-in was being answered. The password check
    (argon2) runs on the event loop, so these show what one sign-in costs everyone on that process."""
    m = r.name == name
    spans = [(s, s + lat / 1000) for s, lat in zip(r.start[m], r.latency[m])]
    inside = np.zeros(len(r.start), dtype=bool)
    for a, b in spans:
        inside |= (r.start >= a) & (r.start < b)
    inside &= r.admitted & ~m
    lat = r.latency[inside]
    return {
        "sign_ins": len(spans),
        "sign_in_ms": [round(float(x), 1) for x in r.latency[m]],
        "requests_started_during": int(inside.sum()),
        "their_p50_ms": pct(lat, 50),
        "their_p99_ms": pct(lat, 99),
        "others_p50_ms": pct(r.latency[r.admitted & ~inside & ~m], 50),
    }

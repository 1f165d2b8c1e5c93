"""The surge tooling (loadtests/surge) run tiny, so that it cannot rot between real load tests: a private
cluster, a 2× run of a few seconds (the sustainable rate given, not searched: a search step's verdict
depends on the machine), the report and charts, and the consistency check against the database. It
proves the tooling works, not any throughput figure. The search itself is tested on its own below."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CHARTS = {"throughput.png", "latency.png", "shed_rate.png", "outbox_backlog.png", "queue_depth.png"}
KEYS = {
    "machine",
    "config",
    "search",
    "runs",
    "surge",
    "drain",
    "consistency",
    "clients",
    "server",
    "charts",
    "timeseries",
}


def test_tiny_surge_writes_the_report_and_passes_the_consistency_check(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.Popen(
        [
            sys.executable,
            "loadtests/surge/run.py",
            "--out",
            str(out),
            "--letters",
            "600",
            "--no-fsync",
            "--sustainable",
            "2",
            "--surge-seconds",
            "5",
            "--warm-up-run",
            "0",
            "--warmup-seconds",
            "1",
            "--pacing",
            "2",
            "--stop-timeout",
            "10",
            "--drain-timeout",
            "30",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.terminate()  # run.py stops its cluster on SIGTERM; a SIGKILL would leave the servers running
        stdout, stderr = proc.communicate(timeout=60)
        pytest.fail("the tiny surge did not finish in 90 s:\n" + stdout[-3000:] + stderr[-3000:])
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert "consistency: OK" in stdout

    report = json.loads((out / "report.json").read_text())
    assert KEYS <= set(report)
    assert set(report["charts"]) == CHARTS
    for name in CHARTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    c = report["consistency"]
    assert c["ok"] is True and c["receipts_given"] > 0
    assert all(v == 0 for v in c["checks"].values()), c["checks"]
    assert c["applications_by_status"].get("received", 0) == 0
    assert report["drain"]["drained"] is True

    assert [r["phase"] for r in report["runs"]] == ["surge"]
    surge = report["surge"]
    assert surge["target_journeys_per_s"] == 4
    assert surge["stats"]["admitted"] > 0 and surge["stats"]["admitted_ms"]["p99"] is not None
    # Every kind of user took part: web and API applications, status checks, reviewers (who sign in
    # during the warm-up, so they are counted over the whole run).
    seen = {n.split()[0] for n in surge["by_name"]}
    assert {"web", "api", "status"} <= seen, surge["by_name"]
    assert report["runs"][0]["staff_sign_ins"]["sign_ins"] == 3
    assert len(report["timeseries"]["samples"]) > 0


@pytest.mark.parametrize(
    "capacity, expected, tried",
    [
        (50, 40, [10, 20, 40, 80, 56.6]),  # up by 2 until the first failure, then the midpoint (fails)
        (60, 56.6, [10, 20, 40, 80, 56.6]),  # ... (passes)
        (7, 5, [10, 5, 7.1]),  # the start is too much: down, then the midpoint
        (0.1, None, [10, 5, 2.5, 1.2, 0.6]),  # nothing passes within max_steps
    ],
)
def test_search_finds_the_highest_passing_rate_on_a_geometric_grid(capacity, expected, tried):
    from loadtests.surge.run import search_rates

    calls = []

    def passes(rate):
        calls.append(rate)
        return rate <= capacity

    assert search_rates(10, 2.0, 5, passes) == expected
    assert calls == tried


def test_search_stops_when_the_run_budget_is_spent():
    from loadtests.surge.run import BudgetSpent, search_rates

    calls = []

    def passes(rate):
        if len(calls) == 3:
            raise BudgetSpent()
        calls.append(rate)
        return True

    assert search_rates(10, 2.0, 10, passes) == 40
    assert calls == [10, 20, 40]

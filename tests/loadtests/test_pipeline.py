"""The end-to-end pipeline benchmark (loadtests/pipeline.py) run tiny, so that it cannot rot between real
runs: the whole chain on real processes (imports, eligibility, letters, wrk submissions, the worker's
verification, プッシュ型 settlement, the console's draft/approve/release, `kyufu bank verify`) and its final
key=value line. The test compares the counts itself rather than trusting the script's verdict. It proves
the tooling and the chain's consistency at this size, not any throughput figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

APPLICATIONS = 300
STAGE_KEYS = {
    "households",
    "residents",
    "import_residents_s",
    "eligibility_letter_s",
    "eligibility_push_s",
    "letters_issue_letter_s",
    "letters_letter",
    "accepted",
    "accepted_per_s",
    "submit_p99_ms",
    "decided",
    "verified",
    "decided_per_s",
    "verified_per_s",
    "verify_lag_p50_s",
    "verify_lag_p99_s",
    "push_applications",
    "consistency",
    "bank_verify",
    "rss_app_worker_mb",
    "rss_worker_mb",
    "rss_pg_backend_max_mb",
}
BATCH_KEYS = {
    "batch_id",
    "batch_payments",
    "batch_total_yen",
    "payable",
    "paid_once",
    "paid_wrongly",
    "payments_in_db",
    "payments_yen",
    "bank_records",
    "bank_total_yen",
    "draft_s",
    "draft_to_hash_s",
    "approve_s",
    "release_s",
    "approve_to_released_s",
    "other_p99_ms_during_release",
    "floor_s",
    "hash_ratio",
    "release_ratio",
}


def final_line(stdout: str) -> dict[str, str]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "no output"
    pairs = [kv.split("=", 1) for kv in lines[-1].split()]
    assert all(len(p) == 2 for p in pairs), f"the last line is not key=value pairs: {lines[-1][:300]}"
    return dict(pairs)


def test_tiny_pipeline_pays_every_verified_application_once_in_a_file_the_bank_accepts(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "loadtests/pipeline.py",
            "--households",
            "2000",
            "--applications",
            str(APPLICATIONS),
            "--rate",
            "200",
            "--no-fsync",
            "--trickle-baseline-s",
            "1",
            "--verify-timeout",
            "40",
            "--hash-timeout",
            "30",
            "--release-timeout",
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
        proc.terminate()  # the script stops its cluster on SIGTERM; a SIGKILL would leave the servers running
        stdout, stderr = proc.communicate(timeout=60)
        pytest.fail("the tiny pipeline did not finish in 90 s:\n" + stdout[-3000:] + stderr[-3000:])
    assert proc.returncode == 0, stdout[-4000:] + stderr[-3000:]
    f = final_line(stdout)

    batch_keys = {f"{kind}_{k}" for kind in ("letter", "push") for k in BATCH_KEYS}
    assert STAGE_KEYS | batch_keys <= set(f), sorted(STAGE_KEYS | batch_keys - set(f))
    assert "failed_stage" not in f
    assert f["consistency"] == "ok" and f["bank_verify"] == "ok"

    # Every 201 receipt is one application, of its own entitlement; each letter was sent once.
    assert int(f["submissions"]) == APPLICATIONS
    accepted = int(f["accepted"])
    assert accepted > 0 and accepted + int(f["refused_409"]) + int(f["other_status"]) == APPLICATIONS
    assert int(f["online_applications"]) == int(f["online_entitlements"]) == accepted
    assert int(f["decided"]) == accepted and int(f["verified"]) > 0

    for kind in ("letter", "push"):
        g = {k: f[f"{kind}_{k}"] for k in BATCH_KEYS}
        # Every verified application has exactly one payment in the released batch, and nothing else is in it.
        assert int(g["payable"]) > 0
        assert int(g["payable"]) == int(g["paid_once"]) == int(g["payments_in_db"]) == int(g["batch_payments"])
        assert int(g["paid_wrongly"]) == 0
        # The batch's total is the sum of its payments, and the bank's file says the same.
        assert int(g["payments_yen"]) == int(g["batch_total_yen"]) == int(g["bank_total_yen"])
        assert int(g["bank_records"]) == int(g["batch_payments"])
        assert float(g["floor_s"]) > 0 and float(g["draft_to_hash_s"]) > 0 and float(g["release_s"]) > 0
    assert int(f["letter_payable"]) == int(f["verified"])  # the letter program's payable are the verified online ones
    assert int(f["push_payable"]) == int(f["push_applications"])

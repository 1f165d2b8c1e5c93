"""`kyufu demo e2e` (devtools/e2e.py): the whole chain on the test servers, and the invariants it must keep."""

from __future__ import annotations

import hashlib
import shlex
import subprocess

from app.tenancy.transaction import tenant_transaction
from devtools.e2e import run_e2e
from payouts import zengin
from tests.conftest import run_cli

VERIFICATION_RESULTS = """
SELECT a.application_id, a.status, a.decided_at IS NOT NULL AS decided, a.reason_codes,
       (SELECT count(*) FROM outbox o WHERE o.municipality_code = a.municipality_code
          AND o.job_id = 'verify:' || a.municipality_code || ':' || a.application_id
          AND o.done_at IS NOT NULL) AS jobs_done
FROM applications a JOIN entitlements e USING (municipality_code, entitlement_id)
WHERE a.municipality_code = $1 AND e.program_id = $2
"""
BATCH = (
    "SELECT status, record_count, total_yen, approved_sha256, released_sha256, drafted_by, approved_by"
    " FROM payout_batches WHERE municipality_code = $1 AND batch_id = $2"
)
PAYMENTS_PER_ENTITLEMENT = """
SELECT entitlement_id, count(*) FILTER (WHERE status = 'paid') AS paid, count(*) AS payments
FROM payments WHERE municipality_code = $1 GROUP BY entitlement_id
"""
PAYMENTS = (
    "SELECT payment_id, status, return_reason, paid_on FROM payments WHERE municipality_code = $1 AND batch_id = $2"
)
# Every paper application and the form it came from: keyed by how many different clerks.
PAPER_APPLICATIONS = """
SELECT a.application_id, f.state,
       (SELECT count(DISTINCT p.keyed_by) FROM paper_entries p
        WHERE p.municipality_code = f.municipality_code AND p.form_id = f.form_id) AS clerks
FROM applications a JOIN entitlements e USING (municipality_code, entitlement_id)
LEFT JOIN paper_forms f ON f.municipality_code = a.municipality_code AND f.application_id = a.application_id
                       AND f.state = 'submitted'
WHERE a.municipality_code = $1 AND e.program_id = $2 AND a.channel = 'paper'
"""
PAID_ENTITLEMENTS = (
    "SELECT count(*) FROM entitlements WHERE municipality_code = $1 AND program_id = $2 AND status = 'paid'"
)


async def test_e2e_chain_keeps_the_invariants(settings, servers, app_pool, tmp_path, subprocess_env):
    """Every application decided once; the released file is the approved bytes; returns returned, rest paid once."""
    out = tmp_path / "out"
    report = await run_e2e(settings, 60, out)
    code, [batch_id] = report.municipality_code, report.batch_ids

    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        apps = await conn.fetch(VERIFICATION_RESULTS, code, report.program_id)
        batch = await conn.fetchrow(BATCH, code, batch_id)
        per_entitlement = await conn.fetch(PAYMENTS_PER_ENTITLEMENT, code)
        payments = await conn.fetch(PAYMENTS, code, batch_id)
        paid_entitlements = await conn.fetchval(PAID_ENTITLEMENTS, code, report.program_id)
        on_paper = await conn.fetch(PAPER_APPLICATIONS, code, report.program_id)

    # Most households applied; each application has exactly one verification result (decided, its one
    # outbox job done), and review left nothing waiting.
    assert len(apps) == sum(report.applications_submitted.values()) >= report.entitlements // 2
    assert all(a["decided"] and a["status"] != "received" and a["jobs_done"] == 1 for a in apps)
    assert not [a for a in apps if a["status"] == "needs_review"]
    assert report.verification.get("needs_review", 0) == sum(report.reviewed.values()) > 0
    # Paper went through the console's own path (app/intake/paper.py): each paper application is a form
    # two different clerks keyed alike.
    assert len(on_paper) == report.applications_submitted["paper"] == report.paper["submitted"] >= 1
    assert all(r["state"] == "submitted" and r["clerks"] == 2 for r in on_paper)

    # Four eyes, and the released file decrypts with Debian's age to exactly the approved bytes.
    assert batch["status"] == "released" and batch["drafted_by"] != batch["approved_by"]
    assert batch["approved_sha256"] == batch["released_sha256"] == report.approved_sha256
    plain = subprocess.run(
        ["age", "-d", "-i", str(report.identity_path), str(report.age_path)], capture_output=True, check=True
    ).stdout
    assert hashlib.sha256(plain).hexdigest() == report.approved_sha256
    parsed = zengin.parse(plain)
    assert (
        (parsed.count, parsed.total_yen)
        == (batch["record_count"], batch["total_yen"])
        == (report.record_count, report.total_yen)
    )
    assert len(parsed.payments) == len(payments)

    # Each entitlement paid at most once; the returned payments are 'returned' with the bank's reason,
    # every other payment of the batch is paid on the transfer date.
    assert all(r["paid"] <= 1 and r["payments"] == 1 for r in per_entitlement)
    returned = [p for p in payments if p["status"] == "returned"]
    assert len(returned) == sum(report.returned.values()) >= 1 and all(p["return_reason"] for p in returned)
    rest = [p for p in payments if p["status"] != "returned"]
    assert all(p["status"] == "paid" and p["paid_on"] == report.transfer_date for p in rest)
    assert len(rest) == report.paid == paid_entitlements
    # The demo's 返還 case: an open debt on one paid payment, partly repaid (devtools/demo_recovery.py).
    assert report.recovery_case is not None and "outstanding" in report.recovery_case

    # What a person is told to run on DIR works: the check passes, and the bank's ledger (which accepted the
    # file during the run) refuses to accept it a second time.
    ok = run_cli(subprocess_env, *shlex.split(report.verify_command)[1:])
    assert ok.returncode == 0, ok.stderr
    again = run_cli(subprocess_env, *shlex.split(report.accept_again_command)[1:])
    assert again.returncode == 2 and "already_accepted" in again.stderr, again.stderr
    assert {p.name for p in out.iterdir()} >= {
        report.age_path.name,
        report.manifest_path.name,
        report.identity_path.name,
        report.public_key_path.name,
        report.ledger_path.name,
    }

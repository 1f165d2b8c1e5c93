"""WCAG 2.1 A/AA on the console beyond sign-in, checked by the vendored axe-core in Debian's Chromium at
phone and desktop sizes (tests/intake/test_accessibility.py's `violations`): the dashboard, 支給状況, the
審査 queue and a receipt search that finds nothing, an application and its refused decision, the batch list
and a released batch, the draft page, 振込不能, 組戻し・返還, 重複の疑い, and the admin's staff and audit
pages. The world behind them is real: a batch drafted, prepared, approved, released and reconciled (one
振込不能) by the domain code and the worker's jobs."""

from __future__ import annotations

import asyncpg
import pytest

from app.db import create_app_pool
from app.tenancy.transaction import tenant_transaction
from payouts import batches, reconcile
from payouts.returns_csv import ReturnRow, write_returns_csv
from tests.browser import browser, in_thread, page  # noqa: F401  (fixtures)
from tests.intake.test_accessibility import violations
from tests.jobs import draft, run_payout_jobs
from tests.live_server import live_server  # noqa: F401
from tests.staff.conftest import PASSWORD, add_application, add_bank_settings, build_world, make_staff

pytestmark = pytest.mark.browser


@pytest.fixture
def world(municipality, settings, transfer_date, tmp_path):
    """Two applications waiting for 審査, a released, reconciled batch of two more (one 振込不能, one paid)
    and a drafted batch of a fifth, waiting for approval; "all" holds every role (approver and admin: with
    TOTP) and drafted neither batch."""

    async def make():
        code = await municipality("アクセシビリティ区")
        conn = await asyncpg.connect(settings.database_url)
        try:
            w = await build_world(conn, code, settings, applications=2, status="needs_review")
            async with tenant_transaction(conn, code):
                await add_bank_settings(conn, code)
                await make_staff(conn, w, "all", ["reviewer", "drafter", "approver", "admin"])
                for _ in range(2):
                    await add_application(conn, w, status="approved", reasons=())
        finally:
            await conn.close()
        pool = await create_app_pool(settings, min_size=1, max_size=2)
        try:
            batch_id = await draft(pool, w, transfer_date)
            [sha] = await run_payout_jobs(pool, settings, code)
            async with tenant_transaction(pool, code) as conn:
                await batches.approve_batch(conn, settings, code, w.staff["appr"], batch_id, sha)
                await batches.release_batch(conn, settings, code, w.staff["appr"], batch_id)
            await run_payout_jobs(pool, settings, code)
            async with tenant_transaction(pool, code) as conn:
                first = await conn.fetchval("SELECT min(payment_id) FROM payments WHERE batch_id = $1", batch_id)
            returns = write_returns_csv([ReturnRow(first, "2", "取引なし")], tmp_path / "returns.csv")
            await reconcile.import_returns(pool, code, returns, batch_id=batch_id)
            async with tenant_transaction(pool, code) as conn:
                await add_application(conn, w, status="approved", reasons=())
                paid = await conn.fetchval("SELECT max(payment_id) FROM payments WHERE status = 'paid'")
            draft_id = await draft(pool, w, transfer_date)  # a second batch, waiting for approval
            await run_payout_jobs(pool, settings, code)
        finally:
            await pool.close()
        return w, batch_id, draft_id, paid

    return in_thread(make())


def test_the_console_pages_have_no_wcag21_aa_violations_at_phone_and_desktop_size(live_server, world, page):  # noqa: F811
    w, batch_id, draft_id, paid = world
    base = live_server + "/staff"
    page.goto(base + "/login")
    page.fill("#municipality_code", w.code)
    page.fill("#login", "all")
    page.fill("#password", PASSWORD)
    page.fill("#totp", w.totp_now("all"))
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    found = violations(page, "staff-dashboard")
    for name, path in (
        ("staff-progress", "/progress"),
        ("staff-queue", "/review"),
        ("staff-batches", "/batches"),
        ("staff-batch", f"/batches/{batch_id}"),
        ("staff-batch-draft", f"/batches/{draft_id}"),
        ("staff-draft", f"/programs/{w.program_id}/draft"),
        ("staff-reconciliation", "/reconciliation"),
        ("staff-recovery", "/recovery"),
        ("staff-recovery-case", f"/payments/{paid}/recovery"),
        ("staff-duplicates", "/duplicates"),
        ("staff-admin-staff", "/admin/staff"),
        ("staff-admin-audit", "/admin/audit"),
        ("staff-admin-bank", "/admin/bank"),
        ("staff-application", f"/applications/{w.applications[0]}"),
    ):
        page.goto(base + path)
        assert page.locator("h1").count() == 1, path
        found += violations(page, name)
    # Error states: a decision refused on the application page, a receipt number that matches nothing, a
    # send-back without its reason, an id that is not there; and the confirmation a cancellation asks for.
    page.check("input[name=decision][value=reject]")
    page.click("text=判定を確定する")
    page.wait_for_selector("#console-error")
    found += violations(page, "staff-application-error")
    page.goto(base + "/review")
    page.fill("input[name=receipt_no]", "999-9999-9999")
    page.locator("input[name=receipt_no]").press("Enter")
    page.wait_for_selector("#console-error")
    found += violations(page, "staff-queue-search-miss")
    page.goto(f"{base}/batches/{draft_id}")
    page.click("text=差し戻す")
    page.wait_for_selector("#console-error")
    found += violations(page, "staff-batch-reject-error")
    page.click("text=起案を取り消す")
    page.wait_for_selector("#confirm-form")
    found += violations(page, "staff-confirm")
    assert page.goto(base + "/applications/999999999").status == 404
    found += violations(page, "staff-not-found")
    page.goto(base + "/progress")
    page.click("summary >> text=日別の数値（表）")  # the table behind the charts, opened
    found += violations(page, "staff-progress-table")
    assert found == [], "\n".join(found)

"""The console in a real browser (Debian's Chromium): reviewer clears the queue → drafter drafts → the
worker prepares the draft and hashes the file (the page says 起案処理中 meanwhile) → approver approves →
送信 → the worker releases it (送信処理中 meanwhile)."""

from __future__ import annotations

import asyncpg
import pyotp
import pytest

from app.db import create_app_pool
from app.tenancy.transaction import tenant_transaction
from tests.browser import browser, in_thread, page, screenshot  # noqa: F401  (fixtures)
from tests.jobs import run_payout_jobs
from tests.live_server import live_server  # noqa: F401
from tests.staff.conftest import PASSWORD, add_bank_settings, build_world

pytestmark = pytest.mark.browser


@pytest.fixture
def world(municipality, settings):
    async def make():
        code = await municipality()
        conn = await asyncpg.connect(settings.database_url)
        try:
            w = await build_world(conn, code, settings, applications=2, status="needs_review")
            async with tenant_transaction(conn, code):
                await add_bank_settings(conn, code)
            return w
        finally:
            await conn.close()

    return in_thread(make())


def _login(page, base, code, login, totp=""):
    page.goto(base + "/staff/login")
    page.fill("#municipality_code", code)
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    if totp:
        page.fill("#totp", totp)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/staff/")


def _logout(page):
    page.click("text=ログアウト")


def _worker(settings, code) -> list[str]:
    """What `kyufu worker` does with the municipality's payout jobs (the live server has no worker)."""

    async def run():
        pool = await create_app_pool(settings, min_size=1, max_size=2)
        try:
            return await run_payout_jobs(pool, settings, code)
        finally:
            await pool.close()

    return in_thread(run())


def test_reviewer_drafter_approver_release(live_server, world, page, settings):
    base, code = live_server, world.code
    _login(page, base, code, "rev")
    assert "審査待ちの申請" in page.content()
    page.click("nav >> text=審査")
    screenshot(page, "staff-01-queue")
    assert " JST" in page.locator("table").inner_text()  # times are Japan time, labelled
    for i, _ in enumerate(world.applications):
        page.click("a.review-link >> nth=0")
        assert "ﾔﾏﾀﾞ ﾀﾛｳ" in page.content() and "山田 太郎" in page.content()
        screenshot(page, "staff-02-review")
        if i == 0:  # a rejection without its reason: the same page, the message, the choice kept
            page.check("input[name=decision][value=reject]")
            page.click("text=判定を確定する")
            assert "却下の理由を入力してください" in page.locator("#console-error").inner_text()
            assert page.locator("input[name=decision][value=reject]").is_checked()
            assert "ﾔﾏﾀﾞ ﾀﾛｳ" in page.content()
            page.check("input[name=decision][value=approve]")
        page.click("text=判定を確定する")
        page.wait_for_url(base + "/staff/review")
        assert "承認しました" in page.locator("#flash").inner_text()
    assert page.locator("#queue-empty").is_visible()
    _logout(page)

    _login(page, base, code, "draft")
    page.goto(f"{base}/staff/programs/{world.program_id}/draft")
    assert "2 件" in page.locator("#draft-count").inner_text()
    assert "200,000円" in page.locator("#draft-total").inner_text()
    screenshot(page, "staff-03-draft")
    page.click("text=この内容で起案する")
    page.wait_for_url(f"{base}/staff/batches/*")
    assert "起案処理中" in page.locator("#batch-status").inner_text()
    assert "作成中（0 / 2 件）" in page.locator("#preparing").inner_text()
    batch_url = page.url
    _logout(page)
    [prepared, sha] = _worker(settings, code)  # the worker prepares the draft's payments, then hashes it
    assert prepared == "prepared 2"

    _login(page, base, code, "appr", pyotp.TOTP(world.totp["appr"]).now())
    page.goto(batch_url)
    assert page.locator("#file-sha256").inner_text() == sha
    assert len(sha) == 64
    screenshot(page, "staff-04-approve")
    page.click("#approve")
    page.wait_for_url(batch_url)
    assert "承認" in page.locator("#batch-status").inner_text() and sha in page.content()
    page.click("#release")
    page.wait_for_url(batch_url)
    assert "送信処理中" in page.locator("#releasing").inner_text() and page.locator("#release").count() == 0
    [outcome] = _worker(settings, code)
    assert outcome.startswith("released ")
    page.reload()
    assert "送信済" in page.locator("#batch-status").inner_text()
    assert page.locator("#release").count() == 0
    screenshot(page, "staff-05-released")

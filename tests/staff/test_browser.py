"""The console in a real browser (Debian's Chromium): reviewer clears the queue → drafter drafts →
approver approves → release."""

from __future__ import annotations

import asyncpg
import pyotp
import pytest

from app.tenancy.transaction import tenant_transaction
from tests.browser import browser, in_thread, page, screenshot  # noqa: F401  (fixtures)
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


def test_reviewer_drafter_approver_release(live_server, world, page):
    base, code = live_server, world.code
    _login(page, base, code, "rev")
    assert "審査待ちの申請" in page.content()
    page.click("nav >> text=審査")
    screenshot(page, "staff-01-queue")
    for _ in world.applications:
        page.click("a.review-link >> nth=0")
        assert "ﾔﾏﾀﾞ ﾀﾛｳ" in page.content() and "山田 太郎" in page.content()
        screenshot(page, "staff-02-review")
        page.click("text=判定を確定する")
        page.wait_for_url(base + "/staff/review")
    assert page.locator("#queue-empty").is_visible()
    _logout(page)

    _login(page, base, code, "draft")
    page.goto(f"{base}/staff/programs/{world.program_id}/draft")
    assert "2 件" in page.locator("#draft-count").inner_text()
    assert "200,000円" in page.locator("#draft-total").inner_text()
    screenshot(page, "staff-03-draft")
    page.click("text=この内容で起案する")
    page.wait_for_url(f"{base}/staff/batches/*")
    assert "承認待ち" in page.locator("#batch-status").inner_text()
    batch_url = page.url
    _logout(page)

    _login(page, base, code, "appr", pyotp.TOTP(world.totp["appr"]).now())
    page.goto(batch_url)
    sha = page.locator("#file-sha256").inner_text()
    assert len(sha) == 64
    screenshot(page, "staff-04-approve")
    page.click("#approve")
    page.wait_for_url(batch_url)
    assert "承認" in page.locator("#batch-status").inner_text() and sha in page.content()
    page.click("#release")
    page.wait_for_url(batch_url)
    assert "送信済" in page.locator("#batch-status").inner_text()
    assert page.locator("#release").count() == 0
    screenshot(page, "staff-05-released")

"""The resident's flow in a real browser (Debian's Chromium, phone-sized), with a screenshot of each page."""

from __future__ import annotations

import pytest

from app.tenancy.transaction import tenant_transaction
from tests.browser import in_thread, run_with_connection, screenshot
from tests.intake.helpers import make_letters

pytestmark = pytest.mark.browser


def _letter(settings, code):
    return run_with_connection(lambda conn: make_letters(conn, settings.master_key_bytes, code), settings)[0]


def _applications(settings, code, entitlement_id) -> int:
    async def count(conn):
        async with tenant_transaction(conn, code, readonly=True) as c:
            return await c.fetchval("SELECT count(*) FROM applications WHERE entitlement_id = $1", entitlement_id)

    return run_with_connection(count, settings)


@pytest.fixture
def code(municipality):
    return in_thread(municipality("テスト市"))


def test_whole_flow_once_despite_double_click_and_back_resubmit(live_server, settings, code, page):
    letter = _letter(settings, code)
    base = f"{live_server}/m/{code}"
    page.goto(base + "/")
    assert "物価高騰対策給付金" in page.content()
    screenshot(page, "01-start")

    page.click("text=確認書番号でログインして申請する")
    page.fill("#access_code", letter.access_code[:4] + "-" + letter.access_code[4:].lower())
    page.fill("#pin", letter.pin)
    screenshot(page, "02-signin")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/household")
    assert "100,000円" in page.content() and "山田 花子" in page.content()
    screenshot(page, "03-household")

    page.click("text=振込口座の入力へ進む")
    page.fill("#bank_code", "みずほ")
    page.fill("#branch_code", "001")
    page.fill("#account_number", "1234567")
    page.fill("#holder_kana", "山田太郎")
    page.click("button[type=submit]")
    error = page.locator(".error-summary")
    assert "漢字は使えません" in error.inner_text()
    screenshot(page, "04-bank-kanji-error")

    page.fill("#holder_kana", "キャノン　タロー")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/confirm")
    content = page.content()
    assert "ｷﾔﾉﾝ ﾀﾛ-" in content and "みずほ" in content and page.locator("#kana-changes").is_visible()
    screenshot(page, "05-confirm")

    page.dblclick("#submit")
    page.wait_for_url(base + "/receipt")
    receipt = page.locator("#receipt-no").inner_text()
    assert len(receipt.replace("-", "")) == 11
    screenshot(page, "06-receipt")
    assert _applications(settings, code, letter.entitlement_id) == 1

    # Back to the confirmation page: the same receipt. Then another account on the bank form: not dropped
    # silently, but the existing application named and 口座変更の届出 offered; still one application.
    page.go_back()
    page.wait_for_url(base + "/receipt")
    assert page.locator("#receipt-no").inner_text() == receipt
    page.goto(base + "/bank")
    page.fill("#bank_code", "0001")
    page.fill("#branch_code", "001")
    page.fill("#account_number", "7654321")
    page.fill("#holder_kana", "ヤマダ タロウ")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/account-change")
    assert receipt in page.locator("#already-applied").inner_text()
    assert page.locator("#change-account").is_visible()
    screenshot(page, "06b-already-applied-account-change")
    assert _applications(settings, code, letter.entitlement_id) == 1

    page.goto(base + "/status")
    assert page.locator("#status").inner_text() == "受付済み"
    screenshot(page, "07-status")


def test_five_wrong_pins_lock_the_code(live_server, settings, code, page):
    letter = _letter(settings, code)
    base = f"{live_server}/m/{code}"
    page.goto(base + "/signin")
    for attempt in range(5):
        page.fill("#access_code", letter.access_code)
        page.fill("#pin", "999999" if letter.pin != "999999" else "888888")
        page.click("button[type=submit]")
        text = page.locator(".error-summary").inner_text()
        # Four typos get the generic message; the fifth locks the code, and the page says so.
        assert ("正しくありません" in text) == (attempt < 4) and ("停止しています" in text) == (attempt == 4)
    page.fill("#access_code", letter.access_code)
    page.fill("#pin", letter.pin)
    page.click("button[type=submit]")
    text = page.locator(".error-summary").inner_text()
    assert "停止しています" in text and "時" in text and "テスト市の給付金担当窓口" in text
    assert page.evaluate("document.activeElement.id") == "signin-failed"
    assert page.url.endswith("/signin")
    screenshot(page, "08-signin-locked")


def test_bank_typed_by_name_is_resolved_on_the_server_with_a_choice(live_server, settings, code, page):
    """The server (not the optional type-ahead script) turns a name into candidates to choose from."""
    letter = _letter(settings, code)
    base = f"{live_server}/m/{code}"
    if True:
        page.goto(base + "/signin")
        page.fill("#access_code", letter.access_code)
        page.fill("#pin", letter.pin)
        page.click("button[type=submit]")
        page.goto(base + "/bank")
        page.fill("#bank_code", "三菱")
        page.fill("#account_number", "1234567")
        page.fill("#holder_kana", "ヤマダ タロウ")
        page.click("button[type=submit]")
        assert "候補の中から選んでください" in page.content()
        screenshot(page, "09-bank-choose")
        page.check("input[name=bank_code][value='0005']")
        page.fill("#branch_code", "001")
        page.click("button[type=submit]")
        page.wait_for_url(base + "/confirm")
        assert "三菱ＵＦＪ" in page.content()


def test_a_push_resident_declines_on_a_phone(live_server, settings, code, page):
    """プッシュ型: the start page shows the 辞退 deadline; signed in, 辞退 is one confirmation away; afterwards
    the status says 辞退済み and offers nothing to apply for."""

    async def push_letter(conn):
        async with tenant_transaction(conn, code) as c:
            program_id = await c.fetchval(
                "INSERT INTO programs (municipality_code, name, base_date, unit, amount_yen, payment_mode,"
                " decline_deadline) VALUES ($1, 'プッシュ型給付金', '2026-01-01', 'household', 100000, 'push',"
                " current_date + 7) RETURNING program_id",
                code,
            )
        [made] = await make_letters(conn, settings.master_key_bytes, code, program_id=program_id)
        return made

    letter = run_with_connection(push_letter, settings)
    base = f"{live_server}/m/{code}"
    page.goto(base + "/")
    assert "辞退期限" in page.content()
    screenshot(page, "20-push-start")
    page.goto(base + "/signin")
    page.fill("#access_code", letter.access_code)
    page.fill("#pin", letter.pin)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/household")
    page.click("#decline-link")
    page.wait_for_url(base + "/decline")
    screenshot(page, "21-push-decline-confirm")
    page.click("#decline")
    page.wait_for_url(base + "/decline")
    assert "辞退済み" in page.locator("#decline-result").inner_text()
    screenshot(page, "22-push-declined")
    page.goto(base + "/status")
    assert page.locator("#status").inner_text() == "辞退済み"
    assert "申請へ進む" not in page.content()

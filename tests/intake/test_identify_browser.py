"""Identification without a letter in a real browser (Debian's Chromium, phone-sized), to the receipt,
with a screenshot of each page."""

from __future__ import annotations

import pytest

from app.tenancy.transaction import tenant_transaction
from tests.browser import in_thread, run_with_connection, screenshot
from tests.intake.identify_world import make_world

pytestmark = pytest.mark.browser


def test_no_letter_path_from_the_start_page_to_the_receipt(live_server, settings, municipality, page):
    code = in_thread(municipality("千代田区"))
    world = run_with_connection(lambda conn: make_world(conn, settings.master_key_bytes, code), settings)
    base = f"{live_server}/m/{code}"
    page.goto(base + "/")
    screenshot(page, "identify-01-start")
    page.click("text=確認書をお持ちでない方（申請型）")
    page.wait_for_url(f"{base}/identify?program={world.program_id}")

    # A wrong address first: the one generic message, what was typed kept for correcting.
    page.fill("#family_kana", "やまだ")
    page.fill("#given_kana", "ﾀﾛｳ")
    page.fill("#birth_year", "１９８０")
    page.fill("#birth_month", "4")
    page.fill("#birth_day", "1")
    page.fill("#address", "千代田区九段南1-2-4")
    screenshot(page, "identify-02-form")
    page.click("button[type=submit]")
    assert "確認できませんでした" in page.locator("#identify-failed").inner_text()
    assert page.input_value("#family_kana") == "やまだ"
    screenshot(page, "identify-03-failed")

    page.fill("#address", "東京都千代田区九段南一丁目２番３号")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/household")
    assert "70,000円" in page.content()
    screenshot(page, "identify-04-household")

    page.click("text=振込口座の入力へ進む")
    page.fill("#bank_code", "0001")
    page.fill("#branch_code", "001")
    page.fill("#account_number", "1234567")
    page.fill("#holder_kana", "ヤマダ タロウ")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/confirm")
    screenshot(page, "identify-05-confirm")
    page.dblclick("#submit")
    page.wait_for_url(base + "/receipt")
    receipt = page.locator("#receipt-no").inner_text()
    assert len(receipt.replace("-", "")) == 11
    screenshot(page, "identify-06-receipt")

    async def stored(conn):
        async with tenant_transaction(conn, code, readonly=True) as c:
            return await c.fetch(
                "SELECT receipt_no, identification FROM applications WHERE entitlement_id = $1",
                world.entitlements["H1"],
            )

    rows = run_with_connection(stored, settings)
    assert [(r["receipt_no"], r["identification"]) for r in rows] == [(receipt.replace("-", ""), "registry_match")]

    page.goto(base + "/status")
    assert page.locator("#status").inner_text() == "受付済み"
    screenshot(page, "identify-07-status")

"""A resident switches the site to English and applies in English (issue 18): the choice is one click on
every page, survives navigation and sign-in, and the English pages pass the same WCAG 2.1 AA check."""

from __future__ import annotations

import re

import pytest

from tests.browser import in_thread, screenshot
from tests.intake.test_accessibility import _letter, violations

pytestmark = pytest.mark.browser

JAPANESE_SENTENCE = re.compile(r"[\u3040-\u309f\u4e00-\u9fff]{6,}")  # hiragana/kanji runs: untranslated text


@pytest.fixture
def code(municipality):
    return in_thread(municipality("えいご市"))


def _english(page) -> None:
    """The page is in English: what stays Japanese is data (the program's and municipality's names, which
    have no English in the registry) and the Japanese term given in brackets for what to look for."""
    assert page.get_attribute("html", "lang") == "en"
    text = page.inner_text("main").replace("物価高騰対策給付金", "")
    text = re.sub(r"\([^)]*\)", "", text)
    assert not JAPANESE_SENTENCE.search(text), JAPANESE_SENTENCE.findall(text)


def test_a_resident_applies_in_english_and_the_choice_is_kept(live_server, settings, code, page):
    letter = _letter(settings, code)
    base = f"{live_server}/m/{code}"
    found: list[str] = []
    page.goto(base + "/")  # the browser asks for Japanese (ja-JP): the site starts in Japanese
    assert page.get_attribute("html", "lang") == "ja"
    assert page.inner_text("#lang-switch") == "English"
    page.click("#lang-switch")
    page.wait_for_url(base + "/")
    _english(page)
    assert page.inner_text("h1") == "About the benefits"
    found += violations(page, "en-start")

    page.click("text=Sign in with your letter number to apply")
    page.wait_for_url(base + "/signin")
    _english(page)
    assert page.inner_text("#lang-switch") == "日本語"
    found += violations(page, "en-signin")
    page.fill("#access_code", letter.access_code)
    page.fill("#pin", "000000" if letter.pin != "000000" else "111111")
    page.click("button[type=submit]")
    page.wait_for_selector("#signin-failed")
    assert "The letter number or the PIN is not correct" in page.inner_text("#signin-failed")
    found += violations(page, "en-signin-error")

    page.fill("#access_code", letter.access_code)
    page.fill("#pin", letter.pin)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/household")
    _english(page)
    assert "Household and amount" in page.inner_text("h1")
    assert "Head of household" in page.inner_text("table")
    found += violations(page, "en-household")

    page.click("text=Continue to the bank account")
    page.wait_for_url(base + "/bank")
    _english(page)
    assert "katakana" in page.inner_text("label[for=holder_kana]")
    page.click("button[type=submit]")  # empty: every error at once, in English
    page.wait_for_selector("#error-summary")
    summary = page.inner_text("#error-summary")
    assert "Please check what you entered" in summary and "Enter the branch code." in summary
    assert page.evaluate("document.activeElement.id") == "error-summary"
    found += violations(page, "en-bank-errors")
    page.fill("#bank_code", "0001")
    page.fill("#branch_code", "001")
    page.fill("#account_number", "1234567")
    page.fill("#holder_kana", "ヤマダ タロウ")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/confirm")
    _english(page)
    assert "Ordinary (普通)" in page.inner_text("dl.summary")
    found += violations(page, "en-confirm")
    page.click("#submit")
    page.wait_for_url(base + "/receipt")
    _english(page)
    assert page.inner_text("h1") == "Application received"
    assert len(page.locator("#receipt-no").inner_text().replace("-", "")) == 11
    found += violations(page, "en-receipt")
    screenshot(page, "i18n-en-receipt")

    page.click("a:text-is('Check the status of your application')")
    page.wait_for_url(base + "/status")
    _english(page)
    assert page.inner_text("#status") in ("Received", "Under review")
    found += violations(page, "en-status")

    # Back to Japanese from any page, and the choice sticks to that too.
    page.click("#lang-switch")
    page.wait_for_url(base + "/status")
    assert page.get_attribute("html", "lang") == "ja" and page.inner_text("h1") == "申請の状況"
    page.goto(base + "/")
    assert page.inner_text("h1") == "給付金のご案内"
    assert found == [], "\n".join(found)

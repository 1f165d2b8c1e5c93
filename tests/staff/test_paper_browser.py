"""Keying paper forms in a real browser (Debian's Chromium), with the keyboard alone: the box page's first
focus is 次の申請書を入力する, the entry page's is the first field of the form, Enter moves field to field in
the paper's order, Space ticks the attachments, and Enter on the last field saves and opens the next form.
Two clerks key the same form this way and it is submitted; the entry page has no WCAG 2.1 AA violation."""

from __future__ import annotations

import asyncpg
import pytest

from app.tenancy.transaction import tenant_transaction
from tests.browser import browser, in_thread, page, screenshot  # noqa: F401  (fixtures)
from tests.intake.test_accessibility import violations
from tests.live_server import live_server  # noqa: F401
from tests.staff.conftest import PASSWORD
from tests.staff.paper_world import key, paper_world, receive

pytestmark = pytest.mark.browser


@pytest.fixture
def paper(municipality, settings):
    async def make():
        conn = await asyncpg.connect(settings.database_url)
        try:
            w, program_id, households = await paper_world(conn, municipality, settings, households=2)
            forms = await receive(conn, w, program_id, 2)
            return w, households, forms
        finally:
            await conn.close()

    return in_thread(make())


def _sign_in(tab, base, code, login):
    tab.goto(base + "/staff/login")
    tab.fill("#municipality_code", code)
    tab.fill("#login", login)
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(base + "/staff/")


def focused(tab) -> str:
    return tab.evaluate("document.activeElement ? (document.activeElement.id || document.activeElement.name) : ''")


def wait_for_focus(tab, element_id: str) -> None:
    tab.wait_for_function("id => document.activeElement && document.activeElement.id === id", arg=element_id)


def key_with_keyboard(tab, household) -> None:
    """One form, keyed with the keyboard only, starting with the focus in the first field."""
    form = household.form()
    wait_for_focus(tab, "identifier")  # autofocus is applied at the first rendering after load
    for field in ("identifier", "members", "bank_code", "branch_code", "account_type", "account_number"):
        assert focused(tab) == field, (field, focused(tab))
        tab.keyboard.type(form[field])
        tab.keyboard.press("Enter")
    for field in ("yucho_kigou", "yucho_bangou"):  # blank for a bank account: Enter passes them
        assert focused(tab) == field
        tab.keyboard.press("Enter")
    assert focused(tab) == "holder_kana"
    tab.keyboard.type(form["holder_kana"])
    tab.keyboard.press("Enter")
    for box in ("id_document", "account_document"):
        assert focused(tab) == box
        tab.keyboard.press("Space")
        tab.keyboard.press("Enter")
    for item in ("identifier", "members", "account", "holder"):  # nothing illegible
        assert focused(tab) == f"illegible-{item}"
        tab.keyboard.press("Enter")
    assert focused(tab) == "save"
    tab.keyboard.press("Enter")


def test_two_clerks_key_a_form_with_the_keyboard_alone_and_it_is_submitted(live_server, paper, page, settings):  # noqa: F811
    w, (h, g), forms = paper
    base = live_server
    for login in ("keyer1", "keyer2"):
        _sign_in(page, base, w.code, login)
        page.goto(f"{base}/staff/paper")
        page.click("#boxes a")  # the box (navigation to it is not the keying under test)
        wait_for_focus(page, "key-next")
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/staff/paper/forms/{forms[0]}/entry*")
        if login == "keyer1":
            found = violations(page, "staff-paper-entry")
            assert found == [], "\n".join(found)
            screenshot(page, "staff-paper-entry")
        key_with_keyboard(page, h)
        page.wait_for_url(f"**/staff/paper/forms/{forms[1]}/entry?prev={forms[0]}")
        assert "通番 1" in page.locator("#previous-outcome").inner_text()
        key_with_keyboard(page, g)
        page.wait_for_url("**/staff/paper/boxes/*done=1*")
        if login == "keyer2":
            found = violations(page, "staff-paper-box")
            assert found == [], "\n".join(found)
        page.click("text=ログアウト")
    screenshot(page, "staff-paper-box-keyed")

    async def states():
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with tenant_transaction(conn, w.code):
                return await conn.fetch(
                    "SELECT f.state, a.channel FROM paper_forms f LEFT JOIN applications a"
                    " ON a.municipality_code = f.municipality_code AND a.application_id = f.application_id"
                    " WHERE f.municipality_code = $1 ORDER BY f.seq",
                    w.code,
                )
        finally:
            await conn.close()

    assert [(r["state"], r["channel"]) for r in in_thread(states())] == [("submitted", "paper")] * 2


@pytest.fixture
def mismatch(municipality, settings):
    """A form two clerks keyed differently (the account number), waiting for a third."""

    async def make():
        conn = await asyncpg.connect(settings.database_url)
        try:
            w, program_id, (h, _) = await paper_world(conn, municipality, settings, households=2)
            [form_id] = await receive(conn, w, program_id, 1)
            await key(conn, w, "keyer1", form_id, h.form())
            await key(conn, w, "keyer2", form_id, h.form(account_number="7654321"))
            return w, h, form_id
        finally:
            await conn.close()

    return in_thread(make())


def test_the_third_clerk_decides_a_mismatch_with_the_keyboard(live_server, mismatch, page, settings):  # noqa: F811
    w, h, form_id = mismatch
    _sign_in(page, live_server, w.code, "rev")
    page.goto(f"{live_server}/staff/paper/forms/{form_id}/resolve")
    assert "不一致" in page.locator("#entries").inner_text()
    found = violations(page, "staff-paper-resolve")
    assert found == [], "\n".join(found)
    screenshot(page, "staff-paper-resolve")
    # The fields both clerks agreed on are filled in; the account number is not, and has the focus after
    # Enter from the fields before it.
    assert page.input_value("#bank_code") == "0001" and page.input_value("#account_number") == ""
    wait_for_focus(page, "identifier")
    for _ in range(5):  # identifier, members, bank, branch, type: already filled, Enter passes them
        page.keyboard.press("Enter")
    wait_for_focus(page, "account_number")
    page.keyboard.type(h.form()["account_number"])
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # ゆうちょ 記号・番号: blank
    wait_for_focus(page, "holder_kana")
    for _ in range(7):  # holder (filled), both attachments (ticked), four illegible items
        page.keyboard.press("Enter")
    wait_for_focus(page, "save")
    page.keyboard.press("Enter")
    page.wait_for_url("**/staff/paper/boxes/*")
    assert "裁定を保存しました" in page.content() and "受付済" in page.locator("#form-1").inner_text()

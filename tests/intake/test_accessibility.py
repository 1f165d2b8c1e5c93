"""WCAG 2.1 A/AA on the resident's journey, checked by axe-core in Debian's Chromium at phone and desktop
sizes (error states, confirmation and receipt included), and the whole journey done with the keyboard only.

axe-core is vendored in tests/data/axe-core/ (version, licence and hash there). The pages' CSP allows no
inline script, so axe is evaluated through the DevTools protocol (page.evaluate), which CSP does not
govern; nothing is added to the pages themselves.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.browser import in_thread, run_with_connection, screenshot
from tests.intake.helpers import make_letters

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[1] / "data" / "axe-core" / "axe.min.js"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"  # axe-core 4.14.1
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

RUN = """tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
  .then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                     nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))"""


def _axe_source() -> str:
    data = AXE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == AXE_SHA256, "tests/data/axe-core/axe.min.js is not the pinned file"
    return data.decode()


def violations(page, name: str) -> list[str]:
    """axe's WCAG 2.1 A/AA violations of the page as it is now, at phone and desktop width."""
    found = []
    for size_name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(_axe_source())
        for v in page.evaluate(RUN, TAGS):
            found.append(f"{name} ({size_name}): {v['id']} [{v['impact']}] {v['help']} at {v['nodes']}")
        screenshot(page, f"a11y-{name}-{size_name}")
    page.set_viewport_size(PHONE)
    return found


def _letter(settings, code):
    return run_with_connection(lambda conn: make_letters(conn, settings.master_key_bytes, code), settings)[0]


@pytest.fixture
def code(municipality):
    return in_thread(municipality("アクセシビリティ市"))


def test_the_resident_journey_has_no_wcag21_aa_violations_at_phone_and_desktop_size(live_server, settings, code, page):
    letter = _letter(settings, code)
    base = f"{live_server}/m/{code}"
    found: list[str] = []
    page.goto(base + "/")
    found += violations(page, "start")
    page.goto(base + "/signin")
    found += violations(page, "signin")
    page.fill("#access_code", letter.access_code)
    page.fill("#pin", "000000" if letter.pin != "000000" else "111111")
    page.click("button[type=submit]")
    page.wait_for_selector("#signin-failed")
    found += violations(page, "signin-error")
    page.goto(base + "/signin")
    page.fill("#access_code", letter.access_code)
    page.fill("#pin", letter.pin)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/household")
    found += violations(page, "household")
    page.goto(base + "/bank")
    found += violations(page, "bank")
    page.click("button[type=submit]")  # empty: every error at once
    page.wait_for_selector("#error-summary")
    found += violations(page, "bank-errors")
    page.fill("#bank_code", "0001")
    page.fill("#branch_code", "001")
    page.fill("#account_number", "1234567")
    page.fill("#holder_kana", "ヤマダ タロウ")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/confirm")
    found += violations(page, "confirm")
    page.click("#submit")
    page.wait_for_url(base + "/receipt")
    found += violations(page, "receipt")
    page.goto(base + "/status")
    found += violations(page, "status")
    assert found == [], "\n".join(found)


def test_the_console_sign_in_has_no_wcag21_aa_violations(live_server, page):
    page.goto(live_server + "/staff/login")
    found = violations(page, "staff-login")
    page.fill("#municipality_code", "131016")
    page.fill("#login", "nobody")
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector(".error-summary")
    found += violations(page, "staff-login-error")
    assert found == [], "\n".join(found)


# ---- keyboard only --------------------------------------------------------------------------------


def tab_to(page, selector: str, limit: int = 60) -> None:
    """Press Tab until the focused element matches `selector` (Tab only, as a keyboard user would)."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def focused(page) -> str:
    return page.evaluate("document.activeElement ? document.activeElement.id : ''")


def test_the_whole_journey_can_be_done_with_the_keyboard_alone(live_server, settings, code, page):
    letter = _letter(settings, code)
    base = f"{live_server}/m/{code}"
    page.goto(base + "/")
    tab_to(page, f"a[href='/m/{code}/signin']")
    page.keyboard.press("Enter")
    page.wait_for_url(base + "/signin")
    tab_to(page, "#access_code")
    page.keyboard.type(letter.access_code)
    page.keyboard.press("Tab")
    page.keyboard.type(letter.pin)
    page.keyboard.press("Enter")
    page.wait_for_url(base + "/household")
    tab_to(page, f"a[href='/m/{code}/bank']")
    page.keyboard.press("Enter")
    page.wait_for_url(base + "/bank")
    tab_to(page, "#bank_code")
    page.keyboard.press("Enter")  # an empty form: the errors, with focus on their summary
    page.wait_for_selector("#error-summary")
    assert focused(page) == "error-summary"
    page.keyboard.press("Tab")  # the first error's link, then to its field
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#bank_code"
    page.keyboard.press("Enter")
    tab_to(page, "#bank_code")
    page.keyboard.type("0001")
    tab_to(page, "#branch_code")
    page.keyboard.type("001")
    tab_to(page, "#account_number")
    page.keyboard.type("1234567")
    tab_to(page, "#holder_kana")
    page.keyboard.type("ヤマダ タロウ")
    page.keyboard.press("Enter")
    page.wait_for_url(base + "/confirm")
    tab_to(page, "#submit")
    page.keyboard.press("Enter")
    page.wait_for_url(base + "/receipt")
    assert len(page.locator("#receipt-no").inner_text().replace("-", "")) == 11
    screenshot(page, "keyboard-receipt")

"""支給保留 and a death after 基準日 in a real browser (Debian's Chromium): a newer 住基 extract's screening has
held the application whose 世帯主 died; a reviewer opens the hold from the menu, finds the program's
suggestion chosen, and records the decision for the new 世帯主. Then a reviewer holds another application
from its page, makes it a 支給停止, cannot lift it themselves, and a second reviewer lifts it."""

from __future__ import annotations

import asyncpg
import pytest

from app.registry.imports import import_residents
from app.tenancy.transaction import tenant_transaction
from tests.browser import browser, in_thread, page, screenshot  # noqa: F401  (fixtures)
from tests.live_server import live_server  # noqa: F401
from tests.registry.helpers import person, residents_csv
from tests.staff.conftest import PASSWORD, build_world, make_staff

pytestmark = pytest.mark.browser


@pytest.fixture
def world(municipality, settings):
    async def make():
        code = await municipality()
        conn = await asyncpg.connect(settings.database_url)
        try:
            w = await build_world(conn, code, settings, applications=2, status="approved")
            async with tenant_transaction(conn, code):
                await make_staff(conn, w, "rev2", ["reviewer"])
                heads = await conn.fetch(
                    "SELECT r.resident_code, r.household_no FROM applications a"
                    " JOIN entitlements e USING (municipality_code, entitlement_id)"
                    " JOIN residents r ON r.snapshot_id = e.snapshot_id AND r.resident_code = e.head_resident_code"
                    " ORDER BY a.application_id"
                )
                dead, alive = heads
                spouse = person(household_no=dead["household_no"], given_name="花子", given_kana="ハナコ")
                later = [
                    person(
                        resident_code=dead["resident_code"],
                        household_no=dead["household_no"],
                        removed_on="2026-05-10",
                        removal_reason="死亡",
                    ),
                    spouse,
                    person(resident_code=alive["resident_code"], household_no=alive["household_no"]),
                ]
                await import_residents(conn, code, residents_csv(later))
            w.new_head = spouse["resident_code"]
            return w
        finally:
            await conn.close()

    return in_thread(make())


def _login(page, base, code, login):  # noqa: F811
    page.goto(base + "/staff/login")
    page.fill("#municipality_code", code)
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/staff/")


def test_a_reviewer_decides_a_death_after_the_base_date_and_two_reviewers_stop_and_lift_a_hold(
    live_server,  # noqa: F811
    world,
    page,  # noqa: F811
):
    base, code = live_server, world.code
    _login(page, base, code, "rev")
    page.click("nav >> text=支給保留")
    assert page.locator("#holds-active tbody tr").count() == 1
    assert "住基照合" in page.locator("#holds-active").inner_text()
    page.click("#holds-active a >> nth=0")
    assert "死亡" in page.locator("#hold-finding").inner_text()
    assert world.new_head in page.locator("#hold-suggestion").inner_text()
    assert page.locator("input[name=decision][value=new_head]").is_checked()  # the program's rule, chosen
    screenshot(page, "staff-holds-death")
    page.fill("#decide-note", "妻が新しい世帯主。新しい世帯主に申請を案内")
    page.click("#decide")
    assert "判断を記録しました" in page.locator("#flash").inner_text()
    assert "新しい世帯主に支給" in page.locator("#hold-decision").inner_text()
    assert page.locator("#holds-empty").is_visible()

    # Another application: held from its page, then stopped.
    page.goto(f"{base}/staff/applications/{world.applications[1]}")
    page.select_option("#hold-reason", "investigation")
    page.check("input[name=kind][value=hold]")
    page.fill("#hold-note", "口座名義について本人に照会中")
    page.click("#place-hold")
    assert "保留しました" in page.locator("#flash").inner_text()
    assert "調査中" in page.locator("#hold-reason").inner_text()
    page.fill("#stop-note", "照会に回答がないため")
    page.click("#stop")
    assert "支給停止にしました" in page.locator("#flash").inner_text()
    assert page.locator("#stop-four-eyes").is_visible() and page.locator("#release-hold").count() == 0
    assert "照会に回答がないため" in page.locator("#hold-stopped").inner_text()
    screenshot(page, "staff-holds-stopped")
    hold_url = page.url
    page.click("text=ログアウト")

    _login(page, base, code, "rev2")
    page.goto(hold_url)
    page.fill("#release-note", "本人から回答あり、名義を確認")
    page.click("#release-hold")
    assert "保留を解除しました" in page.locator("#flash").inner_text()
    assert "rev2" in page.locator("#hold-decision").inner_text()
    page.goto(f"{base}/staff/applications/{world.applications[1]}")
    assert "解除済み" in page.locator("#application-holds").inner_text()
    screenshot(page, "staff-holds-application")

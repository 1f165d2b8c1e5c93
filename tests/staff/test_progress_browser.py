"""支給状況 in a real browser (Debian's Chromium): a reviewer goes from the console home to the charts, reads
the figures, opens the table behind them and downloads the CSV. Screenshots: artifacts/screenshots/
staff-progress-desktop.png, staff-progress-phone.png and staff-progress-table.png."""

from __future__ import annotations

import pytest

from app.db import create_app_pool
from tests.browser import browser, in_thread, page, screenshot  # noqa: F401  (fixtures)
from tests.live_server import live_server  # noqa: F401
from tests.staff.conftest import PASSWORD, build_world
from tests.staff.test_progress import _seeded

pytestmark = pytest.mark.browser


@pytest.fixture
def world(municipality, settings, transfer_date, tmp_path):
    async def make():
        pool = await create_app_pool(settings, min_size=1, max_size=2)
        try:

            async def make_world(applications=0):
                return await build_world(pool, await municipality("支給状況市"), settings, applications=applications)

            w, _ = await _seeded(make_world, pool, settings, transfer_date, tmp_path)
            return w
        finally:
            await pool.close()

    return in_thread(make())


def test_a_reviewer_reads_the_progress_charts_and_downloads_the_csv(live_server, world, page, transfer_date):  # noqa: F811
    base, pid = live_server + "/staff", world.program_id
    page.goto(base + "/login")
    page.fill("#municipality_code", world.code)
    page.fill("#login", "rev")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    page.click("#progress-link")
    page.wait_for_url(base + "/progress")
    assert page.locator("h1").inner_text() == "支給状況"
    assert page.locator("svg.chart[role=img]").count() == 2
    assert page.locator(f"#total-{pid}-received").inner_text() == "6件"
    assert page.locator(f"#total-yen-{pid}-paid").inner_text() == "140,000円"
    assert page.locator(f"#total-{pid}-in_review").inner_text() == "1件"
    assert page.locator(f"#chart-{pid}-count-title").text_content() == "物価高騰支援給付金の件数の推移"
    # Six lines in each chart, each drawn across every day from the first receipt to the transfer date.
    points = page.locator(f"#chart-{pid}-count polyline.series-paid").get_attribute("points").split()
    days = page.locator(f"#days-{pid} tbody tr").count()
    assert len(points) == days and days >= 11
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot(page, "staff-progress-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "staff-progress-phone")
    assert not page.locator(f"#days-{pid}").is_visible()
    page.click("summary >> text=日別の数値（表）")
    assert page.locator(f"#days-{pid}").is_visible()
    first_row = page.locator(f"#days-{pid} tbody tr").first.inner_text()
    assert transfer_date.isoformat() in first_row  # newest day first
    screenshot(page, "staff-progress-table")
    with page.expect_download() as download:
        page.click("#progress-csv")
    data = download.value.path().read_bytes()
    assert data.startswith("\ufeff日付,事業番号,事業名,受付件数".encode())
    assert data.count(b"\r\n") == days + 1
    assert download.value.suggested_filename.startswith(f"shikyu-jokyo-{world.code}-")

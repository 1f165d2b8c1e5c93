"""代理申請 and a DV 申出 in a real browser (Debian's Chromium). A reviewer keys a proxy who came to the counter;
a reviewer of the municipality an evacuee lives in records the 申出, and a reviewer of the municipality that
holds her 住民票 takes her and her child out of the household. Screenshots: artifacts/screenshots/
staff-proxy-form.png, staff-proxy-done.png, staff-dv-filed.png, staff-dv-incoming.png, staff-dv-excluded.png."""

from __future__ import annotations

import datetime as dt

import pytest

from app.db import create_app_pool
from app.registry.eligibility import determine_eligibility
from app.registry.imports import import_residents
from app.registry.programs import create_program, parse_program
from app.tenancy.transaction import tenant_transaction
from tests.browser import browser, in_thread, page, screenshot  # noqa: F401  (fixtures)
from tests.live_server import live_server  # noqa: F401
from tests.registry.helpers import person, residents_csv
from tests.registry.test_duplicates import new_scheme
from tests.registry.test_dv import ADDRESS, household, scheme_program
from tests.staff.conftest import PASSWORD, build_world

pytestmark = pytest.mark.browser


@pytest.fixture
def worlds(municipality, settings):
    async def make():
        pool = await create_app_pool(settings, min_size=1, max_size=2)
        try:
            key, scheme = settings.duplicate_key_bytes, new_scheme()
            a = await build_world(pool, await municipality("避難先市"), settings, applications=0)
            b = await build_world(pool, await municipality("乙町"), settings, applications=0)
            rows = household()
            pa = await scheme_program(pool, a.code, [person(birth_date="1970-01-01")], scheme, key)
            await scheme_program(pool, b.code, rows, scheme, key)
            head = person(family_kana="サトウ", given_kana="イチロウ", birth_date="1940-02-02")
            spouse = person(
                family_kana="サトウ",
                given_kana="ハナ",
                birth_date="1945-05-05",
                relationship="妻",
                household_no=head["household_no"],
            )
            async with tenant_transaction(pool, a.code) as conn:
                await import_residents(conn, a.code, residents_csv([head, spouse]))
                proxy_program = await create_program(
                    conn,
                    a.code,
                    parse_program(
                        dict(
                            name="臨時特別給付金",
                            base_date=dt.date(2026, 4, 1),
                            unit="person",
                            amount_yen=10000,
                            payment_mode="letter",
                        )
                    ),
                )
                await determine_eligibility(conn, a.code, proxy_program)
            return a, b, pa, rows, proxy_program, head
        finally:
            await pool.close()

    return in_thread(make())


def sign_in(page, base: str, code: str, login: str = "rev") -> None:  # noqa: F811
    page.goto(base + "/login")
    page.fill("#municipality_code", code)
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")


def test_a_reviewer_keys_a_proxy_at_the_counter(live_server, worlds, page):  # noqa: F811
    a, _b, _pa, _rows, program_id, head = worlds
    base = live_server + "/staff"
    sign_in(page, base, a.code)
    page.click("nav >> text=代理申請")
    page.wait_for_url(base + "/proxy")
    page.select_option("#program_id", str(program_id))
    page.fill("#household_no", head["household_no"])
    page.check("input[name=relationship][value=household_member]")
    page.fill("#proxy_name", "佐藤 花")
    page.fill("#proxy_kana", "サトウ ハナ")
    page.fill("#proxy_birth_date", "1945-05-05")
    page.check("input[name=evidence][value=proxy_identity]")
    page.check("input[name=evidence][value=account_document]")  # the 委任状 is forgotten at first
    page.fill("#bank_code", "0001")
    page.fill("#branch_code", "001")
    page.fill("#account_number", "1234567")
    page.fill("#holder_kana", "ｻﾄｳ ｲﾁﾛｳ")
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot(page, "staff-proxy-form")
    page.click("#proxy-submit")
    assert "委任状" in page.locator("#console-error").inner_text()
    assert page.input_value("#proxy_kana") == "サトウ ハナ"  # kept
    page.check("input[name=evidence][value=delegation]")
    page.click("#proxy-submit")
    receipt = page.locator("#proxy-receipt").inner_text()
    assert receipt and page.locator("#flash").is_visible()
    assert page.locator("#proxy-recent").inner_text().count(receipt) == 1
    screenshot(page, "staff-proxy-done")


def test_a_dv_request_crosses_two_municipalities_and_reduces_the_household(live_server, worlds, page):  # noqa: F811
    a, b, pa, (head, spouse, child), _program, _head = worlds
    base = live_server + "/staff"
    sign_in(page, base, a.code)
    page.click("nav >> text=DV等避難者の申出")
    page.wait_for_url(base + "/dv")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.select_option("#program_id", str(pa))
    page.fill("#registered_code", b.code)
    page.check("input[name=evidence][value=protection_order]")
    page.fill("#evidence_issued_on", "2026-03-01")
    page.fill("#address", ADDRESS)
    for i, (who, name, kana) in enumerate(((spouse, "山田 花子", "ヤマダ ハナコ"), (child, "山田 雪", "ヤマダ ユキ"))):
        page.fill(f"input[name=p{i}_name]", name)
        page.fill(f"input[name=p{i}_kana]", kana)
        page.fill(f"input[name=p{i}_birth_date]", who["birth_date"])
    page.fill("#bank_code", "0001")
    page.fill("#branch_code", "001")
    page.fill("#account_number", "7654321")
    page.fill("#holder_kana", "ﾔﾏﾀﾞ ﾊﾅｺ")
    page.click("#dv-submit")
    reference = page.locator("#dv-reference").inner_text()
    assert reference.startswith("V-")
    assert "確認待ち" in page.locator("#dv-filed").inner_text() and "50,000円" in page.locator("#dv-filed").inner_text()
    screenshot(page, "staff-dv-filed")
    page.click("nav >> button:has-text('ログアウト')")

    sign_in(page, base, b.code)
    page.goto(base + "/dv")
    incoming = page.locator("#dv-incoming").inner_text()
    assert reference in incoming and "避難先市" not in page.content() and ADDRESS not in page.content()
    page.click(f"#dv-incoming >> text={reference}")
    members = page.locator(".dv-members").inner_text()
    assert "山田 花子" in members and "山田 雪" in members and "山田 太郎" not in members
    screenshot(page, "staff-dv-incoming")
    page.click("#dv-exclude")
    assert "除外済み" in page.locator("#incoming-state").inner_text()
    assert "避難先市" not in page.content()
    screenshot(page, "staff-dv-excluded")
    page.click("nav >> button:has-text('ログアウト')")

    sign_in(page, base, a.code)
    page.goto(base + "/dv")
    assert "除外済み" in page.locator("#dv-filed").inner_text()

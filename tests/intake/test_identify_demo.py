"""The demo seed prints an identity that signs in without a letter on its 申請型 program."""

from __future__ import annotations

import re

import httpx

from devtools.demo_registry import seed_demo
from tests.intake.identify_world import csrf

PRINTED = re.compile(
    r"no letter \(「確認書をお持ちでない方」\): (\S+) (\S+), born (\d{4})-(\d\d)-(\d\d), address (\S+)"
)


async def test_the_printed_identity_is_identified(app_pool, settings, municipality, live_server):
    code = await municipality("千代田区")
    async with app_pool.acquire() as conn:
        lines = await seed_demo(conn, settings, code)
    [match] = [m for m in map(PRINTED.search, lines) if m]
    family, given, year, month, day, address = match.groups()
    async with httpx.AsyncClient(base_url=live_server, follow_redirects=False, timeout=30) as client:
        start = await client.get(f"/m/{code}/")
        href = re.search(r'href="(/m/\d+/identify\?program=\d+)"', start.text).group(1)
        page = await client.get(href)
        r = await client.post(
            f"/m/{code}/identify",
            data={
                "csrf_token": csrf(page.text),
                "program": href.rsplit("=", 1)[1],
                "family_kana": family,
                "given_kana": given,
                "birth_year": year,
                "birth_month": str(int(month)),
                "birth_day": str(int(day)),
                "address": address,
            },
        )
        assert r.status_code == 303 and r.headers["location"] == f"/m/{code}/household", r.text[-800:]

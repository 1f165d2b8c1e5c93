"""Hostile strings and small HTTP helpers shared by the hostile-input tests."""

from __future__ import annotations

import re

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

HOSTILE = [
    "ﾔﾏﾀﾞ ﾀﾛｳ",
    "やまだ たろう",
    "髙﨑 𠮷野",
    "😀👨‍👩‍👧‍👦🇯🇵",
    "\x00",
    "a\x00b",
    "\x1b[31m\x07",
    "\u202eevil",
    "\ufeff\u200b",
    "\r\nSet-Cookie: x=1",
    "' OR '1'='1",
    "'; DROP TABLE applications; --",
    "1); SELECT pg_sleep(10); --",
    "$1 $2 %s %(x)s {0}",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "<script>alert(1)</script>",
    "{{ 7*7 }}",
    "%00%2e%2e%2f",
    "\ud800",
    "Ａ" * 5000,
    "9" * 400,
]


def csrf_from(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no csrf_token in the page"
    return match.group(1)


def resident_sign_in(client, code: str, letter) -> None:
    page = client.get(f"/m/{code}/signin")
    r = client.post(
        f"/m/{code}/signin",
        data={"csrf_token": csrf_from(page.text), "access_code": letter.access_code, "pin": letter.pin},
    )
    assert r.status_code == 303 and r.headers["location"].endswith("/household"), (r.status_code, r.headers)


def no_raw_markup(text: str) -> bool:
    return "<script>alert(1)</script>" not in text


def form(client, url: str, data: dict, **kwargs):
    """POST a urlencoded form whose values may hold lone surrogates (sent as their raw UTF-8-like bytes,
    i.e. invalid UTF-8 on the wire, as a hostile client can)."""
    from urllib.parse import urlencode

    body = urlencode(data, doseq=True, encoding="utf-8", errors="surrogatepass")
    return client.post(
        url, content=body.encode(), headers={"content-type": "application/x-www-form-urlencoded"}, **kwargs
    )


def get(client, url: str, params: dict):
    from urllib.parse import urlencode

    return client.get(url + "?" + urlencode(params, encoding="utf-8", errors="surrogatepass"))


async def forget_ip_failures(redis_url: str, ip: str = "testclient") -> None:
    """Hostile rounds fail sign-in on purpose; clear the per-address count before a real sign-in."""
    from redis.asyncio import Redis

    from app.intake.signin import _IP_KEY

    redis = Redis.from_url(redis_url)
    try:
        await redis.delete(_IP_KEY + ip)
    finally:
        await redis.aclose()


async def staff_signed_in(client, pool, code: str, staff_id: int) -> str:
    """Give the client a live staff session (made directly, without the sign-in form and its TOTP and
    throttles) and return the session's CSRF token."""
    from app.principals import Staff
    from app.staff.accounts import get_staff
    from app.staff.web.common import start_session
    from app.tenancy.transaction import tenant_transaction
    from app.web.sessions import STAFF_COOKIE

    async with tenant_transaction(pool, code) as conn:
        cookie = await start_session(conn, Staff.from_row(await get_staff(conn, code, staff_id)))
    client.cookies.set(STAFF_COOKIE.name, cookie, path=STAFF_COOKIE.path)
    return csrf_from(client.get("/staff/").text)

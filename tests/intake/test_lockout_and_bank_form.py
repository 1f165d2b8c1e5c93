"""Issue 18, points 4 and 6 on the resident site: a lockout says that it is one, until when and whom to ask,
without telling a guesser more than the lock itself does; the bank form shows every error at once, marks
the fields in error for assistive technology, and survives an idle-expired session without losing what
was typed (but never keeps what a cross-site page posts)."""

from __future__ import annotations

import datetime as dt
import html
import re

import httpx
import pytest
from redis.asyncio import Redis

from app.intake.identity import IDENTIFY_FAILED_MESSAGE
from app.intake.signin import _IP_KEY, SIGNIN_FAILED_MESSAGE, jst_clock
from app.intake.status import progress
from app.tenancy.transaction import tenant_transaction
from tests.intake.helpers import access_code
from tests.intake.identify_world import csrf, identify, make_world, person, typed

GENERIC_LETTER = SIGNIN_FAILED_MESSAGE.split("。")[0]
GENERIC_IDENTITY = IDENTIFY_FAILED_MESSAGE.split("。")[0]
LOCKED = "停止しています"
_FAILED_BOX = re.compile(
    r'<div class="error-summary" role="alert" tabindex="-1" id="(?:signin|identify)-failed" autofocus><p>(.*?)</p>',
    re.S,
)


@pytest.fixture(autouse=True)
async def _fresh_ip_count(settings):
    """Every request comes from 127.0.0.1 and these tests fail on purpose: start each at zero."""
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.delete(_IP_KEY + "127.0.0.1")
        yield
    finally:
        await redis.delete(_IP_KEY + "127.0.0.1")
        await redis.aclose()


@pytest.fixture
async def world(app_pool, settings, municipality):
    return await make_world(app_pool, settings.master_key_bytes, await municipality("千代田区"))


@pytest.fixture
async def client(live_server):
    async with httpx.AsyncClient(base_url=live_server, follow_redirects=False, timeout=30) as c:
        yield c


def failure_text(response) -> str:
    match = _FAILED_BOX.search(response.text)
    assert match, response.text[:500]
    return html.unescape(match.group(1))


async def sign_in(client, code: str, access: str, pin: str, path: str = "signin"):
    page = await client.get(f"/m/{code}/{path}")
    return await client.post(
        f"/m/{code}/{path}", data={"csrf_token": csrf(page.text), "access_code": access, "pin": pin}
    )


async def letter_lock_end(app_pool, world) -> dt.datetime:
    async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
        return await conn.fetchval("SELECT locked_until FROM letters WHERE access_code = $1", world.access_code)


# ---- letter PIN -----------------------------------------------------------------------------------


async def test_a_locked_letter_code_says_so_until_when_and_whom_to_ask(client, world, app_pool):
    for _ in range(4):
        r = await sign_in(client, world.code, world.access_code, "000000")
        assert r.status_code == 401 and failure_text(r).startswith(GENERIC_LETTER)
        assert LOCKED not in r.text and "あと" not in failure_text(r)  # tries left would tell a code exists
    fifth = await sign_in(client, world.code, world.access_code, "000000")
    text = failure_text(fifth)
    until = await letter_lock_end(app_pool, world)
    assert fifth.status_code == 401 and text.startswith("この確認書番号は") and LOCKED in text
    assert f"{jst_clock(until)}まで" in text and re.search(r"\d{1,2}時\d\d分まで", text)
    assert "千代田区の給付金担当窓口" in text
    # The right PIN while locked: still locked (and nothing says the PIN was right), on both forms.
    for path in ("signin", "status"):
        r = await sign_in(client, world.code, world.access_code, world.pin, path)
        assert r.status_code == 401 and failure_text(r) == text, path
        assert "kyufu_session" not in r.headers.get("set-cookie", "") or "/household" not in r.text


async def test_an_unknown_code_is_never_said_to_be_locked_and_fails_like_a_wrong_pin(client, world):
    """The lock message is only for a code that is really locked, which the guesser could only cause by
    holding the code; a made-up code answers exactly like a wrong PIN on a real code, however often."""
    real = failure_text(await sign_in(client, world.code, world.access_code, "000000"))
    made_up = access_code()
    for _ in range(7):
        r = await sign_in(client, world.code, made_up, "000000")
        assert r.status_code == 401 and failure_text(r) == real == SIGNIN_FAILED_MESSAGE


def test_the_lock_end_is_japan_time_rounded_up_to_the_minute():
    jst = dt.timezone(dt.timedelta(hours=9))
    now = dt.datetime(2026, 3, 1, 15, 12, tzinfo=jst)
    assert jst_clock(dt.datetime(2026, 3, 1, 6, 41, 10, tzinfo=dt.UTC), now) == "15時42分"
    assert jst_clock(dt.datetime(2026, 3, 1, 15, 42, tzinfo=jst), now) == "15時42分"
    assert jst_clock(dt.datetime(2026, 3, 2, 0, 5, tzinfo=jst), now.replace(hour=23, minute=50)) == "翌日0時05分"


# ---- identification without a letter -------------------------------------------------------------


async def test_an_identity_counts_down_and_locks_the_same_whether_or_not_the_person_exists(client, world):
    """The count is kept per typed name and birth date, matched or not: telling the tries left and the
    lock reveals nothing about whether such a resident exists."""
    taro = person("taro")
    answers = {}
    for name, form in (
        ("resident", typed(taro, address="九段南9-9-9")),
        ("nobody", typed(taro, family_kana="ヌエ", given_kana="マボロシ", address="九段南9-9-9")),
    ):
        texts = []
        for _ in range(5):
            r = await identify(client, world, form)
            assert r.status_code == 401
            texts.append(failure_text(r))
        answers[name] = texts
    resident = answers["resident"]
    assert [t.startswith(GENERIC_IDENTITY) for t in resident] == [True] * 4 + [False]
    assert [f"あと{n}回確認できないと" in t for t, n in zip(resident, (4, 3, 2, 1))] == [True] * 4
    assert resident[4].startswith("この氏名（カナ）と生年月日での本人確認は") and LOCKED in resident[4]
    assert re.search(r"\d{1,2}時\d\d分まで", resident[4]) and "千代田区の給付金担当窓口" in resident[4]
    assert answers["nobody"][:4] == resident[:4]
    assert re.sub(r"\d+", "N", answers["nobody"][4]) == re.sub(r"\d+", "N", resident[4])
    r = await identify(client, world, typed(taro))  # right, but locked
    assert r.status_code == 401 and failure_text(r).startswith("この氏名（カナ）と生年月日での本人確認は")


# ---- the bank form --------------------------------------------------------------------------------

BANK_FIELDS = ("bank_code", "branch_code", "account_number", "holder_kana")


async def signed_in(client, world):
    r = await sign_in(client, world.code, world.access_code, world.pin)
    assert r.status_code == 303 and r.headers["location"].endswith("/household"), r.status_code


async def test_an_empty_bank_form_shows_every_error_at_once_marked_for_assistive_technology(client, world):
    await signed_in(client, world)
    page = await client.get(f"/m/{world.code}/bank")
    r = await client.post(f"/m/{world.code}/bank", data={"csrf_token": csrf(page.text), "account_type": "1"})
    assert r.status_code == 422
    summary = re.search(r'<div class="error-summary"[^>]*>(.*?)</div>', r.text, re.S)
    assert summary and "autofocus" in re.search(r'<div class="error-summary"[^>]*>', r.text).group(0)
    assert [re.findall(r'href="#(\w+)"', summary.group(1))] == [list(BANK_FIELDS)]
    for field in BANK_FIELDS:
        tag = re.search(rf'<input[^>]*id="{field}"[^>]*>', r.text).group(0)
        assert 'aria-invalid="true"' in tag and f'aria-describedby="{field}-error"' in tag, tag
        assert f'id="{field}-error"' in r.text
    assert "aria-invalid" not in re.search(r'<input[^>]*id="yucho_kigou"[^>]*>', r.text).group(0)


async def expire_session(client, settings):
    """What 30 idle minutes do: the server forgets the session and the browser drops the cookie."""
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.delete("kyufu:session:" + client.cookies["kyufu_session"])
    finally:
        await redis.aclose()
    client.cookies.clear()


TYPED = {
    "bank_code": "0001",
    "branch_code": "001",
    "account_type": "1",
    "account_number": "7654321",
    "holder_kana": "ヤマダ タロウ",
}


async def test_an_expired_session_keeps_what_was_typed_on_the_bank_form_through_sign_in(client, world, settings):
    await signed_in(client, world)
    page = await client.get(f"/m/{world.code}/bank")
    token = csrf(page.text)
    await expire_session(client, settings)
    r = await client.post(
        f"/m/{world.code}/bank", data={"csrf_token": token, **TYPED}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert r.status_code == 303 and r.headers["location"] == f"/m/{world.code}/signin"
    signin = await client.get(f"/m/{world.code}/signin")
    assert 'id="expired"' in signin.text and "30分間操作がなかった" in signin.text
    assert "7654321" not in signin.text  # nothing typed is shown to someone not signed in
    r = await client.post(
        f"/m/{world.code}/signin",
        data={"csrf_token": csrf(signin.text), "access_code": world.access_code, "pin": world.pin},
    )
    assert r.status_code == 303 and r.headers["location"] == f"/m/{world.code}/bank"
    form = await client.get(f"/m/{world.code}/bank")
    assert 'id="restored"' in form.text and 'value="7654321"' in form.text and 'value="ヤマダ タロウ"' in form.text
    r = await client.post(f"/m/{world.code}/bank", data={"csrf_token": csrf(form.text), **TYPED})
    assert r.status_code == 303 and r.headers["location"] == f"/m/{world.code}/confirm"
    again = await client.get(f"/m/{world.code}/bank")
    assert 'id="restored"' not in again.text  # the draft is gone once the form is sent


async def test_a_cross_site_post_to_the_bank_form_plants_nothing(client, world):
    """Without a session there is no CSRF token to check: only the site's own page may leave a draft."""
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}, {}):
        r = await client.post(f"/m/{world.code}/bank", data=TYPED, headers=headers)
        assert r.status_code == 403, headers
    signin = await client.get(f"/m/{world.code}/signin")
    assert 'id="expired"' not in signin.text
    r = await client.post(
        f"/m/{world.code}/signin",
        data={"csrf_token": csrf(signin.text), "access_code": world.access_code, "pin": world.pin},
    )
    assert r.headers["location"].endswith("/household")
    assert 'id="restored"' not in (await client.get(f"/m/{world.code}/bank")).text


def test_a_rejected_application_is_labelled_as_the_text_says():
    shown = progress({"status": "rejected", "payment_status": None, "paid_on": None, "transfer_date": None})
    assert shown is not None and shown.label == "支給できませんでした" and "支給できませんでした" in shown.detail

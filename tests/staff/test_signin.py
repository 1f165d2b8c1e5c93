"""Sign-in limits a guesser cannot turn against the owner (app/staff/signin.py): failures slow down the path
they come by (the login's untrusted path, or one trusted browser), never the owner's known browser; the
owner and the admins are told; a login that does not exist answers like one that does."""

from __future__ import annotations

import json
import re

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.staff import accounts, signin, throttle
from app.tenancy.transaction import tenant_transaction
from tests.staff.conftest import PASSWORD
from tests.staff.test_web import csrf_of, login

ATTACKER = ("203.0.113.66", 40000)


def browser(settings, address=("testclient", 50000)) -> TestClient:
    """A browser of its own (its own app instance: a TestClient runs the app's lifespan, and so its asyncpg
    pool, on its own event loop)."""
    return TestClient(create_app(settings), follow_redirects=False, client=address)


@pytest.fixture
def owner(settings):
    with browser(settings) as c:
        yield c


@pytest.fixture
def attacker(settings):
    # Another address than the owner's: these tests are about the per-login limits, not the per-address one.
    with browser(settings, ATTACKER) as c:
        yield c


def guess_until_refused(client, code, login_name, max_attempts=12):
    """Wrong passwords until the login's path refuses one (429); returns the responses."""
    responses = []
    for _ in range(max_attempts):
        r = login(client, code, login_name, password="wrong-password-x", totp="000000")
        responses.append(r)
        if r.status_code == 429:
            return responses
    raise AssertionError(f"never refused: {[r.status_code for r in responses]}")


async def keep_waiting(app_pool, world, login_name, minutes=10):
    """As if the guesser had kept going: every path to the account waits `minutes` more (so that the test
    does not depend on how fast argon2 runs on this machine)."""
    staff_id = world.staff[login_name].staff_id
    async with tenant_transaction(app_pool, world.code) as conn:
        for table in ("staff_signin_failures", "staff_devices"):
            await conn.execute(
                f"UPDATE {table} SET delayed_until = now() + make_interval(mins => $2)"
                " WHERE staff_id = $1 AND delayed_until IS NOT NULL",
                staff_id,
                minutes,
            )


def sign_in_approver(client, world, offset_steps=0):
    return login(client, world.code, "appr", totp=world.totp_now("appr", offset_steps))


def message(response) -> str:
    m = re.search(r'<div class="error-summary" role="alert"><p>(.*?)</p>', response.text, re.S)
    return m.group(1) if m else ""


async def audit_entries(app_pool, code, action="login.failed"):
    async with tenant_transaction(app_pool, code) as conn:
        rows = await conn.fetch(
            "SELECT actor_label, object_id, details FROM audit_log WHERE action = $1 ORDER BY seq", action
        )
    return [{"actor_label": r["actor_label"], "object_id": r["object_id"], **json.loads(r["details"])} for r in rows]


def test_the_wait_doubles_from_one_second_to_fifteen_minutes():
    waits = [signin.delay_after(n) for n in range(1, 18)]
    assert waits == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
    assert signin.delay_after(10_000) == 900


async def test_a_guessers_failures_do_not_stop_the_approver_at_their_known_browser(
    make_world, owner, attacker, app_pool
):
    world = await make_world(applications=0)
    assert sign_in_approver(owner, world).status_code == 303
    assert signin.DEVICE_COOKIE in owner.cookies
    assert owner.post("/staff/logout", data={"csrf_token": csrf_of(owner)}).status_code == 303
    # Far more than the five wrong passwords that used to lock the account for 15 minutes.
    responses = guess_until_refused(attacker, world.code, "appr")
    await keep_waiting(app_pool, world, "appr")
    assert len(responses) >= 5 and [r.status_code for r in responses[:4]] == [401] * 4
    r = sign_in_approver(owner, world, 1)  # the right password and code, from the known browser
    assert r.status_code == 303 and r.headers["location"] == "/staff/"
    assert owner.get("/staff/").status_code == 200
    # The guesser's path is still waiting (the owner's success there does not reset it).
    r = login(attacker, world.code, "appr", totp=world.totp_now("appr", 1))
    assert r.status_code == 429


async def test_the_wait_grows_with_each_failure_and_restarts_after_a_success(make_world, app_pool, settings):
    world = await make_world(applications=0)

    async def attempt(password="wrong-password-x"):
        async with tenant_transaction(app_pool, world.code) as conn:
            result = await accounts.login(conn, world.cipher, world.code, "rev", password)
            row = await conn.fetchrow(
                "SELECT failures, extract(epoch FROM delayed_until - last_failed_at) AS wait"
                " FROM staff_signin_failures WHERE staff_id = $1",
                world.staff["rev"].staff_id,
            )
            # Let the wait pass, as if the guesser came back just in time.
            await conn.execute(
                "UPDATE staff_signin_failures SET delayed_until = now() - interval '1 second'"
                " WHERE delayed_until IS NOT NULL"
            )
        return result, row

    waits = []
    for _ in range(8):
        result, row = await attempt()
        assert result.staff is None and not result.refused
        waits.append((row["failures"], round(row["wait"] or 0), result.wait_s))
    assert waits == [(n, signin.delay_after(n), signin.delay_after(n)) for n in range(1, 9)]
    result, row = await attempt(PASSWORD)
    assert result.staff is not None and row is None  # the untrusted path's count is forgotten
    result, row = await attempt()
    assert (row["failures"], result.wait_s) == (1, 0)


async def test_during_the_wait_the_password_is_not_even_checked(make_world, attacker, app_pool, monkeypatch):
    world = await make_world(applications=0)
    guess_until_refused(attacker, world.code, "rev")
    await keep_waiting(app_pool, world, "rev")
    checked = []
    real = accounts._verify_password
    monkeypatch.setattr(accounts, "_verify_password", lambda h, p: checked.append(1) or real(h, p))
    r = login(attacker, world.code, "rev")  # the right password
    assert r.status_code == 429 and "kyufu_staff=" not in r.headers.get("set-cookie", "")
    assert checked == []
    wait = int(r.headers["retry-after"])
    assert 0 < wait <= signin.DELAY_CAP_S
    text = message(r)
    assert text.startswith("ログインできませんでした。") and re.search(
        r"\d\d時\d\d分\d\d秒（約\d+(秒|分)後）まで", text
    )
    assert "以前にこのログインIDでログインした端末" in text
    assert (await audit_entries(app_pool, world.code))[-1]["reason"] == "delayed"


async def test_the_owner_is_told_of_failures_at_their_next_sign_in(make_world, owner, attacker):
    world = await make_world(applications=0)
    for _ in range(3):
        assert login(attacker, world.code, "rev", password="wrong-password-x").status_code == 401
    assert login(owner, world.code, "rev").status_code == 303
    page = owner.get("/staff/").text
    notice = re.search(r'id="signin-notice"><p>(.*?)</p>', page).group(1)
    assert re.fullmatch(
        r"前回のサインイン以降、3回のサインイン失敗がありました（最終: \d{4}-\d\d-\d\d \d\d:\d\d JST）。"
        r"心当たりがない場合は、管理者に連絡してください。",
        notice,
    ), notice
    # Told once per sign-in: the next sign-in with no failures in between has nothing to tell.
    owner.post("/staff/logout", data={"csrf_token": csrf_of(owner)})
    assert login(owner, world.code, "rev").status_code == 303
    assert 'id="signin-notice"' not in owner.get("/staff/").text


async def test_admins_see_who_is_waiting_and_failing_and_can_end_the_wait(make_world, owner, attacker, app_pool):
    world = await make_world(applications=0)
    guess_until_refused(attacker, world.code, "appr")
    await keep_waiting(app_pool, world, "appr")
    assert login(owner, world.code, "admin", totp=world.totp_now("admin")).status_code == 303
    page = owner.get("/staff/admin/staff").text
    assert re.search(
        r'id="delayed-appr">失敗が続いたため、新しい端末からのログインを\d{4}-\d\d-\d\d \d\d:\d\d JSTまで', page
    )
    assert re.search(r'id="failures-appr">前回のログイン以降の失敗: \d+回', page)
    assert 'id="delayed-rev"' not in page and 'id="failures-rev"' not in page
    # The audit trail says when a wait started, and for which account, without the password.
    entries = [
        e for e in await audit_entries(app_pool, world.code) if e["object_id"] == str(world.staff["appr"].staff_id)
    ]
    assert entries[4]["delay_s"] == 1 and entries[4]["path"] == "untrusted" and entries[-1]["reason"] == "delayed"
    assert all(e["actor_label"] == "appr" for e in entries)
    r = owner.post(f"/staff/admin/staff/{world.staff['appr'].staff_id}/unlock", data={"csrf_token": csrf_of(owner)})
    assert r.status_code == 303
    assert 'id="delayed-appr"' not in owner.get("/staff/admin/staff").text
    assert sign_in_approver(attacker, world, 1).status_code == 303  # any browser may try again


async def test_a_login_that_does_not_exist_answers_like_one_that_does(make_world, settings, app_pool):
    world = await make_world(applications=0)

    def normalised(r):
        return r.status_code, r.headers.get("retry-after") is not None, re.sub(r"\d+", "N", message(r))

    answers = {}
    for name, address in (("rev", "203.0.113.10"), ("nobody", "203.0.113.11")):
        with browser(settings, (address, 1)) as c:
            # Five failures: four plain ones, then one that starts a wait.
            answers[name] = [normalised(login(c, world.code, name, password="wrong-password-x")) for _ in range(5)]
            async with tenant_transaction(app_pool, world.code) as conn:
                await conn.execute(
                    "UPDATE staff_signin_failures SET delayed_until = now() + interval '10 minutes'"
                    " WHERE login_hmac = $1",
                    signin.login_hmac(world.cipher.key, world.code, name),
                )
            answers[name].append(normalised(login(c, world.code, name)))  # refused while waiting
    assert answers["rev"] == answers["nobody"]
    assert [a[0] for a in answers["rev"]] == [401] * 5 + [429]
    assert answers["rev"][4][1] and "失敗が続いたため" in answers["rev"][4][2]
    # Neither the unknown login nor the wrong password is in the audit trail.
    entries = await audit_entries(app_pool, world.code)
    unknown = [e for e in entries if e["actor_label"] == "?"]
    assert len(unknown) == 6 and all(
        e["reason"] in ("unknown_login", "delayed") and len(e["login_key"]) == 16 for e in unknown
    )
    assert "nobody" not in json.dumps(entries) and "wrong-password-x" not in json.dumps(entries)


async def test_failures_at_a_trusted_browser_delay_only_that_browser(make_world, owner, settings, app_pool):
    world = await make_world(applications=0)
    assert login(owner, world.code, "rev").status_code == 303
    guess_until_refused(owner, world.code, "rev")  # someone at the owner's unlocked PC
    await keep_waiting(app_pool, world, "rev")
    r = login(owner, world.code, "rev")
    assert r.status_code == 429 and "以前にこのログインIDでログインした端末" not in message(r)
    with browser(settings, ("198.51.100.4", 1)) as elsewhere:
        assert login(elsewhere, world.code, "rev").status_code == 303


async def test_a_device_cookie_is_bound_to_its_account_and_dies_with_revoke(
    make_world, owner, attacker, app_pool, settings
):
    world = await make_world(applications=0)
    assert login(owner, world.code, "rev").status_code == 303
    device = owner.cookies[signin.DEVICE_COOKIE]
    rev_id, draft_id = world.staff["rev"].staff_id, world.staff["draft"].staff_id
    for name in ("draft", "rev"):
        guess_until_refused(attacker, world.code, name)
        await keep_waiting(app_pool, world, name)
    # The rev browser's device is no device of draft's, even with the account id changed in the cookie.
    for forged in (device, device.replace(f".{rev_id}.", f".{draft_id}.", 1), "x" * 5000, "~~~", "131016.1.a.b"):
        attacker.cookies.set(signin.DEVICE_COOKIE, forged, path="/staff")
        assert login(attacker, world.code, "draft").status_code == 429
    # An admin's "end all sessions" also stops trusting rev's browsers: they take the waiting path now.
    with browser(settings, ("198.51.100.5", 1)) as admin:
        assert login(admin, world.code, "admin", totp=world.totp_now("admin")).status_code == 303
        assert (
            admin.post(
                f"/staff/admin/staff/{rev_id}/revoke", data={"csrf_token": csrf_of(admin), "confirm": "1"}
            ).status_code
            == 303
        )
    owner.cookies.delete("kyufu_staff", path="/staff")
    assert login(owner, world.code, "rev").status_code == 429
    async with tenant_transaction(app_pool, world.code) as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM staff_devices WHERE staff_id = $1 AND revoked_at IS NULL", rev_id)
            == 0
        )


async def test_a_throttled_address_still_lets_known_browsers_in(make_world, app_pool, settings):
    world = await make_world(applications=0)
    office = ("192.0.2.200", 1)  # one NAT address for the whole office
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.redis_url)
    try:
        with browser(settings, office) as approver, browser(settings, office) as guesser:
            assert sign_in_approver(approver, world).status_code == 303
            rev_device = None
            with browser(settings, office) as rev:
                assert login(rev, world.code, "rev").status_code == 303
                rev_device = rev.cookies[signin.DEVICE_COOKIE]
            for i in range(throttle.IP_MAX_FAILURES):
                assert login(guesser, world.code, f"nobody{i}", password="wrong-password").status_code == 401
            r = login(guesser, world.code, "rev")
            assert r.status_code == 429 and message(r).startswith("ログインできませんでした。しばらく時間をおいて")
            # The approver's known browser, from the same address, is let through to its own account.
            assert sign_in_approver(approver, world, 1).status_code == 303
            # A device of rev's does not open the address limit for another account (nor checks its password).
            guesser.cookies.set(signin.DEVICE_COOKIE, rev_device, path="/staff")
            r = sign_in_approver(guesser, world, 1)
            assert r.status_code == 429
            entries = await audit_entries(app_pool, world.code)
            assert entries[-1]["reason"] == "address_throttled"
    finally:
        await redis.delete(throttle.IP_KEY + office[0])
        await redis.aclose()


@pytest.mark.parametrize("value", ["", "\x00", "131016." * 400, "~".join(["1.2.3.4"] * 50), "é", "a" * 3000])
def test_any_device_cookie_value_is_just_no_device(value):
    secret = b"k" * 32
    assert signin.devices_in_cookie(secret, value, "131016") == {}
    cookie = signin.device_cookie(secret, value, "131016", 7, "d" * 32)
    assert signin.devices_in_cookie(secret, cookie, "131016") == {7: "d" * 32}
    assert signin.devices_in_cookie(b"other" * 8, cookie, "131016") == {}
    assert signin.devices_in_cookie(secret, cookie, "131024") == {}


def test_a_browser_keeps_devices_of_several_accounts():
    secret = b"k" * 32
    cookie = None
    for staff_id in range(1, 8):
        cookie = signin.device_cookie(secret, cookie, "131016", staff_id, f"{staff_id:032d}")
    cookie = signin.device_cookie(secret, cookie, "131016", 5, "n" * 32)  # 5 signed in again: a new device
    assert signin.devices_in_cookie(secret, cookie, "131016") == {
        5: "n" * 32,
        7: f"{7:032d}",
        6: f"{6:032d}",
        4: f"{4:032d}",
        3: f"{3:032d}",
    }


async def test_any_typed_login_fails_like_an_unknown_one(make_world, attacker, app_pool):
    world = await make_world(applications=0)
    typed = ["rev\x00", "\x00", "ログイン", '=hyperlink("x")', "ab", "rév", "a" * 64]
    for name in typed:
        r = login(attacker, world.code, name)
        assert r.status_code == 401 and message(r).startswith("ログインできませんでした"), (name, r.status_code)
    entries = await audit_entries(app_pool, world.code)
    assert [(e["reason"], e["actor_label"]) for e in entries] == [("unknown_login", "?")] * len(typed)


async def test_a_login_that_must_wait_is_told_until_when_and_whom_to_ask(make_world, settings, app_pool):
    """Issue 18, point 4: the wait says it is one (not a typo), when it ends, and that an admin of the
    municipality can end it; in the same words for a login that does not exist."""
    world = await make_world(applications=0)
    texts = {}
    for name, address in (("rev", "203.0.113.20"), ("nobody", "203.0.113.21")):
        with browser(settings, (address, 1)) as c:
            texts[name] = _box(guess_until_refused(c, world.code, name)[-1])
    text = texts["rev"]
    assert re.search(r"\d\d時\d\d分\d\d秒（約\d+(秒|分)後）まで受け付けません", text)
    assert "所属団体のkyufu管理者" in text and "ログイン待機を解除" in text
    assert re.sub(r"\d+", "N", texts["nobody"]) == re.sub(r"\d+", "N", text)


def _box(response) -> str:
    """The sign-in page's message, whatever else its box carries (an id, focus)."""
    m = re.search(r'<div class="error-summary"[^>]*><p>(.*?)</p>', response.text, re.S)
    return m.group(1) if m else ""

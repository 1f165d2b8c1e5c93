"""Cross-tenant access, forged CSRF tokens and replayed sessions.

Every route of the app with a path parameter is enumerated from the router (so a new route must be
classified here or the test fails): resident routes are called with another municipality's code from a
signed-in resident session and from a staff session; staff routes with another municipality's ids are
covered from a staff session by tests/staff/test_web.py (not repeated here) and are called from a
resident session here."""

from __future__ import annotations

import contextlib

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from app.main import create_app
from app.staff.web.routes import routes as staff_routes
from tests.hostile.helpers import csrf_from, resident_sign_in
from tests.intake.helpers import make_letters
from tests.staff.conftest import PASSWORD
from tests.staff.test_web import PARAM_OBJECTS, PUBLIC_WITH_PARAMS

RESIDENT_TENANT_PARAMS = {"code"}
PUBLIC_PARAMS = {"bank_code", "lang"}  # the national bank list, the language switch: not tenant data


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def _param_routes(app) -> list[Route]:
    out = []
    for route in app.routes:
        if isinstance(route, Mount):
            assert route.path == "/static", f"{route.path}: classify this mount in tests/hostile/test_sessions.py"
            continue
        if isinstance(route, Route) and route.param_convertors:
            out.append(route)
    return out


def _staff_login(client, code, login_name="admin", totp=""):
    page = client.get("/staff/login")
    return client.post(
        "/staff/login",
        data={
            "csrf_token": csrf_from(page.text),
            "municipality_code": code,
            "login": login_name,
            "password": PASSWORD,
            "totp": totp,
        },
    )


async def test_every_identifier_route_refuses_another_municipality(client, app_pool, settings, make_world):
    with contextlib.ExitStack() as stack:
        await _cross_tenant(stack, client, app_pool, settings, make_world)


async def _cross_tenant(stack, client, app_pool, settings, make_world):
    a, b = await make_world(applications=1), await make_world(applications=1)
    letter_a = (await make_letters(app_pool, settings.master_key_bytes, a.code, 1))[0]
    await make_letters(app_pool, settings.master_key_bytes, b.code, 1)
    resident_sign_in(client, a.code, letter_a)
    household = client.get(f"/m/{a.code}/household")
    assert household.status_code == 200
    secret_marks = [letter_a.access_code, "山田"]  # A's household page shows A's registry names
    assert any(m in household.text for m in secret_marks)
    token = csrf_from(client.get(f"/m/{a.code}/bank").text)

    # A second app instance: a TestClient that has not entered its own lifespan would use the first one's
    # asyncpg pool from another event loop (that crashes the interpreter).
    staff_client = stack.enter_context(TestClient(create_app(settings), follow_redirects=False))
    assert _staff_login(staff_client, a.code, totp=a.totp_now("admin")).status_code == 303
    staff_params = {r.path for r in staff_routes(settings) if r.param_convertors}
    b_ids = {
        "code": b.code,
        "bank_code": "0001",
        "lang": "en",
        "application_id": b.applications[0],
        "program_id": b.program_id,
        "batch_id": 1,
        "payment_id": 1,
        "staff_id": b.staff["rev"].staff_id,
        "grant_id": 1,
        "account": "0" * 64,
        "hold_id": 1,
        "box_id": 1,
        "form_id": 1,
        "token": "A" * 43,
    }
    checked = 0
    # Sign-out last: posting it (with the session's own CSRF token) legitimately ends A's session.
    for route in sorted(_param_routes(client.app), key=lambda r: r.path.endswith("/signout")):
        if route.path.endswith("/signout"):
            # A's own session survived every refusal above: they did not come from a broken session.
            assert client.get(f"/m/{a.code}/household").status_code == 200
        params = set(route.param_convertors)
        public_staff = route.path in PUBLIC_WITH_PARAMS  # before sign-in: an enrolment link
        if route.path.startswith("/staff/"):
            assert (public_staff or params <= PARAM_OBJECTS) and route.path in staff_params  # tests/staff
        else:
            assert params <= RESIDENT_TENANT_PARAMS | PUBLIC_PARAMS, f"{route.path}: classify its parameters here"
        url = route.path_format.format(**b_ids)
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            for who, c in (("resident", client), ("staff", staff_client)):
                r = (
                    c.get(url)
                    if method == "GET"
                    else c.post(url, data={"csrf_token": token, "bank_code": "0001", "access_code": "", "pin": ""})
                )
                checked += 1
                assert r.status_code < 500, (who, method, url, r.status_code)
                assert not any(m in r.text for m in secret_marks[:1]), (who, method, url)
                if (
                    "code" in params
                    and method == "GET"
                    and route.path.rsplit("/", 1)[-1] in ("household", "bank", "confirm", "receipt")
                ):
                    assert r.status_code == 303 and r.headers["location"] == f"/m/{b.code}/signin", (who, url)
                if route.path.startswith("/staff/") and not public_staff and who == "resident":
                    assert r.status_code in (303, 401, 403), (method, url, r.status_code)
    assert checked >= 30


async def test_forged_csrf_tokens_are_refused(client, app_pool, settings, make_world):
    code = (await make_world(applications=0)).code
    letter = (await make_letters(app_pool, settings.master_key_bytes, code, 1))[0]
    page = client.get(f"/m/{code}/signin")
    real = csrf_from(page.text)
    cookies = dict(client.cookies)
    client.cookies.clear()
    other_token = csrf_from(client.get(f"/m/{code}/signin").text)  # another session's token
    client.cookies.clear()
    client.cookies.update(cookies)
    for forged in ("", "x", real[:-1] + ("A" if real[-1] != "A" else "B"), other_token, real + "=", "\x00" + real):
        r = client.post(
            f"/m/{code}/signin", data={"csrf_token": forged, "access_code": letter.access_code, "pin": letter.pin}
        )
        assert r.status_code == 403, (forged, r.status_code)
    r = client.post(f"/m/{code}/signin", data={"access_code": letter.access_code, "pin": letter.pin})
    assert r.status_code == 403
    # Staff: the login form's double-submit token and the per-session token.
    staff = client
    staff.cookies.clear()
    staff.get("/staff/login")
    r = staff.post(
        "/staff/login", data={"csrf_token": "0" * 64, "municipality_code": code, "login": "rev", "password": PASSWORD}
    )
    assert r.status_code == 403
    assert _staff_login(staff, code, "rev").status_code == 303
    good = csrf_from(staff.get("/staff/").text)
    for forged in ("", good[:-2], other_token):
        r = staff.post("/staff/review/search", data={"csrf_token": forged, "receipt_no": "1"})
        assert r.status_code == 403, (forged, r.status_code)


async def test_a_resident_session_replayed_after_sign_out_is_dead(client, app_pool, settings):
    """(The staff side, logout and revocation, is proved by tests/staff/test_web.py.)"""
    letter = (await make_letters(app_pool, settings.master_key_bytes, await _code(settings), 1))[0]
    code = letter.code
    resident_sign_in(client, code, letter)
    stolen = dict(client.cookies)
    token = csrf_from(client.get(f"/m/{code}/bank").text)
    assert client.post(f"/m/{code}/signout", data={"csrf_token": token}).status_code == 303
    replay = client
    replay.cookies.clear()
    replay.cookies.update(stolen)
    for path in ("household", "bank", "confirm", "receipt"):
        r = replay.get(f"/m/{code}/{path}")
        assert r.status_code == 303 and r.headers["location"] == f"/m/{code}/signin", (path, r.status_code)
    r = replay.post(f"/m/{code}/bank", data={"csrf_token": token, "bank_code": "0001"})
    assert r.status_code in (303, 403)


async def _code(settings) -> str:
    import asyncpg

    from app.tenancy.municipalities import add_municipality
    from tests.conftest import next_municipality_code

    conn = await asyncpg.connect(settings.database_owner_url)
    try:
        code = next_municipality_code()
        await add_municipality(conn, settings.master_key_bytes, code, "リプレイ市")
        return code
    finally:
        await conn.close()

"""One session and CSRF mechanism for both sites (app/web/sessions.py, app/web/csrf.py): a CSRF token is
valid only for its own purpose and the value it is bound to, every cookie's flags come from one function,
and sign-in always starts a new session and ends the one it replaces."""

from __future__ import annotations

import ast
from types import SimpleNamespace

import pytest
from starlette.responses import Response
from starlette.testclient import TestClient

from app.main import create_app
from app.web import csrf
from app.web.sessions import RESIDENT_COOKIE, STAFF_COOKIE, new_token, set_cookie
from tests.conftest import ROOT
from tests.hostile.helpers import csrf_from
from tests.intake.helpers import make_letters
from tests.staff.conftest import PASSWORD

PURPOSES = (csrf.RESIDENT, csrf.STAFF, csrf.STAFF_LOGIN, csrf.STAFF_ENROL)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def staff_login(client, code: str, login: str = "rev"):
    page = client.get("/staff/login")
    form = {"csrf_token": csrf_from(page.text), "municipality_code": code, "login": login, "password": PASSWORD}
    return client.post("/staff/login", data=form)


def test_a_token_is_valid_only_for_the_purpose_it_was_minted_for():
    """The same bound value, another purpose (another derived key): refused, whichever way round."""
    bound = new_token()
    for minted in PURPOSES:
        token = csrf.mint("s3cret", minted, bound)
        for checked in PURPOSES:
            assert csrf.matches("s3cret", checked, bound, token) == (checked == minted), (minted, checked)


def test_a_token_is_valid_only_for_the_value_it_is_bound_to():
    nonce, other = new_token(), new_token()
    token = csrf.mint("s3cret", csrf.STAFF_LOGIN, nonce)
    assert csrf.matches("s3cret", csrf.STAFF_LOGIN, nonce, token)
    assert not csrf.matches("s3cret", csrf.STAFF_LOGIN, other, token)
    assert not csrf.matches("other-secret", csrf.STAFF_LOGIN, nonce, token)
    for nothing in (None, ""):  # no session, no nonce cookie: nothing is valid
        assert not csrf.matches("s3cret", csrf.STAFF_LOGIN, nothing, token)
    for sent in (None, "", 123, token[:-1], token + "=", "\x00" + token, "あ" + token[1:]):
        assert not csrf.matches("s3cret", csrf.STAFF_LOGIN, nonce, sent), sent


async def test_a_token_of_one_site_is_refused_by_the_other(client, app_pool, settings, make_world):
    """A resident-session token and a console-session token, each bound to the other site's very cookie:
    only the token of the site's own purpose passes."""
    world = await make_world(applications=0)
    letter = (await make_letters(app_pool, settings.master_key_bytes, world.code, 1))[0]
    client.get(f"/m/{world.code}/signin")
    resident_cookie = client.cookies.get(RESIDENT_COOKIE.name)
    assert staff_login(client, world.code).status_code == 303
    staff_cookie = client.cookies.get(STAFF_COOKIE.name)
    secret = settings.session_secret

    forged = csrf.mint(secret, csrf.RESIDENT, staff_cookie)
    assert client.post("/staff/review/search", data={"csrf_token": forged, "receipt_no": "1"}).status_code == 403
    real = csrf.mint(secret, csrf.STAFF, staff_cookie)
    r = client.post("/staff/review/search", data={"csrf_token": real, "receipt_no": "1"})
    assert r.status_code == 404  # past the CSRF check: no application has that receipt number

    signin = {"access_code": letter.access_code, "pin": letter.pin}
    forged = csrf.mint(secret, csrf.STAFF, resident_cookie)
    assert client.post(f"/m/{world.code}/signin", data={"csrf_token": forged, **signin}).status_code == 403
    real = csrf.mint(secret, csrf.RESIDENT, resident_cookie)
    assert client.post(f"/m/{world.code}/signin", data={"csrf_token": real, **signin}).status_code == 303


async def test_the_sign_in_form_token_is_bound_to_its_own_nonce_cookie(client, settings, make_world):
    world = await make_world(applications=0)
    earlier_token = csrf_from(client.get("/staff/login").text)
    client.cookies.clear()  # another browser, or the cookie gone: a new nonce
    own_token = csrf_from(client.get("/staff/login").text)
    form = {"municipality_code": world.code, "login": "rev", "password": "wrong-password-x"}
    assert client.post("/staff/login", data={"csrf_token": earlier_token, **form}).status_code == 403
    assert client.post("/staff/login", data={"csrf_token": own_token, **form}).status_code == 401


def _cookie(response, name: str) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0]


def test_no_module_but_the_session_mechanism_sets_a_cookie():
    """Every cookie of both sites (sessions, sign-in and enrolment nonces, trusted devices) is set and deleted
    through app/web/sessions.py's set_cookie and clear_cookie."""
    calls = []
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("set_cookie", "delete_cookie"):
                calls.append(str(path.relative_to(ROOT)))
    assert calls and set(calls) == {"app/web/sessions.py"}


async def test_both_sites_cookies_get_their_flags_from_one_function(client, settings, make_world):
    """The two session cookies carry HttpOnly, their SameSite and Path, and Secure in production only."""
    world = await make_world(applications=0)
    resident = _cookie(client.get(f"/m/{world.code}/signin"), RESIDENT_COOKIE.name)
    staff = _cookie(staff_login(client, world.code), STAFF_COOKIE.name)
    for header, path, samesite in ((resident, "/", "lax"), (staff, "/staff", "strict")):
        attributes = {a.strip().lower() for a in header.split(";")[1:]}
        assert {"httponly", f"path={path}", f"samesite={samesite}"} <= attributes, header
        assert "secure" not in attributes, header  # the suite runs in test mode, over plain HTTP
    assert "max-age=1800" in resident.lower()

    for production in (False, True):
        settings_ = SimpleNamespace(production=production)
        request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(settings=settings_)))
        response = Response()
        set_cookie(request, response, STAFF_COOKIE, "131016." + new_token())  # type: ignore[arg-type]
        assert ("; secure" in response.headers["set-cookie"].lower()) == production


async def test_signing_in_again_ends_the_session_it_replaces(client, make_world):
    """The console's sign-in starts a new session under a new token and revokes the one the browser held,
    so a cookie copied before the second sign-in is dead after it."""
    world = await make_world(applications=0)
    assert staff_login(client, world.code).status_code == 303
    first = client.cookies.get(STAFF_COOKIE.name)
    assert staff_login(client, world.code).status_code == 303
    second = client.cookies.get(STAFF_COOKIE.name)
    assert second != first and client.get("/staff/").status_code == 200
    client.cookies.clear()
    client.cookies.set(STAFF_COOKIE.name, first, path="/staff")
    r = client.get("/staff/")
    assert r.status_code == 303 and r.headers["location"] == "/staff/login?expired=1"

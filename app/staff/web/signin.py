"""Sign-in and sign-out (/staff/login, /staff/logout): the form, its delays and the session it starts."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response

from app import audit
from app.crypto import derive_key
from app.staff import accounts, sessions, signin, throttle
from app.staff.errors import LoginFailed
from app.staff.web.common import (
    EXPIRED_MESSAGE,
    FLASH_COOKIE,
    cipher,
    flash_of,
    page,
    redirect,
    safe_next,
    start_session,
)
from app.tenancy.codes import MunicipalityCodeError, validate_code
from app.tenancy.municipalities import get_municipality
from app.tenancy.transaction import tenant_transaction
from app.web import csrf
from app.web.admission import client_address
from app.web.bodies import read_form
from app.web.sessions import STAFF_COOKIE, CookiePolicy, clear_cookie, new_token, set_cookie
from app.web.templates import render
from payouts.bankdays import JST

# Before sign-in there is no session: the form's CSRF token is bound to this nonce cookie (app/web/csrf.py).
LOGIN_NONCE_COOKIE = CookiePolicy("kyufu_staff_login", "/staff", "strict", 3600)
DEVICE_COOKIE = CookiePolicy(signin.DEVICE_COOKIE, "/staff", "strict", signin.DEVICE_IDLE_DAYS * 24 * 60 * 60)


def _device_key(request: Request) -> bytes:
    """The key that signs device cookies (app/staff/signin.py)."""
    return derive_key(request.app.state.settings.session_secret or "", "staff-console")


async def login_page(request: Request) -> Response:
    notice = flash_of(request)  # e.g. after sign-out
    response = _render_login(
        request,
        status=200,
        message=EXPIRED_MESSAGE if request.query_params.get("expired") else "",
        next_url=safe_next(request.query_params.get("next")),
        notice=notice,
    )
    if notice:
        clear_cookie(response, FLASH_COOKIE)
    return response


def _render_login(
    request: Request,
    *,
    status: int,
    message: str = "",
    municipality: str = "",
    login: str = "",
    headers: dict[str, str] | None = None,
    next_url: str = "/staff/",
    notice: str = "",
) -> Response:
    nonce = new_token()
    response = render(
        request,
        "staff_login.html",
        {
            "title": "職員ログイン",
            "csrf_token": csrf.token_for(request, csrf.STAFF_LOGIN, nonce),
            "message": message,
            "municipality": municipality,
            "login": login,
            "next_url": next_url,
            "notice": notice,
        },
        status_code=status,
        headers=headers,
    )
    set_cookie(request, response, LOGIN_NONCE_COOKIE, nonce)
    return response


def _wait_message(wait_s: int, *, per_login: bool, trusted: bool) -> str:
    """When the person may try again, in Japanese time. Worded the same whether the login exists or not."""
    until = (dt.datetime.now(JST) + dt.timedelta(seconds=wait_s)).strftime("%H時%M分%S秒")
    about = f"{wait_s}秒" if wait_s < 60 else f"{-(-wait_s // 60)}分"
    if not per_login:
        return (
            f"ログインできませんでした。しばらく時間をおいて、{until}（約{about}後）以降にもう一度お試しください。"
            "この接続元からの失敗が続いたため、一時的に受け付けていません。解除が必要な場合は、"
            "kyufuの運用担当窓口にご連絡ください。"
        )
    text = (
        f"ログインできませんでした。失敗が続いたため、このログインIDでのログインは{until}（約{about}後）まで"
        "受け付けません。その後にもう一度お試しください。"
    )
    if not trusted:
        text += "以前にこのログインIDでログインした端末（ブラウザ）からは、待たずにログインできます。"
    # Whom to ask, the same words whether the login exists or not: an admin of the municipality can end
    # the wait (職員一覧 → ログイン待機を解除, app/staff/signin.clear_delays).
    text += (
        "急いでいる場合や、ご自身で間違えた覚えがない場合は、所属団体のkyufu管理者（職員の管理権限を持つ方）に"
        "連絡してください。管理者は「職員一覧」の「ログイン待機を解除」で待ち時間を解除できます。"
    )
    return text


async def login_submit(request: Request) -> Response:
    form = await read_form(request)
    csrf.check(request, csrf.STAFF_LOGIN, request.cookies.get(LOGIN_NONCE_COOKIE.name), form)
    key = _device_key(request)
    code = str(form.get("municipality_code", "")).strip()
    login_name = str(form.get("login", "")).strip().lower()
    next_url = safe_next(form.get("next"))
    fail = LoginFailed().message
    redis, ip = request.app.state.redis, client_address(request.scope)
    device_value = request.cookies.get(DEVICE_COOKIE.name)
    devices = signin.devices_in_cookie(key, device_value, code)
    address_wait_s = await throttle.blocked_for(redis, ip)
    if address_wait_s and not devices:
        # A throttled address reaches the database only from a browser holding a device of this municipality
        # (accounts.login then lets it through only to that device's own account): an office behind one
        # NAT address keeps its known browsers working while a guesser there is held back.
        return _render_login(
            request,
            status=429,
            municipality=code,
            login=login_name,
            next_url=next_url,
            message=_wait_message(address_wait_s, per_login=False, trusted=False),
            headers={"Retry-After": str(address_wait_s)},
        )

    async def failed(result: accounts.SignIn | None = None) -> Response:
        await throttle.record_failure(redis, ip)
        if result is None or not result.wait_s:
            return _render_login(
                request, status=401, message=fail, municipality=code, login=login_name, next_url=next_url
            )
        per_login = result.reason != "address_throttled"
        message = _wait_message(result.wait_s, per_login=per_login, trusted=result.trusted)
        return _render_login(
            request,
            status=429 if result.refused else 401,
            message=message,
            municipality=code,
            login=login_name,
            next_url=next_url,
            headers={"Retry-After": str(result.wait_s)},
        )

    try:
        validate_code(code)
    except MunicipalityCodeError:
        return await failed()
    if not login_name or len(login_name) > 64:
        return await failed()
    async with tenant_transaction(request.app.state.pool, code) as conn:
        if await get_municipality(conn, code) is None:
            return await failed()
        result = await accounts.login(
            conn,
            await cipher(request, conn, code),
            code,
            login_name,
            str(form.get("password", "")),
            str(form.get("totp", "")),
            devices=devices,
            address_wait_s=address_wait_s,
        )
        # The failure counters and the audit entry commit with this transaction either way.
        cookie = None
        if result.staff:
            cookie = await start_session(conn, result.staff, replacing=request.cookies.get(STAFF_COOKIE.name))
    if result.staff is None or cookie is None:
        return await failed(result)
    response = redirect(next_url)
    set_cookie(request, response, STAFF_COOKIE, cookie)
    set_cookie(
        request,
        response,
        DEVICE_COOKIE,
        signin.device_cookie(key, device_value, code, result.staff.staff_id, result.device_id or ""),
    )
    clear_cookie(response, LOGIN_NONCE_COOKIE)
    return response


@page(without_roles=True)
async def logout(request, conn, staff, ctx):
    parsed = sessions.split_cookie(request.cookies.get(STAFF_COOKIE.name))
    assert parsed is not None  # @page signed the staff member in with this very cookie
    code, token = parsed
    await sessions.PostgresStore(conn, code).revoke(token)
    await audit.append(conn, code, staff, "logout", "staff", staff.staff_id)
    response = redirect("/staff/login", flash="logout")
    clear_cookie(response, STAFF_COOKIE)
    return response

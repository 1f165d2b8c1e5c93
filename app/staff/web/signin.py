"""Sign-in and sign-out (/staff/login, /staff/logout): the form, its delays and the session it starts."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from app import audit
from app.staff import accounts, sessions, signin, throttle
from app.staff.errors import LoginFailed
from app.staff.web.common import cipher, page, redirect, secret
from app.tenancy.codes import MunicipalityCodeError, validate_code
from app.tenancy.municipalities import get_municipality
from app.tenancy.transaction import tenant_transaction
from app.web.admission import client_address
from app.web.bodies import read_form
from app.web.errors import CsrfError
from app.web.templates import render
from payouts.bankdays import JST

LOGIN_NONCE_COOKIE = "kyufu_staff_login"


def _login_csrf(secret: bytes, nonce: str) -> str:
    # Before sign-in there is no session: a nonce cookie and its HMAC in the form (double submit).
    return hmac.new(secret, b"kyufu-staff-login|" + nonce.encode(), hashlib.sha256).hexdigest()


async def login_page(request: Request) -> Response:
    return _render_login(
        request, status=200, message="ログインの有効期限が切れました。" if request.query_params.get("expired") else ""
    )


def _render_login(
    request: Request,
    *,
    status: int,
    message: str = "",
    municipality: str = "",
    login: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    nonce = secrets.token_urlsafe(16)
    response = render(
        request,
        "staff_login.html",
        {
            "title": "職員ログイン",
            "csrf_token": _login_csrf(secret(request), nonce),
            "message": message,
            "municipality": municipality,
            "login": login,
        },
        status_code=status,
        headers=headers,
    )
    response.set_cookie(
        LOGIN_NONCE_COOKIE,
        nonce,
        path="/staff",
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.production,
        max_age=3600,
    )
    return response


def _wait_message(wait_s: int, *, per_login: bool, trusted: bool) -> str:
    """When the person may try again, in Japanese time. Worded the same whether the login exists or not."""
    until = (dt.datetime.now(JST) + dt.timedelta(seconds=wait_s)).strftime("%H時%M分%S秒")
    about = f"{wait_s}秒" if wait_s < 60 else f"{-(-wait_s // 60)}分"
    if not per_login:
        return f"ログインできませんでした。しばらく時間をおいて、{until}（約{about}後）以降にもう一度お試しください。"
    text = (
        f"ログインできませんでした。失敗が続いたため、このログインIDでのログインは{until}（約{about}後）まで"
        "受け付けません。その後にもう一度お試しください。"
    )
    if not trusted:
        text += "以前にこのログインIDでログインした端末（ブラウザ）からは、待たずにログインできます。"
    return text


async def login_submit(request: Request) -> Response:
    form = await read_form(request)
    nonce = request.cookies.get(LOGIN_NONCE_COOKIE, "")
    sent = form.get("csrf_token")
    key = secret(request)
    if not nonce or not isinstance(sent, str) or not hmac.compare_digest(sent, _login_csrf(key, nonce)):
        raise CsrfError()
    code = str(form.get("municipality_code", "")).strip()
    login_name = str(form.get("login", "")).strip().lower()
    fail = LoginFailed().message
    redis, ip = request.app.state.redis, client_address(request.scope)
    device_value = request.cookies.get(signin.DEVICE_COOKIE)
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
            message=_wait_message(address_wait_s, per_login=False, trusted=False),
            headers={"Retry-After": str(address_wait_s)},
        )

    async def failed(result: accounts.SignIn | None = None) -> Response:
        await throttle.record_failure(redis, ip)
        if result is None or not result.wait_s:
            return _render_login(request, status=401, message=fail, municipality=code, login=login_name)
        per_login = result.reason != "address_throttled"
        message = _wait_message(result.wait_s, per_login=per_login, trusted=result.trusted)
        return _render_login(
            request,
            status=429 if result.refused else 401,
            message=message,
            municipality=code,
            login=login_name,
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
        cookie = await sessions.create(conn, code, result.staff.staff_id) if result.staff else None
    if result.staff is None or cookie is None:
        return await failed(result)
    production = request.app.state.settings.production
    response = redirect("/staff/")
    response.set_cookie(sessions.COOKIE, cookie, path="/staff", httponly=True, samesite="strict", secure=production)
    response.set_cookie(
        signin.DEVICE_COOKIE,
        signin.device_cookie(key, device_value, code, result.staff.staff_id, result.device_id or ""),
        path="/staff",
        httponly=True,
        samesite="strict",
        secure=production,
        max_age=signin.DEVICE_IDLE_DAYS * 24 * 60 * 60,
    )
    response.delete_cookie(LOGIN_NONCE_COOKIE, path="/staff")
    return response


@page(without_roles=True)
async def logout(request, conn, staff, ctx):
    parsed = sessions.split_cookie(request.cookies.get(sessions.COOKIE))
    assert parsed is not None  # @page signed the staff member in with this very cookie
    code, token = parsed
    await sessions.revoke(conn, code, token)
    await audit.append(conn, code, staff, "logout", "staff", staff.staff_id)
    response = redirect("/staff/login")
    response.delete_cookie(sessions.COOKIE, path="/staff")
    return response

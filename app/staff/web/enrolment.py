"""Enrolment (/staff/enroll/<code>/<token>): before sign-in, the link's token is the credential; its owner
sets their password and TOTP here."""

from __future__ import annotations

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from app.crypto import FieldCipher
from app.principals import ROLE_LABELS
from app.staff import enrolment
from app.staff.errors import NotFound
from app.staff.web.common import cipher
from app.tenancy.codes import MunicipalityCodeError, validate_code
from app.tenancy.transaction import tenant_transaction
from app.web import csrf
from app.web.bodies import read_form
from app.web.sessions import CookiePolicy, clear_cookie, new_token, set_cookie
from app.web.templates import render

# No session yet: the form's CSRF token is bound to this nonce cookie (app/web/csrf.py), like the sign-in form.
ENROL_NONCE_COOKIE = CookiePolicy("kyufu_staff_enrol", "/staff/enroll", "strict", 3600)
ENROL_MESSAGES = {
    "unknown": (404, "この登録用リンクは無効です。アドレスをもう一度確認してください。"),
    "used": (
        410,
        "この登録用リンクは使用済みか、新しいリンクが発行されたため使えません。"
        "必要なら管理者に新しいリンクの発行を依頼してください。",
    ),
    "expired": (
        410,
        f"この登録用リンクは有効期限（発行から{enrolment.LIFETIME_H}時間）が切れています。"
        "管理者に新しいリンクの発行を依頼してください。",
    ),
    "disabled": (410, "このアカウントは無効にされています。管理者に確認してください。"),
    "unreadable": (
        409,
        "この登録用リンクの情報を読み出せませんでした（鍵の不一致またはデータ破損）。"
        "管理者に新しいリンクの発行を依頼してください。",
    ),
}


def _enrol_path(request: Request) -> tuple[str, str]:
    code, token = request.path_params["code"], request.path_params["token"]
    try:
        validate_code(code)
    except MunicipalityCodeError:
        raise NotFound(ENROL_MESSAGES["unknown"][1]) from None
    if not enrolment.TOKEN.fullmatch(token):
        raise NotFound(ENROL_MESSAGES["unknown"][1])
    return code, token


async def _enrol_cipher(request: Request, conn: asyncpg.Connection, code: str) -> FieldCipher:
    try:
        return await cipher(request, conn, code)
    except LookupError:
        # A well-formed code of no registered municipality: no such link (found by tests/hostile/).
        raise NotFound(ENROL_MESSAGES["unknown"][1]) from None


def _render_enrol(request: Request, code: str, link: enrolment.Link, nonce: str | None = None) -> Response:
    status, message = ENROL_MESSAGES.get(link.state, (200, ""))
    if link.errors:
        status = 422
    new_nonce = nonce or new_token()
    response = render(
        request,
        "staff_enrol.html",
        {
            "title": "職員アカウントの登録",
            "link": link,
            "message": message,
            "municipality": code,
            "role_labels": ROLE_LABELS,
            "csrf_token": csrf.token_for(request, csrf.STAFF_ENROL, new_nonce),
        },
        status_code=status,
    )
    if link.state == "ok" and not link.completed and nonce is None:
        set_cookie(request, response, ENROL_NONCE_COOKIE, new_nonce)
    return response


async def enrol_page(request: Request) -> Response:
    code, token = _enrol_path(request)
    async with tenant_transaction(request.app.state.pool, code) as conn:
        link = await enrolment.open_link(conn, await _enrol_cipher(request, conn, code), code, token)
    return _render_enrol(request, code, link)


async def enrol_submit(request: Request) -> Response:
    code, token = _enrol_path(request)
    form = await read_form(request)
    nonce = request.cookies.get(ENROL_NONCE_COOKIE.name)
    csrf.check(request, csrf.STAFF_ENROL, nonce, form)
    async with tenant_transaction(request.app.state.pool, code) as conn:
        link = await enrolment.complete(
            conn,
            await _enrol_cipher(request, conn, code),
            code,
            token,
            str(form.get("password", "")),
            str(form.get("password_confirm", "")),
            str(form.get("totp", "")),
        )
    response = _render_enrol(request, code, link, nonce=nonce)
    if link.completed:
        clear_cookie(response, ENROL_NONCE_COOKIE)
    return response

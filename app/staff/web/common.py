"""What every console page shares: the session (`start_session`, `page()`), the small helpers of the
handlers, the status labels.

Sessions and CSRF are the mechanism both sites share (app/web/sessions.py, app/web/csrf.py), with the
console's store in PostgreSQL (app/staff/sessions.py). Every page after sign-in goes through `page()`: the
session cookie names the municipality, the whole request runs in tenant_transaction(pool, that code), so
an id of another municipality's object is simply not there (404); POSTs must carry the session's CSRF
token; the handler runs with the signed-in `Staff`.
Domain rules (roles, four eyes, states) live in the domain modules, which raise StaffError subclasses that
app/web/setup.py renders.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app import outbox
from app.crypto import FieldCipher
from app.principals import ROLE_LABELS
from app.staff import sessions
from app.staff.accounts import Staff
from app.staff.errors import Forbidden, LoginFailed, NotFound
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from app.web import csrf
from app.web.bodies import read_form
from app.web.sessions import STAFF_COOKIE, begin, clear_cookie
from payouts.bankdays import JST

log = logging.getLogger("kyufu.staff")

STATUS_LABELS = {
    "received": "受付",
    "verified": "確認済",
    "needs_review": "要審査",
    "approved": "承認",
    "rejected": "却下",
    "withdrawn": "取下げ",
    "preparing": "起案処理中",
    "draft": "起案（承認待ち）",
    "cancelled": "取消",
    "released": "送信済",
}

Handler = Callable[[Request, asyncpg.Connection, Staff, dict[str, Any]], Awaitable[Response]]


def int_param(request: Request, name: str) -> int:
    raw = request.path_params[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound()
    return int(raw)


async def _dispatch_jobs(request: Request, code: str) -> None:
    """After a console action commits, hand the jobs it asked for (a draft's hash, a release) to the worker
    now rather than at the sweeper's next round (15 s). Best effort: if Redis is down the sweeper does it."""
    try:
        await outbox.dispatch(request.app.state.pool, request.app.state.redis, code)
    except Exception as exc:  # Redis unreachable or slow: the outbox rows wait for the sweeper
        log.warning("console dispatch for %s deferred to the sweeper (%s)", code, type(exc).__name__)


def page(*roles: str, without_roles: bool = False) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler: session, municipality scope, CSRF on POST, role check, one transaction.

    With no `roles`, any staff member who holds at least one role may use it; `without_roles` also lets
    in an account whose roles another admin has not confirmed yet (sign-out)."""

    def wrap(handler: Handler):
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            cookie = request.cookies.get(STAFF_COOKIE.name)
            parsed = sessions.split_cookie(cookie)
            if cookie is None or parsed is None:  # (split_cookie(None) is None)
                return _to_login(request)
            code, token = parsed
            form = None
            if request.method == "POST":
                form = await read_form(request)
                csrf.check(request, csrf.STAFF, cookie, form)
            async with tenant_transaction(request.app.state.pool, code) as conn:
                staff = await sessions.PostgresStore(conn, code).load(token)
                if staff is None:
                    return _to_login(request, expired=True)
                if roles:
                    staff.require(*roles)
                elif not staff.roles and not without_roles:
                    # Enrolled, but no role confirmed yet: nothing to show (sign-out still works).
                    raise Forbidden("権限がまだ有効になっていません。管理者が権限を確認した後にお使いください。")
                token = csrf.token_for(request, csrf.STAFF, cookie)
                ctx = {
                    "staff": staff,
                    "csrf_token": token,
                    "form": form,
                    "csrf": lambda: Markup('<input type="hidden" name="csrf_token" value="{}">').format(token),
                    "role_labels": ROLE_LABELS,
                    "status_labels": STATUS_LABELS,
                }
                response = await handler(request, conn, staff, ctx)
            if request.method == "POST":
                await _dispatch_jobs(request, code)
            return response

        return endpoint

    return wrap


def _to_login(request: Request, *, expired: bool = False) -> Response:
    if request.method != "GET":
        raise LoginFailed("ログインの有効期限が切れました。もう一度ログインしてください。")
    response = RedirectResponse("/staff/login" + ("?expired=1" if expired else ""), status_code=303)
    clear_cookie(response, STAFF_COOKIE)
    return response


async def start_session(conn: asyncpg.Connection, staff: Staff, *, replacing: str | None = None) -> str:
    """Sign-in: a new session for `staff` (inside their municipality's transaction), ending the one whose
    cookie the browser sent (`replacing`) if it is of the same municipality; returns the cookie value."""
    code = staff.municipality_code
    old = sessions.split_cookie(replacing)
    token = await begin(sessions.PostgresStore(conn, code), staff, replacing=old[1] if old and old[0] == code else None)
    return sessions.cookie_value(code, token)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def cipher(request: Request, conn: asyncpg.Connection, code: str) -> FieldCipher:
    return await load_field_cipher(conn, request.app.state.settings.master_key_bytes, code)


def jst(value: dt.datetime | None) -> str:
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M") if value else "不明"

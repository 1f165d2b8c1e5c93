"""What every console page shares: the session (`start_session`, `page()`), the small helpers of the
handlers, the status labels.

Sessions and CSRF are the mechanism both sites share (app/web/sessions.py, app/web/csrf.py), with the
console's store in PostgreSQL (app/staff/sessions.py). Every page after sign-in goes through `page()`: the
session cookie names the municipality, the whole request runs in tenant_transaction(pool, that code), so
an id of another municipality's object is simply not there (404); POSTs must carry the session's CSRF
token; the handler runs with the signed-in `Staff`.
Domain rules (roles, four eyes, states) live in the domain modules, which raise StaffError subclasses.

How the console answers (issue 18): a refusal of a POST (a domain error the handler raised) re-renders the
page the person was on, declared by the handler as `page(..., back=<its GET endpoint>)`, with the message
inline and what they typed kept (`kept(name)` in templates); without `back`, or when that page is refused
too, the console's own error page. A successful action redirects with a flash message (`redirect(url,
flash=KEY)`, a key of FLASH_MESSAGES in a short cookie, never free text). An expired session sends a POST
(and a GET) to the login page, which returns to the page after sign-in. Everything the console shows in
messages is Japanese: field names in parentheses that domain messages carry for the CLI are left out.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app import outbox
from app.crypto import FieldCipher
from app.errors import DomainError, Forbidden, InvalidInput, NotFound, RateLimited, Unauthenticated
from app.principals import ROLE_LABELS
from app.staff import sessions
from app.staff.accounts import Staff
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from app.web import csrf
from app.web.bodies import read_form
from app.web.sessions import STAFF_COOKIE, CookiePolicy, begin, clear_cookie, set_cookie
from app.web.setup import domain_status
from app.web.templates import render
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
Endpoint = Callable[[Request], Awaitable[Response]]

# Success messages after an action (the flash cookie carries the key only, so no page can be made to show
# text of someone else's choosing).
FLASH_MESSAGES = {
    "review.approve": "承認しました（支払の対象になります）。",
    "review.reject": "却下しました。",
    "application.account_change": "口座変更の届出を記録しました。新しい口座で確認をやり直します。",
    "batch.draft": "起案しました。支払データの作成が終わると承認を依頼できます。",
    "batch.approve": "承認しました。",
    "batch.reject": "差し戻しました。",
    "batch.resubmit": "再度承認を依頼しました。",
    "batch.cancel": "起案を取り消しました。",
    "batch.release": "銀行への送信を依頼しました。送信が終わると状態が「送信済」になります。",
    "batch.account_override": "この口座への複数の支払を確認しました。",
    "hold.place": "保留しました。この受給権は振込起案の対象になりません。",
    "hold.stop": "支給停止にしました。解除は別の審査担当者が行います。",
    "hold.release": "保留を解除しました。次の振込起案の対象になります。",
    "hold.decide": "判断を記録しました。",
    "hold.rule": "給付の設定を変更しました。",
    "payment.recontact": "再連絡を記録しました。",
    "payment.reissue": "訂正した口座で再発行しました。",
    "staff.create": "職員を追加しました。",
    "staff.revoke": "全セッションを終了し、端末の信頼を取り消しました。",
    "staff.disable": "アカウントを無効にしました。",
    "staff.enable": "アカウントを有効にしました。",
    "staff.unlock": "ログイン待機を解除しました。",
    "staff.roles": "権限を変更しました（付与の申請は別の管理者の確認後に有効になります）。",
    "grant.confirm": "権限を確認し、有効にしました。",
    "grant.refuse": "権限付与の申請を却下（取り下げ）しました。",
    "proxy.record": "代理申請を受け付けました（審査に回ります）。",
    "proxy.setting": "給付の設定を変更しました。",
    "dv.file": "申出を記録し、住民票のある団体に除外を依頼しました。",
    "dv.answer": "回答を記録しました。",
    "recall.request": "銀行への組戻し依頼を記録しました。",
    "recall.answer": "銀行の回答を記録しました。",
    "debt.open": "返還請求を記録しました。",
    "debt.notice": "通知を記録しました。",
    "debt.repayment": "返還を記録しました。",
    "debt.write_off_request": "償却を申請しました（別の承認者が承認します）。",
    "debt.write_off_approve": "償却を承認しました。",
    "debt.write_off_refuse": "償却を認めない（申請を取り下げる）ことを記録しました。",
    "settings.bank": "保存しました。",
    "paper.box_receive": "箱を受け付けました。通番の順に入力してください。",
    "paper.resolve": "裁定を保存しました。",
    "paper.box_add_form": "申請書を1枚追加しました（箱の枚数も1増えました）。",
    "logout": "ログアウトしました。",
}
# Every endpoint page() made: its handler and roles, so that a refusal can show a page again (`back`).
_PAGES: dict[Endpoint, tuple[Handler, tuple[str, ...], bool]] = {}
FLASH_COOKIE = CookiePolicy("kyufu_staff_flash", "/staff", "strict", 60)
EXPIRED_MESSAGE = "セッションの有効期限が切れました。もう一度ログインしてください。"

# Domain messages name the form field in parentheses for the CLI and the API ("却下の理由（comment）を…"); a
# person at the console sees the Japanese label on the form, so the identifier is left out.
_FIELD_NAME = re.compile(r"（[a-z][a-z0-9_]*）")


def console_message(message: str) -> str:
    return _FIELD_NAME.sub("", message)


def form_date(value: object, field: str) -> dt.date:
    """A date field of a console form, as YYYY-MM-DD (what <input type="date"> sends)."""
    text = str(value or "").strip()
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field}は YYYY-MM-DD 形式の日付で入力してください。") from None


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


def _kept(form: FormData | None) -> Callable[..., str]:
    def kept(name: str, default: str = "") -> str:
        """What the person typed into `name`, when the page is shown again after a refusal."""
        value = form.get(name) if form is not None else None
        return value if isinstance(value, str) else default

    return kept


def _context(request: Request, staff: Staff, cookie: str, form: FormData | None) -> dict[str, Any]:
    token = csrf.token_for(request, csrf.STAFF, cookie)
    return {
        "staff": staff,
        "csrf_token": token,
        "form": form,
        "csrf": lambda: Markup('<input type="hidden" name="csrf_token" value="{}">').format(token),
        "role_labels": ROLE_LABELS,
        "status_labels": STATUS_LABELS,
        "kept": _kept(None),
        "error": "",
        "flash": "",
    }


def page(
    *roles: str, without_roles: bool = False, back: Endpoint | None = None, keep_query: tuple[str, ...] = ()
) -> Callable[[Handler], Endpoint]:
    """Wrap a handler: session, municipality scope, CSRF on POST, role check, one transaction.

    With no `roles`, any staff member who holds at least one role may use it; `without_roles` also lets
    in an account whose roles another admin has not confirmed yet (sign-out). `back`: the page (a GET
    endpoint made by page(), with the same path parameters) that a refusal of this handler re-renders, with
    the form fields named in `keep_query` as its query string."""

    def wrap(handler: Handler) -> Endpoint:
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
            staff, flash, in_handler = None, "", False
            try:
                async with tenant_transaction(request.app.state.pool, code) as conn:
                    staff = await sessions.PostgresStore(conn, code).load(token)
                    if staff is None:
                        return _to_login(request, expired=True)
                    if roles:
                        staff.require(*roles)
                    elif not staff.roles and not without_roles:
                        # Enrolled, but no role confirmed yet: nothing to show (sign-out still works).
                        raise Forbidden("権限がまだ有効になっていません。管理者が権限を確認した後にお使いください。")
                    ctx = _context(request, staff, cookie, form)
                    flash = flash_of(request) if request.method == "GET" else ""
                    ctx["flash"] = flash
                    in_handler = True
                    response = await handler(request, conn, staff, ctx)
            except DomainError as exc:
                if staff is None or isinstance(exc, (RateLimited, Unauthenticated)):
                    raise  # app/web/setup.py answers (its headers, its status)
                return await _refused(request, exc, staff, form, back if in_handler else None, keep_query)
            if request.method == "POST":
                if isinstance(response, Done) and response.flash in FLASH_MESSAGES:
                    set_cookie(request, response, FLASH_COOKIE, response.flash)
                await _dispatch_jobs(request, code)
            elif flash:
                clear_cookie(response, FLASH_COOKIE)
            return response

        _PAGES[endpoint] = (handler, roles, without_roles)
        return endpoint

    return wrap


async def _refused(
    request: Request,
    exc: DomainError,
    staff: Staff,
    form: FormData | None,
    back: Endpoint | None,
    keep_query: tuple[str, ...],
) -> Response:
    """A domain error of a console page: the page the person was on again (a POST's `back`), with the
    message and their input, else the console's error page. The failed transaction has rolled back; the
    page is read in a new one."""
    status, message = domain_status(exc), console_message(exc.message)
    cookie = request.cookies[STAFF_COOKIE.name]  # page() got this far with it
    code, token = staff.municipality_code, sessions.split_cookie(cookie)[1]  # type: ignore[index]
    if back is not None and request.method == "POST":
        try:
            async with tenant_transaction(request.app.state.pool, code) as conn:
                current = await sessions.PostgresStore(conn, code).load(token)
                if current is not None:
                    ctx = _context(request, current, cookie, form)
                    if isinstance(exc, InvalidInput) and exc.field_errors:
                        ctx["field_errors"] = exc.field_errors  # each message at its field (staff_paper_fields.html)
                    return await show_again(back, request, conn, current, ctx, message, status, keep_query)
        except DomainError:
            pass  # the page itself is refused now (e.g. another municipality's id): the error page below
    ctx = _context(request, staff, cookie, None)
    return render(
        request,
        "staff_error.html",
        ctx
        | {
            "title": "操作できませんでした",
            "message": message,
            "back_url": _local_path(request.headers.get("referer")),
        },
        status_code=status,
    )


async def show_again(
    back: Endpoint,
    request: Request,
    conn: asyncpg.Connection,
    staff: Staff,
    ctx: dict[str, Any],
    message: str,
    status: int = 200,
    keep_query: tuple[str, ...] = (),
) -> Response:
    """The page `back` (a GET endpoint made by page()) for this POST: same path parameters, the form's
    `keep_query` fields as its query string, `message` inline and the form's values kept (`kept()`)."""
    handler, roles, without_roles = _PAGES[back]
    if roles:
        staff.require(*roles)
    elif not staff.roles and not without_roles:
        raise Forbidden()
    form = ctx["form"]
    query = urlencode([(k, v) for k in keep_query if isinstance(v := form.get(k) if form else None, str)])
    again = Request(dict(request.scope, method="GET", query_string=query.encode()))
    response = await handler(again, conn, staff, ctx | {"kept": _kept(form), "error": message})
    if response.status_code == 200:
        response.status_code = status
    return response


def _local_path(url: str | None) -> str | None:
    """`url` as a path of the console on this site (a Referer, a `next`), or None: never another site."""
    if not url or len(url) > 2000:
        return None
    parts = urlsplit(url)
    path = parts.path
    if not path.startswith("/staff/") or path.startswith("/staff/login") or "//" in path or "\\" in path:
        return None
    if not (path + parts.query).isprintable() or not (path + parts.query).isascii():
        return None
    return path + (f"?{parts.query}" if parts.query else "")


def _to_login(request: Request, *, expired: bool = False) -> Response:
    """To the login page, which returns to the page after sign-in: the page asked for (a GET) or the one
    the form was on (a POST's Referer; what was typed in it is lost)."""
    query: dict[str, str] = {"expired": "1"} if expired else {}
    if request.method == "GET":
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        back = _local_path(here)
    else:
        back = _local_path(request.headers.get("referer"))
    if back and back != "/staff/":
        query["next"] = back
    response = RedirectResponse("/staff/login" + (f"?{urlencode(query)}" if query else ""), status_code=303)
    clear_cookie(response, STAFF_COOKIE)
    return response


def safe_next(value: object) -> str:
    """Where the login page sends a person after sign-in: a console path, else the dashboard."""
    return _local_path(value if isinstance(value, str) else None) or "/staff/"


def flash_of(request: Request) -> str:
    """The success message the previous action left for this page (the caller clears the cookie)."""
    return FLASH_MESSAGES.get(request.cookies.get(FLASH_COOKIE.name, ""), "")


async def start_session(conn: asyncpg.Connection, staff: Staff, *, replacing: str | None = None) -> str:
    """Sign-in: a new session for `staff` (inside their municipality's transaction), ending the one whose
    cookie the browser sent (`replacing`) if it is of the same municipality; returns the cookie value."""
    code = staff.municipality_code
    old = sessions.split_cookie(replacing)
    token = await begin(sessions.PostgresStore(conn, code), staff, replacing=old[1] if old and old[0] == code else None)
    return sessions.cookie_value(code, token)


class Done(RedirectResponse):
    """A redirect after a successful action, with the key of its flash message (page() sets the cookie)."""

    def __init__(self, url: str, flash: str | None = None):
        super().__init__(url, status_code=303)
        self.flash = flash


def redirect(url: str, *, flash: str | None = None) -> RedirectResponse:
    return Done(url, flash)


def confirm(request: Request, ctx: dict[str, Any], *, question: str, consequence: str, button: str, back_url: str):
    """The confirmation step of a destructive action, without script (CSP script-src 'self'): unless the
    form says confirm=1, the action is not done and this page asks; its form posts the same fields again
    with confirm=1. Returns None when confirmed."""
    form = ctx["form"]
    if form is not None and form.get("confirm") == "1":
        return None
    items = form.multi_items() if form is not None else []
    fields = [(k, v) for k, v in items if k not in ("csrf_token", "confirm") and isinstance(v, str)]
    return render(
        request,
        "staff_confirm.html",
        ctx
        | {
            "title": "確認",
            "question": question,
            "consequence": consequence,
            "button": button,
            "action": request.url.path,
            "fields": fields,
            "back_url": back_url,
        },
    )


async def cipher(request: Request, conn: asyncpg.Connection, code: str) -> FieldCipher:
    return await load_field_cipher(conn, request.app.state.settings.master_key_bytes, code)


def jst(value: dt.datetime | None, *, seconds: bool = False, date: bool = False) -> str:
    """Every time the console shows: Japan time, labelled (the database keeps UTC)."""
    if value is None:
        return "不明"
    local = value.astimezone(JST)
    if date:
        return local.strftime("%Y-%m-%d")
    return local.strftime("%Y-%m-%d %H:%M:%S JST" if seconds else "%Y-%m-%d %H:%M JST")

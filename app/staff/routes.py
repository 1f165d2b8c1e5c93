"""The staff console under /staff: server-rendered Japanese pages.

Every page after sign-in goes through `page()`: the session cookie names the municipality, the whole
request runs in tenant_transaction(pool, that code), so an id of another municipality's object is simply
not there (404); POSTs must carry the session's CSRF token; the handler runs with the signed-in `Staff`.
Domain rules (roles, four eyes, states) live in the domain modules, which raise StaffError subclasses that
app/web/setup.py renders.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from app import audit, outbox
from app.crypto import derive_key
from app.principals import ROLE_LABELS
from app.settings import Settings
from app.staff import accounts, actors, bank_form, enrolment, grants, overview, review, sessions, signin, throttle
from app.staff.accounts import ROLES, Staff
from app.staff.errors import Forbidden, InvalidInput, LoginFailed, NotFound
from app.tenancy.codes import MunicipalityCodeError, validate_code
from app.tenancy.municipalities import get_municipality, load_field_cipher
from app.tenancy.transaction import tenant_transaction
from app.web.admission import client_address
from app.web.bodies import read_form
from app.web.errors import CsrfError
from app.web.templates import add_template_dir, env, render
from payouts import batches, drafting, reconcile
from payouts.bankdays import JST, earliest_transfer_date, today_jst
from payouts.settings_store import BankSettingsMissing, get_bank_settings, put_bank_settings

add_template_dir(Path(__file__).resolve().parent / "templates")

LOGIN_NONCE_COOKIE = "kyufu_staff_login"
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


def _secret(request: Request) -> bytes:
    settings: Settings = request.app.state.settings
    return derive_key(settings.session_secret or "", "staff-console")


def _int_param(request: Request, name: str) -> int:
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
            cookie = request.cookies.get(sessions.COOKIE)
            parsed = sessions.split_cookie(cookie)
            if cookie is None or parsed is None:  # (split_cookie(None) is None)
                return _to_login(request)
            code, token = parsed
            form = None
            if request.method == "POST":
                form = await read_form(request)
                if not sessions.csrf_ok(_secret(request), cookie, form.get("csrf_token")):
                    raise CsrfError()
            async with tenant_transaction(request.app.state.pool, code) as conn:
                staff = await sessions.resume(conn, code, token)
                if staff is None:
                    return _to_login(request, expired=True)
                if roles:
                    staff.require(*roles)
                elif not staff.roles and not without_roles:
                    # Enrolled, but no role confirmed yet: nothing to show (sign-out still works).
                    raise Forbidden("権限がまだ有効になっていません。管理者が権限を確認した後にお使いください。")
                token = sessions.csrf_token(_secret(request), cookie)
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
    response.delete_cookie(sessions.COOKIE, path="/staff")
    return response


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def _cipher(request: Request, conn: asyncpg.Connection, code: str):
    return await load_field_cipher(conn, request.app.state.settings.master_key_bytes, code)


# ---- sign-in -------------------------------------------------------------------------------------------


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
            "csrf_token": _login_csrf(_secret(request), nonce),
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
    secret = _secret(request)
    if not nonce or not isinstance(sent, str) or not hmac.compare_digest(sent, _login_csrf(secret, nonce)):
        raise CsrfError()
    code = str(form.get("municipality_code", "")).strip()
    login_name = str(form.get("login", "")).strip().lower()
    fail = LoginFailed().message
    redis, ip = request.app.state.redis, client_address(request.scope)
    device_value = request.cookies.get(signin.DEVICE_COOKIE)
    devices = signin.devices_in_cookie(secret, device_value, code)
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
        cipher = await _cipher(request, conn, code)
        result = await accounts.login(
            conn,
            cipher,
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
    response = _redirect("/staff/")
    response.set_cookie(sessions.COOKIE, cookie, path="/staff", httponly=True, samesite="strict", secure=production)
    response.set_cookie(
        signin.DEVICE_COOKIE,
        signin.device_cookie(secret, device_value, code, result.staff.staff_id, result.device_id or ""),
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
    response = _redirect("/staff/login")
    response.delete_cookie(sessions.COOKIE, path="/staff")
    return response


# ---- dashboard -----------------------------------------------------------------------------------------


@page()
async def dashboard(request, conn, staff, ctx):
    code = staff.municipality_code
    rows = await overview.program_overview(conn, code)
    queue_count = await overview.queue_count(conn, code)
    notice = await accounts.signin_notice(conn, code, staff.staff_id)
    return render(
        request,
        "staff_dashboard.html",
        ctx
        | {
            "title": "ダッシュボード",
            "programs": rows,
            "queue_count": queue_count,
            "batches": (await batches.list_batches(conn, code))[:10],
            "signin_notice": notice
            and {"failures": notice["notice_failures"], "last": _jst(notice["notice_last_failed_at"])},
        },
    )


def _jst(value: dt.datetime | None) -> str:
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M") if value else "不明"


env.filters["jst"] = _jst


# ---- 審査 ----------------------------------------------------------------------------------------------


@page("reviewer", "admin")
async def review_queue(request, conn, staff, ctx):
    rows, total = await review.queue(conn, staff.municipality_code)
    return render(
        request,
        "staff_review.html",
        ctx
        | {
            "title": "審査",
            "rows": rows,
            "total": total,
            "reason_labels": review.REASON_LABELS,
        },
    )


@page("reviewer", "admin")
async def review_search(request, conn, staff, ctx):
    app_id = await review.find(conn, staff.municipality_code, staff, str(ctx["form"].get("receipt_no", "")))
    return _redirect(f"/staff/applications/{app_id}")


@page("reviewer", "admin")
async def application_page(request, conn, staff, ctx):
    app_id = _int_param(request, "application_id")
    code = staff.municipality_code
    purpose = request.query_params.get("purpose")
    view = None
    if purpose:
        view = await review.personal_view(conn, await _cipher(request, conn, code), code, staff, app_id, purpose)
    app = view["app"] if view else await review.summary(conn, code, app_id)
    return render(
        request,
        "staff_application.html",
        ctx
        | {
            "title": f"申請 {app['receipt_no']}",
            "app": app,
            "view": view,
            "purposes": review.PURPOSES,
            "reason_labels": review.REASON_LABELS,
        },
    )


@page("reviewer")
async def application_decision(request, conn, staff, ctx):
    app_id = _int_param(request, "application_id")
    form = ctx["form"]
    code = staff.municipality_code
    await review.decide(
        conn,
        await _cipher(request, conn, code),
        code,
        staff,
        app_id,
        str(form.get("decision", "")),
        str(form.get("comment", "")),
    )
    return _redirect("/staff/review")


# ---- 振込起案 ------------------------------------------------------------------------------------------


def _parse_date(value: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{field}は YYYY-MM-DD 形式の日付で入力してください。") from None


def _parse_int(value: object, field: str) -> int:
    text = str(value or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise InvalidInput(f"{field}は半角数字で入力してください。")
    return int(text)


@page("drafter")
async def draft_page(request, conn, staff, ctx):
    program_id = _int_param(request, "program_id")
    code = staff.municipality_code
    program = await batches.program(conn, code, program_id)
    preview = await batches.draft_preview(conn, code, program_id)
    lead = await batches.lead_days(conn, code)
    return render(
        request,
        "staff_draft.html",
        ctx
        | {
            "title": f"振込起案: {program['name']}",
            "program": program,
            "preview": preview,
            "lead_days": lead,
            "earliest": earliest_transfer_date(today_jst(), lead).isoformat(),
        },
    )


@page("drafter")
async def draft_submit(request, conn, staff, ctx):
    program_id = _int_param(request, "program_id")
    code = staff.municipality_code
    await batches.program(conn, code, program_id)
    form = ctx["form"]
    batch_id = await drafting.draft_batch(
        conn,
        code,
        staff,
        program_id,
        _parse_date(str(form.get("transfer_date", "")), "振込指定日（transfer_date）"),
        expected_count=_parse_int(form.get("expected_count"), "件数（expected_count）"),
        expected_total_yen=_parse_int(form.get("expected_total_yen"), "合計金額（expected_total_yen）"),
    )
    return _redirect(f"/staff/batches/{batch_id}")


@page()
async def batch_list(request, conn, staff, ctx):
    code = staff.municipality_code
    return render(
        request,
        "staff_batches.html",
        ctx
        | {
            "title": "振込起案・承認",
            "batches": await batches.list_batches(conn, code),
            "programs": await batches.programs(conn, code),
        },
    )


@page()
async def batch_page(request, conn, staff, ctx):
    batch_id = _int_param(request, "batch_id")
    code = staff.municipality_code
    batch = await batches.get_batch(conn, code, batch_id)
    view = None
    if staff.has("approver") and batch["status"] != "preparing":  # nothing to approve until it is a draft
        view = await batches.approval_view(
            conn, request.app.state.settings, await _cipher(request, conn, code), code, staff, batch_id
        )
    return render(
        request,
        "staff_batch.html",
        ctx
        | {
            "title": f"起案 #{batch_id}",
            "batch": batch,
            "view": view,
            "by_bank": view["by_bank"] if view else await batches.by_bank(conn, code, batch_id),
        },
    )


def _batch_action(action: str, *roles: str):
    @page(*roles)
    async def endpoint(request, conn, staff, ctx):
        batch_id = _int_param(request, "batch_id")
        code, form, settings = staff.municipality_code, ctx["form"], request.app.state.settings
        if action == "approve":
            await batches.approve_batch(conn, settings, code, staff, batch_id, str(form.get("sha256", "")))
        elif action == "reject":
            await batches.reject_batch(conn, settings, code, staff, batch_id, str(form.get("comment", "")))
        elif action == "resubmit":
            await batches.resubmit_batch(conn, code, staff, batch_id)
        elif action == "cancel":
            await batches.cancel_batch(conn, code, staff, batch_id)
        elif action == "release":
            await batches.release_batch(conn, settings, code, staff, batch_id)
        return _redirect(f"/staff/batches/{batch_id}")

    endpoint.__name__ = f"batch_{action}"
    return endpoint


# ---- reconciliation ------------------------------------------------------------------------------------


@page("reviewer", "drafter")
async def reconciliation_page(request, conn, staff, ctx):
    return render(
        request,
        "staff_reconciliation.html",
        ctx
        | {
            "title": "振込不能の対応",
            "rows": await reconcile.returned(conn, staff.municipality_code),
        },
    )


@page("reviewer", "drafter")
async def payment_recontact(request, conn, staff, ctx):
    payment_id = _int_param(request, "payment_id")
    await reconcile.mark_recontact(conn, staff.municipality_code, staff, payment_id, str(ctx["form"].get("note", "")))
    return _redirect("/staff/reconciliation")


@page("drafter")
async def payment_reissue(request, conn, staff, ctx):
    payment_id = _int_param(request, "payment_id")
    code = staff.municipality_code
    account = reconcile.corrected_account(dict(ctx["form"]))
    await reconcile.reissue(conn, await _cipher(request, conn, code), code, staff, payment_id, account)
    return _redirect("/staff/reconciliation")


# ---- admin: staff accounts, role grants ----------------------------------------------------------------


async def _render_staff_admin(
    request, conn, staff, ctx, *, issued: enrolment.Issued | None = None, requested: list[str] | None = None
) -> Response:
    code = staff.municipality_code
    rows = await accounts.list_staff(conn, code)
    logins = {r["staff_id"]: r["login"] for r in rows}
    link = None
    if issued is not None:
        link = {
            "login": issued.login,
            "url": str(request.base_url).rstrip("/") + issued.path,
            "expires_at": issued.expires_at,
            "pending": requested or [],
        }
    return render(
        request,
        "staff_admin_staff.html",
        ctx
        | {
            "title": "職員の管理",
            "rows": rows,
            "roles": ROLES,
            "link": link,
            "enrolments": await enrolment.latest(conn, code),
            "pending": await grants.pending(conn, code),
            "logins": logins,
            "principal": actors.label,
        },
    )


@page("admin")
async def staff_list(request, conn, staff, ctx):
    return await _render_staff_admin(request, conn, staff, ctx)


def _form_roles(form) -> list[str]:
    return [r for r in form.getlist("roles") if isinstance(r, str)]


@page("admin")
async def staff_create(request, conn, staff, ctx):
    """A new account: no password here (its owner sets it through the link shown once on this page), and
    the roles asked for wait for another admin's confirmation."""
    code, form = staff.municipality_code, ctx["form"]
    issued = await enrolment.create_account(
        conn,
        await _cipher(request, conn, code),
        code,
        staff,
        str(form.get("login", "")).strip().lower(),
        str(form.get("display_name", "")).strip(),
        _form_roles(form),
    )
    return await _render_staff_admin(
        request, conn, staff, ctx, issued=issued, requested=await grants.pending_roles(conn, code, issued.staff_id)
    )


def _staff_action(action: str):
    @page("admin")
    async def endpoint(request, conn, staff, ctx):
        staff_id = _int_param(request, "staff_id")
        code = staff.municipality_code
        if await accounts.get_staff(conn, code, staff_id) is None:
            raise NotFound()
        if action == "revoke":
            # "Sign out everywhere" also stops trusting the person's browsers: it is what an admin does
            # when a device is lost or an account is misused. (Role changes and disabling end sessions but
            # keep the devices: the person keeps signing in where they always did.)
            await sessions.revoke_all(conn, code, staff_id)
            await signin.revoke_devices(conn, code, staff_id)
        elif action in ("disable", "enable"):
            if staff_id == staff.staff_id:
                raise Forbidden("自分自身のアカウントは無効にできません。")
            await accounts.set_disabled(conn, code, staff_id, action == "disable")
        elif action == "unlock":
            await accounts.unlock(conn, code, staff_id)
        elif action == "roles":
            return await _change_roles(request, conn, staff, ctx, staff_id)
        elif action == "enroll":
            # A reset: the person's password and TOTP stop working now; the new link is shown once.
            issued = await enrolment.issue(conn, await _cipher(request, conn, code), code, staff, staff_id)
            return await _render_staff_admin(request, conn, staff, ctx, issued=issued)
        await audit.append(conn, code, staff, f"staff.{action}", "staff", staff_id)
        return _redirect("/staff/admin/staff")

    endpoint.__name__ = f"staff_{action}"
    return endpoint


async def _change_roles(request, conn, staff, ctx, staff_id: int) -> Response:
    code = staff.municipality_code
    removed, _requested = await grants.change_roles(conn, code, staff, staff_id, _form_roles(ctx["form"]))
    if removed:
        # A role taken away ends the person's sessions so that nothing keeps using it (the admin's own too,
        # if they took away one of their own roles). Roles asked for are only pending: nothing to end.
        await sessions.revoke_all(conn, code, staff_id)
        if staff_id == staff.staff_id:
            response = _redirect("/staff/login")
            response.delete_cookie(sessions.COOKIE, path="/staff")
            return response
    return _redirect("/staff/admin/staff")


def _grant_action(action: str):
    @page("admin")
    async def endpoint(request, conn, staff, ctx):
        grant_id = _int_param(request, "grant_id")
        if action == "confirm":
            await grants.confirm(conn, staff.municipality_code, staff, grant_id)
        else:
            await grants.refuse(conn, staff.municipality_code, staff, grant_id)
        return _redirect("/staff/admin/staff")

    endpoint.__name__ = f"grant_{action}"
    return endpoint


# ---- enrolment (before sign-in: the link's token is the credential) -----------------------------------

ENROL_NONCE_COOKIE = "kyufu_staff_enrol"
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


def _enrol_csrf(secret: bytes, nonce: str) -> str:
    # No session yet: a nonce cookie and its HMAC in the form (double submit), like the sign-in form.
    return hmac.new(secret, b"kyufu-staff-enrol|" + nonce.encode(), hashlib.sha256).hexdigest()


def _enrol_path(request: Request) -> tuple[str, str]:
    code, token = request.path_params["code"], request.path_params["token"]
    try:
        validate_code(code)
    except MunicipalityCodeError:
        raise NotFound(ENROL_MESSAGES["unknown"][1]) from None
    if not enrolment.TOKEN.fullmatch(token):
        raise NotFound(ENROL_MESSAGES["unknown"][1])
    return code, token


async def _enrol_cipher(request: Request, conn: asyncpg.Connection, code: str):
    try:
        return await _cipher(request, conn, code)
    except LookupError:
        # A well-formed code of no registered municipality: no such link (found by tests/hostile/).
        raise NotFound(ENROL_MESSAGES["unknown"][1]) from None


def _render_enrol(request: Request, code: str, link: enrolment.Link, nonce: str | None = None) -> Response:
    status, message = ENROL_MESSAGES.get(link.state, (200, ""))
    if link.errors:
        status = 422
    new_nonce = nonce or secrets.token_urlsafe(16)
    response = render(
        request,
        "staff_enrol.html",
        {
            "title": "職員アカウントの登録",
            "link": link,
            "message": message,
            "municipality": code,
            "role_labels": ROLE_LABELS,
            "csrf_token": _enrol_csrf(_secret(request), new_nonce),
        },
        status_code=status,
    )
    if link.state == "ok" and not link.completed and nonce is None:
        response.set_cookie(
            ENROL_NONCE_COOKIE,
            new_nonce,
            path="/staff/enroll",
            httponly=True,
            samesite="strict",
            secure=request.app.state.settings.production,
            max_age=3600,
        )
    return response


async def enrol_page(request: Request) -> Response:
    code, token = _enrol_path(request)
    async with tenant_transaction(request.app.state.pool, code) as conn:
        link = await enrolment.open_link(conn, await _enrol_cipher(request, conn, code), code, token)
    return _render_enrol(request, code, link)


async def enrol_submit(request: Request) -> Response:
    code, token = _enrol_path(request)
    form = await read_form(request)
    nonce = request.cookies.get(ENROL_NONCE_COOKIE, "")
    sent = form.get("csrf_token")
    if not nonce or not isinstance(sent, str) or not hmac.compare_digest(sent, _enrol_csrf(_secret(request), nonce)):
        raise CsrfError()
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
        response.delete_cookie(ENROL_NONCE_COOKIE, path="/staff/enroll")
    return response


# ---- bank settings -------------------------------------------------------------------------------------


def _render_bank(
    request, ctx, values: dict[str, str], *, errors: dict[str, str] | None = None, stored: bool, saved: bool = False
) -> Response:
    return render(
        request,
        "staff_admin_bank.html",
        ctx
        | {
            "title": "振込の金融機関設定",
            "values": values,
            "errors": errors or {},
            "labels": bank_form.LABELS,
            "stored": stored,
            "saved": saved,
        },
        status_code=422 if errors else 200,
    )


async def _stored_bank(conn, code: str):
    try:
        return await get_bank_settings(conn, code)
    except BankSettingsMissing:
        return None


@page("admin")
async def bank_page(request, conn, staff, ctx):
    current = await _stored_bank(conn, staff.municipality_code)
    return _render_bank(
        request,
        ctx,
        bank_form.form_values(current),
        stored=current is not None,
        saved=request.query_params.get("saved") == "1",
    )


@page("admin")
async def bank_submit(request, conn, staff, ctx):
    code = staff.municipality_code
    current = await _stored_bank(conn, code)
    result = bank_form.parse(ctx["form"], updated_by=staff.staff_id)
    if result.settings is None:
        return _render_bank(request, ctx, result.values, errors=result.errors, stored=current is not None)
    changed = bank_form.changed_fields(current, result.settings)
    if changed:
        await put_bank_settings(conn, code, result.settings)
        # Field names only: the values (the municipality's account number among them) stay out of the log.
        await audit.append(
            conn,
            code,
            staff,
            "settings.bank",
            "municipality_bank_settings",
            code,
            {"changed": changed, "created": current is None},
        )
    return _redirect("/staff/admin/bank?saved=1")


@page("admin")
async def audit_page(request, conn, staff, ctx):
    code = staff.municipality_code
    report = await audit.verify_chain(conn, code)
    return render(
        request,
        "staff_admin_audit.html",
        ctx
        | {
            "title": "監査ログ",
            "rows": await audit.recent(conn, code, 200),
            "report": report,
        },
    )


@page("admin")
async def audit_export(request, conn, staff, ctx):
    code = staff.municipality_code
    fmt = request.query_params.get("format", "csv")
    if fmt not in ("csv", "jsonl"):
        raise InvalidInput("形式（format）は csv か jsonl を指定してください。")
    await audit.append(conn, code, staff, "audit.export", "audit_log", "", {"format": fmt})
    # Collected inside the transaction (the page() scope ends with the handler); an auditor's export of a
    # very long chain should use `kyufu audit export`, which streams.
    body = "".join([line async for line in audit.export_lines(conn, code, fmt)])
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8"
    return Response(
        body,
        media_type=media,
        headers={
            "content-disposition": f'attachment; filename="audit-{code}.{fmt}"',
            "cache-control": "no-store",
        },
    )


def routes(settings) -> list[BaseRoute]:
    return [
        Route("/staff/login", login_page, methods=["GET"]),
        Route("/staff/login", login_submit, methods=["POST"]),
        Route("/staff/logout", logout, methods=["POST"]),
        Route("/staff/", dashboard, methods=["GET"]),
        Route("/staff/review", review_queue, methods=["GET"]),
        Route("/staff/review/search", review_search, methods=["POST"]),
        Route("/staff/applications/{application_id}", application_page, methods=["GET"]),
        Route("/staff/applications/{application_id}/decision", application_decision, methods=["POST"]),
        Route("/staff/programs/{program_id}/draft", draft_page, methods=["GET"]),
        Route("/staff/programs/{program_id}/draft", draft_submit, methods=["POST"]),
        Route("/staff/batches", batch_list, methods=["GET"]),
        Route("/staff/batches/{batch_id}", batch_page, methods=["GET"]),
        *[
            Route(f"/staff/batches/{{batch_id}}/{a}", _batch_action(a, *r), methods=["POST"])
            for a, r in (
                ("approve", ("approver",)),
                ("reject", ("approver",)),
                ("resubmit", ("drafter",)),
                ("cancel", ("drafter",)),
                ("release", ("approver",)),
            )
        ],
        Route("/staff/reconciliation", reconciliation_page, methods=["GET"]),
        Route("/staff/payments/{payment_id}/recontact", payment_recontact, methods=["POST"]),
        Route("/staff/payments/{payment_id}/reissue", payment_reissue, methods=["POST"]),
        Route("/staff/admin/staff", staff_list, methods=["GET"]),
        Route("/staff/admin/staff", staff_create, methods=["POST"]),
        *[
            Route(f"/staff/admin/staff/{{staff_id}}/{a}", _staff_action(a), methods=["POST"])
            for a in ("revoke", "disable", "enable", "unlock", "roles", "enroll")
        ],
        *[
            Route(f"/staff/admin/grants/{{grant_id}}/{a}", _grant_action(a), methods=["POST"])
            for a in ("confirm", "refuse")
        ],
        Route("/staff/enroll/{code}/{token}", enrol_page, methods=["GET"]),
        Route("/staff/enroll/{code}/{token}", enrol_submit, methods=["POST"]),
        Route("/staff/admin/bank", bank_page, methods=["GET"]),
        Route("/staff/admin/bank", bank_submit, methods=["POST"]),
        Route("/staff/admin/audit", audit_page, methods=["GET"]),
        Route("/staff/admin/audit/export", audit_export, methods=["GET"]),
    ]

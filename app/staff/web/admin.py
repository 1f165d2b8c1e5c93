"""The admin's pages (/staff/admin/...): staff accounts and their role grants, 金融機関設定, the audit log."""

from __future__ import annotations

from starlette.responses import Response

from app import audit
from app.staff import accounts, actors, bank_form, enrolment, grants, sessions, signin
from app.staff.accounts import ROLES
from app.staff.errors import Forbidden, InvalidInput, NotFound
from app.staff.web.common import cipher, confirm, int_param, page, redirect
from app.web.sessions import STAFF_COOKIE, clear_cookie
from app.web.templates import render
from payouts.settings_store import BankSettingsMissing, get_bank_settings, put_bank_settings

# ---- staff accounts, role grants -----------------------------------------------------------------------


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


@page("admin", back=staff_list)
async def staff_create(request, conn, staff, ctx):
    """A new account: no password here (its owner sets it through the link shown once on this page), and
    the roles asked for wait for another admin's confirmation."""
    code, form = staff.municipality_code, ctx["form"]
    issued = await enrolment.create_account(
        conn,
        await cipher(request, conn, code),
        code,
        staff,
        str(form.get("login", "")).strip().lower(),
        str(form.get("display_name", "")).strip(),
        _form_roles(form),
    )
    return await _render_staff_admin(
        request, conn, staff, ctx, issued=issued, requested=await grants.pending_roles(conn, code, issued.staff_id)
    )


# What each destructive action does to the person, asked before it is done (confirm(): no script needed).
CONFIRM = {
    "revoke": (
        "全セッション・端末の信頼を終了",
        "{who} のログイン中のセッションをすべて終了し、これまでの端末の信頼も取り消します。"
        "本人は次のログインで新しい端末として扱われます。",
    ),
    "disable": ("無効化", "{who} はログインできなくなり、ログイン中のセッションも終了します。"),
    "enroll": (
        "登録用リンクを再発行",
        "{who} の現在のパスワード・二要素認証・セッションはすぐに使えなくなり、本人が新しいリンクで設定し直すまで"
        "ログインできません。",
    ),
}


def staff_action(action: str):
    @page("admin", back=staff_list)
    async def endpoint(request, conn, staff, ctx):
        staff_id = int_param(request, "staff_id")
        code = staff.municipality_code
        target = await accounts.get_staff(conn, code, staff_id)
        if target is None:
            raise NotFound()
        if action == "disable" and staff_id == staff.staff_id:
            raise Forbidden("自分自身のアカウントは無効にできません。")  # before asking whether to
        if action in CONFIRM:
            label, consequence = CONFIRM[action]
            who = f"{target['login']}（{target['display_name']}）"
            asked = confirm(
                request,
                ctx,
                question=f"{who} について「{label}」を行いますか。",
                consequence=consequence.format(who=who),
                button=f"{label}する",
                back_url="/staff/admin/staff",
            )
            if asked is not None:
                return asked
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
            issued = await enrolment.issue(conn, await cipher(request, conn, code), code, staff, staff_id)
            return await _render_staff_admin(request, conn, staff, ctx, issued=issued)
        await audit.append(conn, code, staff, f"staff.{action}", "staff", staff_id)
        return redirect("/staff/admin/staff", flash=f"staff.{action}")

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
            response = redirect("/staff/login")
            clear_cookie(response, STAFF_COOKIE)
            return response
    return redirect("/staff/admin/staff", flash="staff.roles")


def grant_action(action: str):
    @page("admin", back=staff_list)
    async def endpoint(request, conn, staff, ctx):
        grant_id = int_param(request, "grant_id")
        if action == "confirm":
            await grants.confirm(conn, staff.municipality_code, staff, grant_id)
        else:
            await grants.refuse(conn, staff.municipality_code, staff, grant_id)
        return redirect("/staff/admin/staff", flash=f"grant.{action}")

    endpoint.__name__ = f"grant_{action}"
    return endpoint


# ---- 金融機関設定 --------------------------------------------------------------------------------------


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


@page("admin", back=bank_page)
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
    return redirect("/staff/admin/bank?saved=1")


# ---- the audit log -------------------------------------------------------------------------------------


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
        raise InvalidInput("出力の形式は csv か jsonl を指定してください。")
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

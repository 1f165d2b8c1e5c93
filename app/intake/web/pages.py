"""The resident's pages under /m/{municipality_code}/: start, sign-in, household, bank, confirm,
receipt, status. Server-rendered, no JavaScript needed; every form carries a CSRF token.

Sign-in is by letter (確認書番号 + PIN) or, for a 申請型 program, by identification without a letter
(/identify: kana name, birth date, address; app.intake.identity). The session (app.web.sessions) holds who
signed in (municipality, entitlement, the letter or the identified resident) and, between the bank form
and the confirmation, the account typed (encrypted at rest in Redis). The application itself is written
only by the confirm POST, through app.intake.claims like every other channel.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.intake import banks
from app.intake.changes import AccountChangeTooLate, assess_change, change_account
from app.intake.claims import submit_application
from app.intake.forms import (
    BankAccount,
    FieldError,
    FormInvalid,
    describe_changes,
    normalise_access_code,
    normalise_pin,
    parse_bank,
)
from app.intake.identity import (
    FIELDS as IDENTITY_FIELDS,
    application_program,
    application_programs,
    identify as identify_resident,
    identify_failed_message,
    parse_identity,
)
from app.intake.signin import (
    SIGNIN_FAILED_MESSAGE,
    Refused,
    authenticate,
    check_ip,
    locked_message,
    locked_until,
    municipality_keys,
    record_ip_failure,
)
from app.intake.status import decline_state, household_view, programs as list_programs, progress
from app.intake.web.batcher import for_app
from app.registry.errors import DeclineNotAllowed
from app.registry.push import decline as decline_entitlement
from app.registry.receipts import format_receipt
from app.tenancy.codes import MunicipalityCodeError, validate_code
from app.tenancy.municipalities import get_municipality, list_municipalities
from app.tenancy.transaction import platform_transaction, tenant_transaction
from app.web.bodies import read_form
from app.web.csrf import RESIDENT, check, verify_form
from app.web.errors import CsrfError, WebError
from app.web.sessions import load_session, revoke, rotate, save_session
from app.web.templates import render

JST = ZoneInfo("Asia/Tokyo")


class NotFound(WebError):
    status = 404

    def __init__(self) -> None:
        super().__init__("お探しのページが見つかりません。市区町村のページのアドレスをご確認ください。")


async def _municipality(request: Request) -> dict:
    code = request.path_params["code"]
    try:
        validate_code(code)
    except MunicipalityCodeError:
        raise NotFound() from None
    async with platform_transaction(request.app.state.pool) as conn:
        found = await get_municipality(conn, code)
    if found is None:
        raise NotFound()
    return {"code": found.code, "name": found.name}


async def _page(request: Request, name: str, ctx: dict, *, status_code: int = 200) -> Response:
    await load_session(request)
    response = render(request, name, ctx, status_code=status_code)
    await save_session(request, response)
    return response


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def _signed_in(request: Request, m: dict) -> dict | None:
    session = await load_session(request)
    auth = session.get("auth")
    if not auth or auth.get("m") != m["code"]:
        return None
    return auth


async def index(request: Request) -> Response:
    async with platform_transaction(request.app.state.pool) as conn:
        municipalities = await list_municipalities(conn)
    return render(
        request, "intake_index.html", {"municipalities": [{"code": m.code, "name": m.name} for m in municipalities]}
    )


async def start(request: Request) -> Response:
    m = await _municipality(request)
    async with tenant_transaction(request.app.state.pool, m["code"], readonly=True) as conn:
        programs = await list_programs(conn, m["code"])
    return render(request, "intake_start.html", {"m": m, "programs": programs, "title": "給付金のご案内", "step": 0})


# ---- sign-in ------------------------------------------------------------------------------------


async def _guarded_lookup(request: Request, m: dict, lookup):
    """One sign-in attempt (letter or identity): the per-address limit first (Redis, 429 when exceeded),
    then `await lookup(conn, keys)` in the municipality's tenant transaction; None counts as a failure for
    the address (the lookup itself counts per code or per identity, in the database)."""
    redis = request.app.state.redis
    ip = request.client.host if request.client else "-"
    await check_ip(redis, ip)
    settings = request.app.state.settings
    async with tenant_transaction(request.app.state.pool, m["code"]) as conn:
        keys = await municipality_keys(conn, settings.master_key_bytes, m["code"])
        found = await lookup(conn, keys)
    if found is None or isinstance(found, Refused):
        await record_ip_failure(redis, ip)
    return found


async def _check_letter(request: Request, m: dict, access_code: str, pin: str):
    """Return the letter, Refused for a code that is locked now, or None; counts failures per code (DB) and
    per address (Redis)."""

    async def lookup(conn, keys):
        letter = (await authenticate(conn, keys, m["code"], [(access_code, pin)]))[0]
        if letter is None:
            # Asked after this attempt's failure is recorded, so the fifth wrong PIN already says "locked".
            until = await locked_until(conn, m["code"], access_code)
            return Refused(locked_until=until) if until else None
        return letter

    return await _guarded_lookup(request, m, lookup)


def _letter_failed(m: dict, refused: Refused | None) -> str:
    """The letter sign-in's failure message: locked (until when, whom to ask) only for a code that is
    really locked; any other failure, the one generic message (docs/security.md)."""
    if refused is not None and refused.locked_until is not None:
        return locked_message("この確認書番号", refused.locked_until, m["name"])
    return SIGNIN_FAILED_MESSAGE


def _carry_pending_bank(session, m: dict) -> None:
    """Sign-in clears the session; an account typed on the bank form before the session expired (kept by
    `_bank_after_expiry`) is carried into the new one as the form's draft."""
    pending = session.get("pending_bank")
    session.clear()
    rotate(session)  # a new id on sign-in: a planted session id is useless
    if isinstance(pending, dict) and pending.get("m") == m["code"]:
        session["bank_draft"] = pending.get("f") or {}


async def signin(request: Request) -> Response:
    m = await _municipality(request)
    ctx = {
        "m": m,
        "title": "ログイン",
        "step": 1,
        "errors": [],
        "failed": None,
        "access_code": "",
        "action": f"/m/{m['code']}/signin",
        "button": "ログイン",
        "identify_next": "household",
        "identify_programs": [],
    }
    if request.method == "GET":
        ctx["identify_programs"] = await _application_programs(request, m)
        ctx["expired"] = (await load_session(request)).get("pending_bank") is not None
        return await _page(request, "intake_signin.html", ctx)
    session, form = await verify_form(request)
    access_code = normalise_access_code(str(form.get("access_code", "")))
    pin = normalise_pin(str(form.get("pin", "")))
    ctx["access_code"] = access_code
    errors = []
    if not access_code:
        errors.append(FieldError(("access_code",), "missing", "確認書番号を入力してください。"))
    if not pin:
        errors.append(FieldError(("pin",), "missing", "暗証番号を入力してください。"))
    if errors:
        ctx["errors"] = errors
        return await _page(request, "intake_signin.html", ctx, status_code=422)
    letter = await _check_letter(request, m, access_code, pin)
    if letter is None or isinstance(letter, Refused):
        ctx["failed"] = _letter_failed(m, letter)
        return await _page(request, "intake_signin.html", ctx, status_code=401)
    _carry_pending_bank(session, m)
    session["auth"] = {"m": m["code"], "letter_id": letter.letter_id, "entitlement_id": letter.entitlement_id}
    response = _redirect(f"/m/{m['code']}/{'bank' if 'bank_draft' in session.data else 'household'}")
    await save_session(request, response, subject=f"letter:{m['code']}:{letter.letter_id}")
    return response


# ---- identification without a letter (申請型) --------------------------------------------------------


async def _application_programs(request: Request, m: dict) -> list[dict]:
    async with tenant_transaction(request.app.state.pool, m["code"], readonly=True) as conn:
        return await application_programs(conn, m["code"])


async def _application_program(request: Request, m: dict, raw: object) -> dict:
    """The 申請型 program named by `raw`, else the municipality's only one; 404 for anything else (a letter
    or push program, another municipality's id, garbage)."""
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 18:
        async with tenant_transaction(request.app.state.pool, m["code"], readonly=True) as conn:
            row = await application_program(conn, m["code"], int(raw))
        if row is not None:
            return row
    elif raw is None or raw == "":
        programs = await _application_programs(request, m)
        if len(programs) == 1:
            return programs[0]
    raise NotFound()


async def identify(request: Request) -> Response:
    """確認書をお持ちでない方: kana name + birth date + address against the program's entitled households.

    A shape error (empty field, kanji in the kana field, 2月30日) is shown at its field and not counted;
    no match or several matches get the generic message with the tries left, a locked identity says until
    when and whom to ask; both count as a failure
    for the identity (app.intake.identity) and for the address (the letters' per-IP limit)."""
    m = await _municipality(request)
    form: dict = {}
    if request.method == "POST":
        session, form = await verify_form(request)
        raw_program, next_page = form.get("program"), form.get("next")
    else:
        raw_program, next_page = request.query_params.get("program"), request.query_params.get("next")
    program = await _application_program(request, m, raw_program)
    next_page = "status" if next_page == "status" else "household"
    ctx: dict[str, Any] = {
        "m": m,
        "title": "確認書をお持ちでない方",
        "step": 1,
        "errors": [],
        "err": defaultdict(str),
        "failed": None,
        "program": program,
        "next": next_page,
        "f": {k: str(form.get(k, "") or "")[:300] for k in IDENTITY_FIELDS},
    }
    if request.method == "GET":
        return await _page(request, "intake_identify.html", ctx)
    try:
        identity = parse_identity(ctx["f"], m["name"], dt.datetime.now(JST).date())
    except FormInvalid as exc:
        ctx["errors"] = exc.errors
        ctx["err"] = defaultdict(str, {e.field: e.message for e in exc.errors})
        return await _page(request, "intake_identify.html", ctx, status_code=422)
    found = await _guarded_lookup(
        request,
        m,
        lambda conn, keys: identify_resident(conn, keys, m["code"], program["program_id"], identity, m["name"]),
    )
    if found is None or isinstance(found, Refused):
        if isinstance(found, Refused) and found.locked_until is not None:
            ctx["failed"] = locked_message("この氏名（カナ）と生年月日での本人確認", found.locked_until, m["name"])
        else:
            ctx["failed"] = identify_failed_message(found.remaining if isinstance(found, Refused) else None)
        return await _page(request, "intake_identify.html", ctx, status_code=401)
    _carry_pending_bank(session, m)
    if next_page == "household" and "bank_draft" in session.data:
        next_page = "bank"
    session["auth"] = {
        "m": m["code"],
        "letter_id": None,
        "entitlement_id": found.entitlement_id,
        "resident_code": found.resident_code,
        "identification": "registry_match",
    }
    response = _redirect(f"/m/{m['code']}/{next_page}")
    await save_session(request, response)
    return response


async def signout(request: Request) -> Response:
    m = await _municipality(request)
    await verify_form(request)
    response = _redirect(f"/m/{m['code']}/")
    await revoke(request, response)
    return response


# ---- household, bank, confirm, receipt ------------------------------------------------------------


async def _entitlement(request: Request, m: dict, auth: dict) -> tuple[dict, list[dict], dict | None]:
    async with tenant_transaction(request.app.state.pool, m["code"], readonly=True) as conn:
        view = await household_view(conn, m["code"], auth["entitlement_id"])
    if view is None:
        raise NotFound()
    return view


def _active(app: dict | None) -> bool:
    return app is not None and app["status"] not in ("rejected", "withdrawn")


async def household(request: Request) -> Response:
    m = await _municipality(request)
    auth = await _signed_in(request, m)
    if auth is None:
        return _redirect(f"/m/{m['code']}/signin")
    ent, members, app = await _entitlement(request, m, auth)
    return await _page(
        request,
        "intake_household.html",
        {
            "m": m,
            "title": "世帯と支給額",
            "step": 2,
            "ent": ent,
            "members": members,
            "existing": _active(app),
            "existing_receipt": format_receipt(app["receipt_no"]) if app else "",
            "closed": ent["status"] in ("declined", "withdrawn"),
            "decline": decline_state(ent),
        },
    )


_BANK_FIELDS = (
    "bank_code",
    "branch_code",
    "account_type",
    "account_number",
    "yucho_kigou",
    "yucho_bangou",
    "holder_kana",
)


async def bank(request: Request) -> Response:
    m = await _municipality(request)
    auth = await _signed_in(request, m)
    if auth is None:
        if request.method == "POST":
            return await _bank_after_expiry(request, m)
        return _redirect(f"/m/{m['code']}/signin")
    session = await load_session(request)
    ctx: dict[str, Any] = {
        "m": m,
        "title": "振込口座の入力",
        "step": 3,
        "errors": [],
        "err": defaultdict(str),
        "bank_choices": [],
        "branch_choices": [],
    }
    if request.method == "GET":
        draft = session.get("bank_draft")
        previous = (draft if isinstance(draft, dict) else None) or session.get("bank") or {}
        ctx["f"] = {k: str(previous.get(k, "") or "") for k in _BANK_FIELDS}
        ctx["f"]["account_type"] = ctx["f"]["account_type"] or "1"
        if not draft:
            ctx["f"]["yucho_kigou"] = ctx["f"]["yucho_bangou"] = ""
        ctx["restored"] = bool(draft)
        return await _page(request, "intake_bank.html", ctx)
    session, form = await verify_form(request)
    f = {k: str(form.get(k, "") or "").strip()[:200] for k in _BANK_FIELDS}
    ctx["f"] = f
    # Bank and branch may be typed as names: resolve a unique match, offer a choice otherwise.
    bank_code = f["bank_code"]
    if bank_code and not bank_code.isdigit():
        found = banks.search_banks(bank_code, limit=10)
        exact = [b for b in found if b.name == bank_code or b.kana == bank_code]
        if len(found) == 1 or len(exact) == 1:
            f["bank_code"] = bank_code = (exact or found)[0].code
        else:
            ctx["bank_choices"] = found
    branch_code = f["branch_code"]
    if branch_code and not branch_code.isdigit() and bank_code.isdigit():
        found_br = banks.search_branches(bank_code, branch_code, limit=10)
        exact_br = [b for b in found_br if b.name == branch_code or b.kana == branch_code]
        if len(found_br) == 1 or len(exact_br) == 1:
            f["branch_code"] = (exact_br or found_br)[0].code
        else:
            ctx["branch_choices"] = found_br
    data = {k: (v or None) for k, v in f.items()}
    data["bank_code"] = data["bank_code"] or ""
    data["holder_kana"] = data["holder_kana"] or ""
    data["account_type"] = data["account_type"] or "1"
    try:
        account = parse_bank(data)
    except FormInvalid as exc:
        errors = exc.errors
        if ctx["bank_choices"] or ctx["branch_choices"]:
            errors = [e for e in errors if e.field not in ("bank_code", "branch_code")]
            field = "bank_code" if ctx["bank_choices"] else "branch_code"
            errors.insert(0, FieldError((field,), "kyufu_choose", "候補の中から選んでください。"))
        if not ctx["bank_choices"] and bank_code and not bank_code.isdigit():
            errors = [e for e in errors if e.field != "bank_code"]
            errors.insert(0, FieldError(("bank_code",), "kyufu_unknown_bank", "該当する金融機関が見つかりません。"))
        ctx["errors"] = errors
        ctx["err"] = defaultdict(str, {e.field: e.message for e in errors})
        return await _page(request, "intake_bank.html", ctx, status_code=422)
    if ctx["bank_choices"] or ctx["branch_choices"]:
        ctx["errors"] = [FieldError(("bank_code",), "kyufu_choose", "候補の中から選んでください。")]
        ctx["err"] = defaultdict(str, {"bank_code": "候補の中から選んでください。"})
        return await _page(request, "intake_bank.html", ctx, status_code=422)
    session["bank"] = account.to_session()
    session.pop("bank_draft")
    response = _redirect(f"/m/{m['code']}/confirm")
    await save_session(request, response)
    return response


def _same_origin(request: Request) -> bool:
    """Whether a POST comes from a page of this site (what browsers say: Sec-Fetch-Site, else Origin). A
    cross-site page can make a browser POST but cannot make it say same-origin."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    origin = request.headers.get("origin")
    return origin is not None and origin.split("://", 1)[-1] == request.headers.get("host")


async def _bank_after_expiry(request: Request, m: dict) -> Response:
    """The bank form posted after the session ended (30 minutes idle): what was typed is kept in a new,
    signed-out session and the resident is sent to sign in; signing in (letter or identification) brings
    them back to the form with it filled in (`_carry_pending_bank`).

    The session (and so its CSRF binding) is gone, so the form's origin stands in for the token: only a
    POST from this site's own page is kept. Otherwise a cross-site page could plant an account of its
    choosing in the form a resident is about to sign in to. The draft goes back into the form, never past
    it: the resident still sends the form and sees the confirmation page."""
    session = await load_session(request)
    form = await read_form(request)
    if session.is_new:
        if not _same_origin(request):
            raise CsrfError()
    else:
        check(request, RESIDENT, session.id, form)
    session["pending_bank"] = {"m": m["code"], "f": {k: str(form.get(k, "") or "").strip()[:200] for k in _BANK_FIELDS}}
    response = _redirect(f"/m/{m['code']}/signin")
    await save_session(request, response)
    return response


async def confirm(request: Request) -> Response:
    m = await _municipality(request)
    auth = await _signed_in(request, m)
    if auth is None:
        return _redirect(f"/m/{m['code']}/signin")
    session = await load_session(request)
    if request.method == "POST":
        session, _ = await verify_form(request)
    ent, _, app = await _entitlement(request, m, auth)
    if _active(app):
        # Back button, a reload or a second click after the first submit: the existing receipt, never a
        # second application. A different account typed after applying is not dropped silently: the
        # resident is told the application exists and offered 口座変更の届出.
        if session.get("bank") and await _assess(request, m, auth, session["bank"]) != "same":
            return _redirect(f"/m/{m['code']}/account-change")
        return _redirect(f"/m/{m['code']}/receipt")
    stored = session.get("bank")
    if not stored:
        return _redirect(f"/m/{m['code']}/bank")
    account = BankAccount.from_session(stored)
    if request.method == "GET":
        return await _page(
            request,
            "intake_confirm.html",
            {
                "m": m,
                "title": "申請内容の確認",
                "step": 4,
                "ent": ent,
                "acct": account,
                "account_type_label": banks.ACCOUNT_TYPES.get(account.account_type, ""),
                "changes": describe_changes(account.kana_changes)
                if account.kana_material or account.kana_changes
                else [],
            },
        )
    settings = request.app.state.settings
    async with tenant_transaction(request.app.state.pool, m["code"]) as conn:
        # The same claim path for both ways of signing in: the one-active-application index decides
        # between a letter claim and a claim identified without a letter for the same household.
        outcome = await submit_application(
            conn,
            settings,
            m["code"],
            auth["entitlement_id"],
            account,
            "online",
            applicant_resident_code=auth.get("resident_code"),
            identification=auth.get("identification", "letter"),
        )
    if outcome.kind == "created":
        for_app(request).after_created(m["code"])
    if outcome.kind == "closed":
        raise WebError(
            "この給付金は辞退または取り下げ済みのため、申請できません。窓口にお問い合わせください。", status=409
        )
    session.pop("bank")
    session["duplicate"] = outcome.kind == "duplicate"
    response = _redirect(f"/m/{m['code']}/receipt")
    await save_session(request, response)
    return response


async def receipt(request: Request) -> Response:
    m = await _municipality(request)
    auth = await _signed_in(request, m)
    if auth is None:
        return _redirect(f"/m/{m['code']}/signin")
    session = await load_session(request)
    _, _, app = await _entitlement(request, m, auth)
    if not _active(app):
        return _redirect(f"/m/{m['code']}/household")
    assert app is not None
    return await _page(
        request,
        "intake_receipt.html",
        {
            "m": m,
            "title": "申請を受け付けました",
            "step": 5,
            "receipt": format_receipt(app["receipt_no"]),
            "duplicate": bool(session.get("duplicate")),
        },
    )


async def status(request: Request) -> Response:
    """By code + PIN (or the signed-in session): where the application stands."""
    m = await _municipality(request)
    auth = await _signed_in(request, m)
    ctx = {
        "m": m,
        "title": "申請の状況",
        "step": 0,
        "errors": [],
        "failed": None,
        "access_code": "",
        "action": f"/m/{m['code']}/status",
        "button": "状況を確認する",
        "identify_next": "status",
        "identify_programs": [],
    }
    if auth is None and request.method == "POST":
        session, form = await verify_form(request)
        access_code = normalise_access_code(str(form.get("access_code", "")))
        pin = normalise_pin(str(form.get("pin", "")))
        letter = await _check_letter(request, m, access_code, pin) if access_code and pin else None
        if letter is None or isinstance(letter, Refused):
            ctx["failed"] = _letter_failed(m, letter)
            ctx["access_code"] = access_code
            return await _page(request, "intake_signin.html", ctx, status_code=401)
        auth = {"m": m["code"], "letter_id": letter.letter_id, "entitlement_id": letter.entitlement_id}
    if auth is None:
        ctx["identify_programs"] = await _application_programs(request, m)
        return await _page(request, "intake_signin.html", ctx)
    ent, _, app = await _entitlement(request, m, auth)
    return await _page(
        request,
        "intake_status.html",
        {
            **ctx,
            "ent": ent,
            "progress": progress(app),
            "receipt": format_receipt(app["receipt_no"]) if app else "",
            "decline": decline_state(ent),
        },
    )


# ---- 辞退 (プッシュ型) ---------------------------------------------------------------------------------


def _actor(auth: dict) -> str:
    """The audit label of a resident acting online: how they signed in and by which letter (ids only)."""
    if auth.get("letter_id") is not None:
        return f"resident:letter:{auth['letter_id']}"
    return f"resident:identified:{auth['entitlement_id']}"


async def decline(request: Request) -> Response:
    """辞退 of a プッシュ型 payout: a confirmation step, then app.registry.push.decline (the function
    `kyufu push decline` calls, audited as push.decline), then the result on this page (PRG)."""
    m = await _municipality(request)
    auth = await _signed_in(request, m)
    if auth is None:
        return _redirect(f"/m/{m['code']}/signin")
    if request.method == "POST":
        await verify_form(request)
    ent, _, _ = await _entitlement(request, m, auth)
    ctx: dict[str, Any] = {"m": m, "title": "辞退の届出", "step": 0, "ent": ent, "failed": None}
    if request.method == "POST" and decline_state(ent) == "open":
        try:
            async with tenant_transaction(request.app.state.pool, m["code"]) as conn:
                await decline_entitlement(conn, m["code"], auth["entitlement_id"], actor=_actor(auth))
        except DeclineNotAllowed:
            # Settled or past the deadline between the page and the click: the page below says which.
            ent, _, _ = await _entitlement(request, m, auth)
            ctx.update(ent=ent, failed="辞退できませんでした。")
        else:
            return _redirect(f"/m/{m['code']}/decline")
    ctx["state"] = decline_state(ent)
    status_code = 409 if ctx["failed"] or (request.method == "POST" and ctx["state"] != "declined") else 200
    return await _page(request, "intake_decline.html", ctx, status_code=status_code)


# ---- 口座変更の届出 ------------------------------------------------------------------------------------


async def _assess(request: Request, m: dict, auth: dict, stored: dict) -> str:
    settings = request.app.state.settings
    async with tenant_transaction(request.app.state.pool, m["code"], readonly=True) as conn:
        keys = await municipality_keys(conn, settings.master_key_bytes, m["code"])
        change = await assess_change(
            conn, keys.cipher, m["code"], auth["entitlement_id"], BankAccount.from_session(stored)
        )
    return change.kind


async def account_change(request: Request) -> Response:
    """After applying, a different account: say the application exists, and offer 口座変更の届出 while
    the payment is not in a batch (app.intake.changes). GET shows the choice (or the result after a
    change); POST makes the change and comes back here."""
    m = await _municipality(request)
    auth = await _signed_in(request, m)
    if auth is None:
        return _redirect(f"/m/{m['code']}/signin")
    session = await load_session(request)
    if request.method == "POST":
        session, _ = await verify_form(request)
    ent, _, app = await _entitlement(request, m, auth)
    stored = session.get("bank")
    if not _active(app) or (not stored and not session.get("account_changed")):
        return _redirect(f"/m/{m['code']}/household")
    assert app is not None
    ctx: dict[str, Any] = {
        "m": m,
        "title": "口座変更の届出",
        "step": 0,
        "ent": ent,
        "receipt": format_receipt(app["receipt_no"]),
        "acct": BankAccount.from_session(stored) if stored else None,
        "kind": "changed" if not stored else "",
        "account_type_label": banks.ACCOUNT_TYPES.get(stored["account_type"], "") if stored else "",
    }
    if stored and request.method == "GET":
        ctx["kind"] = await _assess(request, m, auth, stored)
    elif stored:
        settings = request.app.state.settings
        try:
            async with tenant_transaction(request.app.state.pool, m["code"]) as conn:
                keys = await municipality_keys(conn, settings.master_key_bytes, m["code"])
                change = await change_account(
                    conn, keys.cipher, m["code"], auth["entitlement_id"], ctx["acct"], actor=_actor(auth)
                )
            kind = change.kind
        except AccountChangeTooLate:
            kind = "too_late"
        if kind in ("changed", "same"):
            if kind == "changed":
                for_app(request).after_created(m["code"])  # the application's verification, due again
            session.pop("bank")
            session["account_changed"] = True
            response = _redirect(f"/m/{m['code']}/account-change")
            await save_session(request, response)
            return response
        ctx["kind"] = kind
        return await _page(request, "intake_account_change.html", ctx, status_code=409)
    return await _page(request, "intake_account_change.html", ctx)

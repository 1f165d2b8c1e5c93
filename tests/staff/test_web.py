"""The console over HTTP: sign-in with TOTP, sign-in delays, session revocation, CSRF, roles, and 404 for every
route given another municipality's ids (routes enumerated from the router)."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from app.main import create_app
from app.staff import grants
from app.staff.web.routes import routes as staff_routes
from app.tenancy.transaction import tenant_transaction
from payouts import holds
from payouts.bankdays import today_jst
from tests.jobs import draft
from tests.staff.conftest import PASSWORD, add_bank_settings, make_staff

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def login(client, code, login_name, password=PASSWORD, totp=""):
    page = client.get("/staff/login")
    token = CSRF.search(page.text).group(1)
    return client.post(
        "/staff/login",
        data={"csrf_token": token, "municipality_code": code, "login": login_name, "password": password, "totp": totp},
    )


def csrf_of(client, path="/staff/"):
    return CSRF.search(client.get(path).text).group(1)


async def test_totp_is_required_for_approvers_and_codes_are_single_use(make_world, client):
    world = await make_world(applications=0)
    assert login(client, world.code, "appr").status_code == 401
    assert login(client, world.code, "appr", totp="000000").status_code == 401
    code = world.totp_now("appr")
    assert login(client, world.code, "appr", totp=code).status_code == 303
    client.cookies.clear()
    assert login(client, world.code, "appr", totp=code).status_code == 401  # replay
    assert login(client, world.code, "rev").status_code == 303  # reviewers: password only


async def test_failures_make_the_login_wait_instead_of_locking_it(make_world, client):
    """Five wrong passwords no longer lock the account for 15 minutes: the fifth makes this (untrusted)
    path wait a second, and the wait doubles from there (tests/staff/test_signin.py has the rest)."""
    world = await make_world(applications=0)
    for _ in range(4):
        r = login(client, world.code, "rev", password="wrong-password-x")
        assert r.status_code == 401 and "retry-after" not in r.headers
    r = login(client, world.code, "rev", password="wrong-password-x")
    assert r.status_code == 401 and r.headers["retry-after"] == "1" and "失敗が続いたため" in r.text
    import time

    time.sleep(1.1)
    assert login(client, world.code, "rev").status_code == 303  # the right password, after the wait


async def test_sessions_are_revocable_and_logout_ends_them(make_world, client, app_pool, settings):
    world = await make_world(applications=0)
    assert login(client, world.code, "rev").status_code == 303
    assert client.get("/staff/").status_code == 200
    other = TestClient(client.app, follow_redirects=False)
    other.cookies.update(client.cookies)
    from app.staff.sessions import revoke_all

    async with tenant_transaction(app_pool, world.code) as conn:
        await revoke_all(conn, world.code, world.staff["rev"].staff_id)
    assert client.get("/staff/").status_code == 303  # back to the login page
    assert login(client, world.code, "rev").status_code == 303
    token = csrf_of(client)
    assert client.post("/staff/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/staff/").status_code == 303


async def test_idle_sessions_expire(make_world, client, app_pool):
    world = await make_world(applications=0)
    login(client, world.code, "rev")
    async with tenant_transaction(app_pool, world.code) as conn:
        await conn.execute("UPDATE staff_sessions SET last_seen_at = now() - interval '31 minutes'")
    assert client.get("/staff/").status_code == 303


async def test_posts_without_the_session_csrf_token_are_refused(make_world, client):
    world = await make_world(applications=1)
    login(client, world.code, "rev")
    r = client.post(f"/staff/applications/{world.applications[0]}/decision", data={"decision": "approve"})
    assert r.status_code == 403
    r = client.post(
        f"/staff/applications/{world.applications[0]}/decision",
        data={"decision": "approve", "csrf_token": csrf_of(client)},
    )
    assert r.status_code == 303


# Which role may do what (GET pages and POST actions), as the console enforces it.
ROLE_MATRIX = {
    ("GET", "/staff/review"): {"reviewer", "admin"},
    ("GET", "/staff/programs/{program_id}/draft"): {"drafter"},
    ("POST", "/staff/programs/{program_id}/draft"): {"drafter"},
    ("POST", "/staff/batches/{batch_id}/approve"): {"approver"},
    ("POST", "/staff/batches/{batch_id}/reject"): {"approver"},
    ("POST", "/staff/batches/{batch_id}/release"): {"approver"},
    ("POST", "/staff/batches/{batch_id}/cancel"): {"drafter"},
    ("POST", "/staff/applications/{application_id}/decision"): {"reviewer"},
    ("POST", "/staff/duplicates/resolve"): {"reviewer"},
    # 紙の申請書 (app/intake/paper.py): keyers (入力) key and receive boxes, reviewers also decide and send letters.
    ("GET", "/staff/paper"): {"reviewer", "admin", "keyer"},
    ("POST", "/staff/paper/boxes"): {"reviewer", "keyer"},
    ("GET", "/staff/paper/deficiencies"): {"reviewer", "admin"},
    ("POST", "/staff/paper/deficiencies/export"): {"reviewer", "admin"},
    # 代理申請 and DV 申出 (app/intake/proxy.py, app/registry/dv.py).
    ("GET", "/staff/proxy"): {"reviewer", "admin"},
    ("POST", "/staff/proxy"): {"reviewer", "admin"},
    ("POST", "/staff/proxy/settings"): {"admin"},
    ("GET", "/staff/dv"): {"reviewer", "admin"},
    ("POST", "/staff/dv/file"): {"reviewer"},
    ("POST", "/staff/dv/exclude"): {"reviewer"},
    ("POST", "/staff/dv/refuse"): {"reviewer"},
    ("GET", "/staff/holds"): {"reviewer", "drafter", "admin"},
    ("POST", "/staff/holds/rule"): {"admin"},
    ("GET", "/staff/reconciliation"): {"reviewer", "drafter"},
    ("GET", "/staff/admin/staff"): {"admin"},
    ("GET", "/staff/admin/audit"): {"admin"},
    ("GET", "/staff/admin/audit/export"): {"admin"},
    ("POST", "/staff/admin/staff"): {"admin"},
    ("GET", "/staff/admin/bank"): {"admin"},
    ("POST", "/staff/admin/bank"): {"admin"},
    ("POST", "/staff/review/search"): {"reviewer", "admin"},
    ("GET", "/staff/recovery"): {"reviewer", "drafter", "approver"},
    ("GET", "/staff/payments/{payment_id}/recovery"): {"reviewer", "drafter", "approver"},
    ("POST", "/staff/payments/{payment_id}/recall"): {"drafter"},
    ("POST", "/staff/payments/{payment_id}/recall/answer"): {"reviewer", "drafter"},
    ("POST", "/staff/payments/{payment_id}/debt"): {"drafter"},
    ("POST", "/staff/payments/{payment_id}/debt/repayment"): {"reviewer", "drafter"},
    ("POST", "/staff/payments/{payment_id}/debt/write-off/approve"): {"approver"},
}
# Routes without an object id open to every signed-in staff member (or before sign-in).
ANY_STAFF = {
    ("GET", "/staff/login"),
    ("POST", "/staff/login"),
    ("POST", "/staff/logout"),
    ("GET", "/staff/"),
    ("GET", "/staff/progress"),  # 支給状況: figures only (tests/staff/test_progress.py)
    ("GET", "/staff/progress.csv"),
    ("GET", "/staff/batches"),
    ("GET", "/staff/duplicates"),  # the list; the matched member only for reviewers and admins
}


def test_every_route_without_an_id_is_classified(settings):
    """Routes with ids are enumerated by the 404 test below; the others must be in the role matrix (so a new
    admin page cannot ship without its role check being tested) or be declared open to any staff member."""
    for route in staff_routes(settings):
        if route.param_convertors:
            continue
        for method in route.methods - {"HEAD"}:
            assert (method, route.path) in ROLE_MATRIX.keys() | ANY_STAFF, f"{method} {route.path}: classify it"


async def test_role_matrix(make_world, client, app_pool, transfer_date):
    world = await make_world(applications=1, status="approved")
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
    batch_id = await draft(app_pool, world, transfer_date, "draft2")
    async with tenant_transaction(app_pool, world.code) as conn:
        payment_id = await conn.fetchval("SELECT min(payment_id) FROM payments")
    ids = {
        "program_id": world.program_id,
        "batch_id": batch_id,
        "application_id": world.applications[0],
        "payment_id": payment_id,
    }
    for login_name, role in (("rev", "reviewer"), ("draft", "drafter"), ("appr", "approver"), ("admin", "admin")):
        client.cookies.clear()
        totp = world.totp_now(login_name) if login_name in world.totp else ""
        assert login(client, world.code, login_name, totp=totp).status_code == 303
        token = csrf_of(client)
        for (method, path), allowed in ROLE_MATRIX.items():
            url = path.format(**ids)
            r = client.get(url) if method == "GET" else client.post(url, data={"csrf_token": token})
            if role in allowed:
                assert r.status_code not in (401, 403), (role, method, path, r.status_code)
            else:
                assert r.status_code == 403, (role, method, path, r.status_code)


# "account": a batch's over-limit account (payouts/guardrails.py), named by its keyed fingerprint.
PARAM_OBJECTS = {
    "application_id",
    "batch_id",
    "program_id",
    "payment_id",
    "staff_id",
    "grant_id",
    "account",
    "hold_id",
    "box_id",
    "form_id",
}
# Routes before sign-in whose path carries its own credential (tests/staff/test_enrolment.py covers them).
PUBLIC_WITH_PARAMS = {"/staff/enroll/{code}/{token}"}


async def _paper_ids(conn, world) -> dict[str, int]:
    """A box of one form (app/intake/paper.py), received by "all"."""
    import datetime as dt

    from app.intake import paper

    box_id = await paper.receive_box(conn, world.code, world.staff["all"], world.program_id, "B-1", dt.date.today(), 1)
    detail = await paper.box(conn, world.code, box_id)
    return {"box_id": box_id, "form_id": detail["forms"][0]["form_id"]}


async def test_every_staff_route_answers_404_for_another_municipalitys_ids(
    make_world, client, app_pool, transfer_date, settings
):
    a, b = await make_world(applications=1, status="approved"), await make_world(applications=1, status="approved")
    ids = {}
    for world in (a, b):
        async with tenant_transaction(app_pool, world.code) as conn:
            await add_bank_settings(conn, world.code)
            await make_staff(conn, world, "all", ["reviewer", "drafter", "approver", "admin", "keyer"])
        batch_id = await draft(app_pool, world, transfer_date)
        async with tenant_transaction(app_pool, world.code) as conn:
            ids[world.code] = {
                "application_id": world.applications[0],
                "batch_id": batch_id,
                "program_id": world.program_id,
                "payment_id": await conn.fetchval("SELECT min(payment_id) FROM payments"),
                "staff_id": world.staff["rev"].staff_id,
                "account": "0" * 64,
                "hold_id": await holds.place_hold(
                    conn,
                    world.code,
                    world.staff["rev"],
                    await conn.fetchval("SELECT min(entitlement_id) FROM entitlements"),
                    "investigation",
                    "x",
                ),
                **await _paper_ids(conn, world),
                "grant_id": (
                    await grants.request(
                        conn, world.code, world.staff["admin"], world.staff["rev"].staff_id, ["drafter"]
                    )
                )[0],
            }
    assert login(client, a.code, "all", totp=a.totp_now("all")).status_code == 303
    token = csrf_of(client)
    form = {
        "csrf_token": token,
        "decision": "approve",
        "comment": "x",
        "transfer_date": transfer_date.isoformat(),
        "expected_count": "1",
        "expected_total_yen": "100000",
        "sha256": "0" * 64,
        "note": "x",
        "bank_code": "0001",
        "branch_code": "001",
        "account_type": "1",
        "account_number": "1234567",
        "holder_kana": "ﾔﾏﾀﾞ",
        "roles": "reviewer",
        "purpose": "review",
        # 組戻し・返還 (app/staff/web/recovery.py): valid values, so the id is what is refused
        "reason": "x",
        "outcome": "returned",
        "bank_answer": "x",
        "fee_yen": "0",
        "amount_yen": "1",
        "kind": "demand",
        "sent_on": today_jst().isoformat(),
        "received_on": today_jst().isoformat(),
    }
    checked = 0
    for route in staff_routes(settings):
        assert isinstance(route, Route)
        params = set(route.param_convertors)
        if route.path in PUBLIC_WITH_PARAMS:
            continue
        assert params <= PARAM_OBJECTS, f"{route.path}: add its parameters to this test"
        if not params:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            url = route.path.format(**ids[b.code])
            r = client.get(url, params={"purpose": "review"}) if method == "GET" else client.post(url, data=form)
            assert r.status_code == 404, (method, route.path, r.status_code)
            checked += 1
    assert checked >= 15
    # The same routes with A's own ids are found (GET pages render).
    for path in (
        "/staff/applications/{application_id}",
        "/staff/batches/{batch_id}",
        "/staff/programs/{program_id}/draft",
    ):
        assert client.get(path.format(**ids[a.code]), params={"purpose": "review"}).status_code == 200, path


async def test_admin_creates_an_approver_without_choosing_or_seeing_any_secret(make_world, client, app_pool):
    """The create form has no password field; the page shows a one-time enrolment link, never a password or
    TOTP secret, and the approver role waits for a second admin (old code: admin set the password and was
    shown the approver's TOTP secret)."""
    world = await make_world(applications=0)
    assert login(client, world.code, "admin", totp=world.totp_now("admin")).status_code == 303
    form_page = client.get("/staff/admin/staff")
    assert 'name="password"' not in form_page.text
    r = client.post(
        "/staff/admin/staff",
        data={
            "csrf_token": csrf_of(client),
            "login": "kaikei",
            "display_name": "会計 一郎",
            "password": "long-enough-password",
            "roles": ["approver"],
        },
    )
    assert r.status_code == 200
    link = re.search(r'id="enrol-link">(http://[^<]+/staff/enroll/(\d{6})/([A-Za-z0-9_-]{43}))<', r.text)
    assert link and link.group(2) == world.code
    assert 'id="totp-secret"' not in r.text and not re.search(r"\b[A-Z2-7]{32}\b", r.text)
    assert 'id="pending-notice"' in r.text and "別の管理者が確認するまで有効になりません" in r.text
    async with tenant_transaction(app_pool, world.code) as conn:
        row = await conn.fetchrow("SELECT roles, totp_secret, created_by FROM staff_users WHERE login = 'kaikei'")
        pending = await conn.fetch(
            "SELECT role, requested_by FROM staff_role_grants g JOIN staff_users u"
            " USING (municipality_code, staff_id) WHERE u.login = 'kaikei' AND status = 'pending'"
        )
    assert list(row["roles"]) == [] and row["totp_secret"] is None
    assert row["created_by"] == world.staff["admin"].staff_id
    assert [(p["role"], p["requested_by"]) for p in pending] == [("approver", world.staff["admin"].staff_id)]
    # The password the admin tried to set is not a password of the account.
    client.cookies.clear()
    assert login(client, world.code, "kaikei", password="long-enough-password").status_code == 401
    assert login(client, world.code, "admin", totp=world.totp_now("admin", 1)).status_code == 303
    r = client.post(
        "/staff/admin/staff",
        data={"csrf_token": csrf_of(client), "login": "x", "display_name": "", "roles": ["nobody"]},
    )
    assert r.status_code == 422 and "権限は" in r.text and 'id="console-error"' in r.text
    r = client.post(
        "/staff/admin/staff",
        data={"csrf_token": csrf_of(client), "login": "x", "display_name": "エックス", "roles": ["reviewer"]},
    )
    assert r.status_code == 422 and "ログインIDは半角英小文字" in r.text and "（login）" not in r.text
    assert 'id="display_name" name="display_name" value="エックス"' in r.text  # the staff page, input kept

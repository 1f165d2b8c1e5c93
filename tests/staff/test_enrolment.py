"""One-time enrolment links (app/staff/enrolment.py): only the account's owner sets its password and TOTP;
a link works once, for 72 hours; a reset disables the old credentials; every use and misuse is audited."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time

import asyncpg
import pyotp
import pytest
from starlette.testclient import TestClient

from app import audit
from app.main import create_app
from app.staff import enrolment, grants
from app.staff.actors import Operator
from app.tenancy.transaction import tenant_transaction
from tests.staff.conftest import PASSWORD, make_staff
from tests.staff.test_web import csrf_of, login

LINK = re.compile(r'id="enrol-link">https?://[^<]+?(/staff/enroll/\d{6}/[A-Za-z0-9_-]{43})<')
FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r'id="totp-secret">([A-Z2-7]{32})<')


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


@pytest.fixture
def owner(settings):
    """The browser of the person the link is for (no session of anyone)."""
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def admin_creates(client, world, login_name: str, roles: list[str]) -> str:
    assert login(client, world.code, "admin", totp=world.totp_now("admin")).status_code == 303
    r = client.post(
        "/staff/admin/staff",
        data={"csrf_token": csrf_of(client), "login": login_name, "display_name": f"{login_name}さん", "roles": roles},
    )
    assert r.status_code == 200, r.text
    return LINK.search(r.text).group(1)


def submit(owner, path: str, page_text: str, password: str, confirm: str | None = None, totp: str = ""):
    token = FORM_TOKEN.search(page_text).group(1)
    return owner.post(
        path,
        data={
            "csrf_token": token,
            "password": password,
            "password_confirm": password if confirm is None else confirm,
            "totp": totp,
        },
    )


async def actions(app_pool, code) -> list[dict]:
    async with tenant_transaction(app_pool, code) as conn:
        rows = await conn.fetch("SELECT action, actor_label, object_id, details FROM audit_log ORDER BY seq")
    return [
        {"action": r["action"], "actor": r["actor_label"], "object_id": r["object_id"], **json.loads(r["details"])}
        for r in rows
    ]


async def test_the_owner_sets_password_and_totp_through_the_link_once(make_world, client, owner, app_pool):
    world = await make_world(applications=0)
    path = admin_creates(client, world, "kaikei", ["approver"])
    page = owner.get(path)
    assert page.status_code == 200 and 'id="enrol-login">kaikei<' in page.text
    secret = SECRET.search(page.text).group(1)  # the owner sees the secret; the admin's page did not
    assert 'id="totp-uri">otpauth://totp/' in page.text and "承認" in page.text
    # Wrong input: each field named, nothing stored, the link still usable.
    r = submit(owner, path, page.text, "short")
    assert r.status_code == 422 and 'id="password-error"' in r.text and "password" in r.text
    r = submit(owner, path, page.text, "a-good-long-password", confirm="another-long-password")
    assert r.status_code == 422 and 'id="password_confirm-error"' in r.text
    r = submit(owner, path, page.text, "a-good-long-password", totp="000000")
    assert r.status_code == 422 and 'id="totp-error"' in r.text
    r = submit(owner, path, page.text, "a-good-long-password", totp="")
    assert r.status_code == 422 and 'id="totp-error"' in r.text
    # Without the form's token (a cross-site post): refused before anything is read.
    assert owner.post(path, data={"password": "a-good-long-password"}).status_code == 403
    t0 = time.time()
    code = pyotp.TOTP(secret).at(t0)
    r = submit(owner, path, page.text, "a-good-long-password", totp=code)
    assert r.status_code == 200 and 'id="enrol-done"' in r.text and secret not in r.text
    # Used up: the same link (GET or POST) no longer works, and the attempt is audited.
    again = owner.get(path)
    assert again.status_code == 410 and 'id="enrol-invalid"' in again.text and "使用済み" in again.text
    assert submit(owner, path, page.text, "an-attackers-password").status_code == 403  # its form is gone too
    async with tenant_transaction(app_pool, world.code) as conn:
        link = await enrolment.complete(
            conn,
            world.cipher,
            world.code,
            path.rsplit("/", 1)[1],
            "an-attackers-password",
            "an-attackers-password",
            pyotp.TOTP(secret).now(),
        )
    assert link.state == "used" and not link.completed
    # Signed in with what they set (no TOTP role is effective yet), but no role confirmed: nothing to see.
    owner.cookies.clear()
    assert login(owner, world.code, "kaikei", password="a-good-long-password").status_code == 303
    r = owner.get("/staff/")
    assert r.status_code == 403 and "権限がまだ有効になっていません" in r.text
    # A second admin confirms the approver role: effective at once; from now on sign-in needs the TOTP, and
    # the code typed on the enrolment page cannot be replayed.
    async with tenant_transaction(app_pool, world.code) as conn:
        admin2 = await make_staff(conn, world, "admin2", ["admin"])
        [grant] = [g for g in await grants.pending(conn, world.code) if g["login"] == "kaikei"]
        assert await grants.confirm(conn, world.code, admin2, grant["grant_id"]) == "approver"
    assert owner.get("/staff/").status_code == 200
    owner.cookies.clear()
    assert login(owner, world.code, "kaikei", password="a-good-long-password").status_code == 401
    assert login(owner, world.code, "kaikei", password="a-good-long-password", totp=code).status_code == 401
    r = login(owner, world.code, "kaikei", password="a-good-long-password", totp=pyotp.TOTP(secret).at(t0 + 30))
    assert r.status_code == 303
    entries = await actions(app_pool, world.code)
    mine = [e for e in entries if e.get("login") == "kaikei"]
    assert [e["action"] for e in mine] == [
        "staff.create",
        "grant.request",
        "enrolment.issue",
        "enrolment.complete",
        "enrolment.reuse_attempt",
        "enrolment.reuse_attempt",
        "grant.confirm",
    ]
    assert [e["actor"] for e in mine if e["action"] == "enrolment.complete"] == ["kaikei"]
    async with tenant_transaction(app_pool, world.code) as conn:
        assert (await audit.verify_chain(conn, world.code)).ok
        # Single use in the database too, whatever writes the row.
        with pytest.raises(asyncpg.CheckViolationError, match="used, superseded or expired"):
            await conn.execute(
                "UPDATE staff_enrolments SET completed_at = now(), superseded_at = NULL"
                " WHERE staff_id = (SELECT staff_id FROM staff_users WHERE login = 'kaikei')"
            )


async def test_an_expired_link_does_nothing_and_is_audited(make_world, owner, app_pool):
    world = await make_world(applications=0)
    rev = world.staff["rev"]
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    async with tenant_transaction(app_pool, world.code) as conn:
        # Issued 73 hours ago (the database allows at most 72 hours of life).
        await conn.execute(
            "INSERT INTO staff_enrolments (municipality_code, staff_id, token_sha256, totp_secret, issued_by_operator,"
            " issued_at, expires_at) VALUES ($1, $2, $3, $4, 'ops', now() - interval '73 hours',"
            " now() - interval '1 hour')",
            world.code,
            rev.staff_id,
            digest,
            world.cipher.encrypt("staff_enrolments", "totp_secret", digest, pyotp.random_base32()),
        )
        enrolment_id = await conn.fetchval("SELECT enrolment_id FROM staff_enrolments WHERE token_sha256 = $1", digest)
        with pytest.raises(asyncpg.CheckViolationError, match="staff_enrolments_lifetime"):
            async with conn.transaction():  # a savepoint: the row above stays
                await conn.execute(
                    "INSERT INTO staff_enrolments (municipality_code, staff_id, token_sha256, totp_secret,"
                    " issued_by_operator, expires_at) VALUES ($1, $2, $3, '\\x00', 'ops', now() + interval '73 hours')",
                    world.code,
                    world.staff["draft"].staff_id,
                    "0" * 64,
                )
    path = enrolment.link_path(world.code, token)
    page = owner.get(path)
    assert page.status_code == 410 and "有効期限" in page.text and 'name="password"' not in page.text
    # A form posted anyway (its token from another enrolment page's cookie pair) changes nothing.
    r = owner.post(
        path, data={"csrf_token": "x", "password": "a-good-long-password", "password_confirm": "a-good-long-password"}
    )
    assert r.status_code == 403
    async with tenant_transaction(app_pool, world.code) as conn:
        link = await enrolment.complete(
            conn, world.cipher, world.code, token, "a-good-long-password", "a-good-long-password", ""
        )
        assert link.state == "expired" and not link.completed
        with pytest.raises(asyncpg.CheckViolationError, match="used, superseded or expired"):
            async with conn.transaction():
                await conn.execute(
                    "UPDATE staff_enrolments SET completed_at = now() WHERE enrolment_id = $1", enrolment_id
                )
    assert login(owner, world.code, "rev").status_code == 303  # the old password still works: nothing changed
    expired = [e for e in await actions(app_pool, world.code) if e["action"] == "enrolment.expired_attempt"]
    assert len(expired) == 2 and all(e["object_id"] == str(enrolment_id) and e["login"] == "rev" for e in expired)
    # Unknown or malformed links: 404, nothing written.
    assert owner.get(enrolment.link_path(world.code, secrets.token_urlsafe(32))).status_code == 404
    assert owner.get(f"/staff/enroll/{world.code}/short").status_code == 404
    assert owner.get("/staff/enroll/999999/" + secrets.token_urlsafe(32)).status_code == 404


async def test_a_reset_disables_the_old_credentials_and_supersedes_the_old_link(
    make_world, client, owner, app_pool, settings
):
    world = await make_world(applications=0)
    rev_id = world.staff["rev"].staff_id
    with TestClient(create_app(settings), follow_redirects=False) as rev:
        assert login(rev, world.code, "rev").status_code == 303
        assert login(client, world.code, "admin", totp=world.totp_now("admin")).status_code == 303
        first = client.post(f"/staff/admin/staff/{rev_id}/enroll", data={"csrf_token": csrf_of(client), "confirm": "1"})
        assert first.status_code == 200 and 'id="totp-secret"' not in first.text
        second = client.post(
            f"/staff/admin/staff/{rev_id}/enroll", data={"csrf_token": csrf_of(client), "confirm": "1"}
        )
        old_path, path = LINK.search(first.text).group(1), LINK.search(second.text).group(1)
        assert rev.get("/staff/").status_code == 303  # its session ended with the reset
        assert login(rev, world.code, "rev").status_code == 401  # the old password no longer works
        assert owner.get(old_path).status_code == 410  # superseded by the newer link
        page = owner.get(path)
        assert page.status_code == 200 and 'id="totp-secret"' not in page.text  # a reviewer: no TOTP
        assert submit(owner, path, page.text, "rev-new-long-password").status_code == 200
        assert login(rev, world.code, "rev").status_code == 401
        assert login(rev, world.code, "rev", password="rev-new-long-password").status_code == 303
    async with tenant_transaction(app_pool, world.code) as conn:
        latest = (await enrolment.latest(conn, world.code))[rev_id]
        assert latest["issued_by"] == world.staff["admin"].staff_id and latest["completed_at"] is not None
    issued = [
        e for e in await actions(app_pool, world.code) if e["action"] == "enrolment.issue" and e["login"] == "rev"
    ]
    # Its first enrolment, then the two resets (the first ended its session).
    assert [e["superseded"] for e in issued] == [False, False, True] and issued[1]["sessions_revoked"] == 1


async def test_an_operator_account_needs_a_link_and_a_console_admin(make_world, app_pool, settings):
    """The domain path the CLI uses: an operator creates an account with roles pending; nothing it prints
    or stores is a password or TOTP secret in the clear."""
    world = await make_world(applications=0)
    async with tenant_transaction(app_pool, world.code) as conn:
        issued = await enrolment.create_account(
            conn, world.cipher, world.code, Operator("ops-tanaka"), "clerk", "事務 花子", ["drafter"]
        )
        row = await conn.fetchrow(
            "SELECT roles, created_by, created_by_operator, password_hash, totp_secret"
            " FROM staff_users WHERE login = 'clerk'"
        )
        stored = await conn.fetchrow(
            "SELECT token_sha256, totp_secret FROM staff_enrolments WHERE staff_id = $1", issued.staff_id
        )
    assert list(row["roles"]) == [] and row["created_by"] is None and row["created_by_operator"] == "ops-tanaka"
    assert row["totp_secret"] is None and row["password_hash"].startswith("$argon2id$")
    assert stored["token_sha256"] == hashlib.sha256(issued.token.encode()).hexdigest()
    assert issued.path == f"/staff/enroll/{world.code}/{issued.token}"
    with pytest.raises(Exception, match="bootstrap"):
        async with tenant_transaction(app_pool, world.code) as conn:
            await enrolment.create_account(
                conn, world.cipher, world.code, world.staff["admin"], "boss", "ボス", ["admin"], bootstrap=True
            )


async def test_a_password_is_checked_for_length_and_login(make_world, app_pool):
    world = await make_world(applications=0)
    async with tenant_transaction(app_pool, world.code) as conn:
        issued = await enrolment.issue(
            conn, world.cipher, world.code, world.staff["admin"], world.staff["rev"].staff_id
        )
        link = await enrolment.complete(conn, world.cipher, world.code, issued.token, "rev", "rev", "")
        assert set(link.errors) == {"password"} and not link.completed
        link = await enrolment.complete(conn, world.cipher, world.code, issued.token, "x" * 257, "x" * 257, "")
        assert "256" in link.errors["password"]
        link = await enrolment.complete(conn, world.cipher, world.code, issued.token, PASSWORD, PASSWORD, "")
        assert link.completed

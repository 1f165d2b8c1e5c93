"""Separation of duties one person cannot defeat (app/staff/grants.py): every role needs a second admin,
in the application and in the database; a batch's approver must be independent of its drafter; the CLI
operator is one more principal that can ask but never confirm; bootstrap only for the first two admins."""

from __future__ import annotations

import json
import re

import asyncpg
import pytest

from app import audit
from app.staff import enrolment, grants
from app.staff.actors import Operator
from app.staff.errors import Conflict, Forbidden
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from devtools.demo_staff import confirm_pending, enrol_as_owner
from payouts import batches, drafting
from tests.conftest import run_cli
from tests.jobs import run_payout_jobs
from tests.staff.conftest import PASSWORD, _staff, add_bank_settings, make_staff


async def _world(make_world, app_pool, applications=2):
    world = await make_world(applications=applications, status="approved")
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
        await make_staff(conn, world, "admin2", ["admin"])
    return world


async def _create(conn, world, actor, login, roles):
    """`actor` creates the account asking for `roles`, and keeps the link: it completes the enrolment itself."""
    issued = await enrolment.create_account(conn, world.cipher, world.code, actor, login, f"{login}さん", roles)
    await enrol_as_owner(conn, world.cipher, world.code, issued, PASSWORD)
    return issued.staff_id


async def _draft_and_try(app_pool, settings, world, drafter_login, approver_login, transfer_date):
    async with tenant_transaction(app_pool, world.code) as conn:
        drafter, approver = (
            await _staff(conn, world.code, drafter_login),
            await _staff(conn, world.code, approver_login),
        )
        batch_id = await drafting.draft_batch(conn, world.code, drafter, world.program_id, transfer_date)
    await run_payout_jobs(app_pool, settings, world.code)  # the worker records the file's hash
    async with tenant_transaction(app_pool, world.code) as conn:
        sha = (await batches.get_batch(conn, world.code, batch_id))["plaintext_sha256"]
        try:
            await batches.approve_batch(conn, settings, world.code, approver, batch_id, sha)
        except Forbidden as exc:
            refused = exc.message
        else:
            refused = ""
    if refused:
        # The database refuses the same when the application's check is bypassed.
        with pytest.raises(asyncpg.CheckViolationError, match="not independent of its drafter"):
            async with tenant_transaction(app_pool, world.code) as conn:
                await conn.execute(batches.APPROVE, world.code, batch_id, approver.staff_id, sha)
        async with tenant_transaction(app_pool, world.code) as conn:
            await batches.cancel_batch(conn, world.code, drafter, batch_id)
    return refused


async def test_one_admin_alone_cannot_make_a_usable_approver(make_world, app_pool):
    """The old hole: an admin created an approver, chose its password and saw its TOTP secret. Now the
    approver role stays pending, and neither the application nor the database lets that admin confirm it."""
    world = await make_world(applications=0)
    admin = world.staff["admin"]
    async with tenant_transaction(app_pool, world.code) as conn:
        issued = await enrolment.create_account(
            conn, world.cipher, world.code, admin, "fake", "架空 承認者", ["approver"]
        )
        [grant] = [g for g in await grants.pending(conn, world.code) if g["staff_id"] == issued.staff_id]
        with pytest.raises(Forbidden, match="自分が申請した"):
            await grants.confirm(conn, world.code, admin, grant["grant_id"])
    statements = [
        # confirming one's own request
        (
            "UPDATE staff_role_grants SET status = 'confirmed', decided_by = $2, decided_at = now()"
            " WHERE grant_id = $1",
            (grant["grant_id"], admin.staff_id),
            "staff_role_grants_four_eyes",
        ),
        # a CLI operator confirming
        (
            "UPDATE staff_role_grants SET status = 'confirmed', decided_by_operator = 'ops', decided_at = now()"
            " WHERE grant_id = $1",
            (grant["grant_id"],),
            "staff_role_grants_four_eyes",
        ),
        # a non-admin confirming
        (
            "UPDATE staff_role_grants SET status = 'confirmed', decided_by = $2, decided_at = now()"
            " WHERE grant_id = $1",
            (grant["grant_id"], world.staff["rev"].staff_id),
            "staff_role_grants_confirmer_admin",
        ),
        # writing the role without a confirmed grant
        (
            "UPDATE staff_users SET roles = '{approver}' WHERE staff_id = $1",
            (issued.staff_id,),
            "staff_users_roles_granted",
        ),
        (
            "INSERT INTO staff_users (municipality_code, login, display_name, roles, password_hash)"
            " VALUES (kyufu_current_municipality(), 'direct', 'x', '{approver}', 'x')",
            (),
            "staff_users_roles_granted",
        ),
        # a grant inserted as already confirmed
        (
            "INSERT INTO staff_role_grants (municipality_code, staff_id, role, status, requested_by, decided_by,"
            " decided_at)"
            " VALUES (kyufu_current_municipality(), $1, 'approver', 'confirmed', $2, $3, now())",
            (issued.staff_id, admin.staff_id, world.staff["rev"].staff_id),
            "staff_role_grants_rules",
        ),
        # a bootstrap while the municipality has an admin, of an account no operator created
        (
            "INSERT INTO staff_role_grants (municipality_code, staff_id, role, origin, status, requested_by_operator,"
            " decided_by_operator, decided_at)"
            " VALUES (kyufu_current_municipality(), $1, 'admin', 'bootstrap', 'confirmed',"
            " 'ops', 'ops', now())",
            (issued.staff_id,),
            "staff_role_grants_bootstrap_limit",
        ),
    ]
    for sql, args, constraint in statements:
        with pytest.raises(asyncpg.CheckViolationError) as caught:
            async with tenant_transaction(app_pool, world.code) as conn:
                await conn.execute(sql, *args)
        assert caught.value.constraint_name == constraint, sql
    async with tenant_transaction(app_pool, world.code) as conn:
        assert await conn.fetchval("SELECT roles FROM staff_users WHERE staff_id = $1", issued.staff_id) == []
        # Nor may the one who receives a role confirm it (here a second admin asked for it).
        admin2 = await make_staff(conn, world, "admin2", ["admin"])
        [g] = await grants.request(conn, world.code, admin2, admin.staff_id, ["reviewer"])
        with pytest.raises(Forbidden, match="自分自身への"):
            await grants.confirm(conn, world.code, admin, g)
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        async with tenant_transaction(app_pool, world.code) as conn:
            await conn.execute(
                "UPDATE staff_role_grants SET status = 'confirmed', decided_by = $2, decided_at = now()"
                " WHERE grant_id = $1",
                g,
                admin.staff_id,
            )
    assert caught.value.constraint_name == "staff_role_grants_not_own"


async def test_a_second_admin_confirms_or_refuses_and_everything_is_audited(make_world, app_pool):
    world = await make_world(applications=0)
    admin = world.staff["admin"]
    async with tenant_transaction(app_pool, world.code) as conn:
        admin2 = await make_staff(conn, world, "admin2", ["admin"])
        staff_id = (
            await enrolment.create_account(
                conn, world.cipher, world.code, admin, "clerk", "事務", ["reviewer", "drafter"]
            )
        ).staff_id
        reviewer_grant, drafter_grant = [
            g["grant_id"] for g in await grants.pending(conn, world.code) if g["staff_id"] == staff_id
        ]
        assert await grants.confirm(conn, world.code, admin2, reviewer_grant) == "reviewer"
        assert await grants.refuse(conn, world.code, admin2, drafter_grant) == "refused"
        with pytest.raises(Conflict):
            await grants.confirm(conn, world.code, admin2, drafter_grant)
        [again] = await grants.request(conn, world.code, admin, staff_id, ["drafter"])
        assert await grants.refuse(conn, world.code, admin, again) == "cancelled"  # the asker withdraws
        assert await conn.fetchval("SELECT roles FROM staff_users WHERE staff_id = $1", staff_id) == ["reviewer"]
        rows = await conn.fetch(
            "SELECT action, actor_label, details FROM audit_log WHERE action LIKE 'grant.%'"
            " OR action LIKE 'enrolment.%' OR action = 'staff.create' ORDER BY seq"
        )
        assert (await audit.verify_chain(conn, world.code)).ok
    mine = [
        (r["action"], r["actor_label"], json.loads(r["details"]).get("role"))
        for r in rows
        if json.loads(r["details"]).get("login") == "clerk"
    ]
    assert mine == [
        ("staff.create", "admin", None),
        ("grant.request", "admin", "reviewer"),
        ("grant.request", "admin", "drafter"),
        ("enrolment.issue", "admin", None),
        ("grant.confirm", "admin2", "reviewer"),
        ("grant.refuse", "admin2", "drafter"),
        ("grant.request", "admin", "drafter"),
        ("grant.cancel", "admin", "drafter"),
    ]


async def test_an_admin_who_holds_both_links_cannot_draft_and_approve(make_world, app_pool, settings, transfer_date):
    """An admin creates a drafter and an approver and keeps both links; an honest second admin confirms
    both roles. Both accounts share that admin's hands: approval is refused, and allowed for an approver
    another admin enrolled."""
    world = await _world(make_world, app_pool)
    admin, admin2 = world.staff["admin"], world.staff["admin2"]
    async with tenant_transaction(app_pool, world.code) as conn:
        for login, roles in (("mal-draft", ["drafter"]), ("mal-appr", ["approver"])):
            staff_id = await _create(conn, world, admin, login, roles)
            await confirm_pending(conn, world.code, staff_id, admin2)
        honest = await _create(conn, world, admin2, "kaikei", ["approver"])
        await confirm_pending(conn, world.code, honest, admin)
    refused = await _draft_and_try(app_pool, settings, world, "mal-draft", "mal-appr", transfer_date)
    assert "独立していません" in refused
    assert await _draft_and_try(app_pool, settings, world, "mal-draft", "kaikei", transfer_date) == ""


async def test_an_approver_created_or_granted_by_the_drafter_cannot_approve(
    make_world, app_pool, settings, transfer_date
):
    world = await _world(make_world, app_pool, applications=3)
    admin, admin2 = world.staff["admin"], world.staff["admin2"]
    async with tenant_transaction(app_pool, world.code) as conn:
        # "boss" is an admin who also drafts.
        boss = await make_staff(conn, world, "boss", ["admin", "drafter"])
        # Created by boss, but its current credentials issued by admin2 (so only the creation links them).
        made = await _create(conn, world, boss, "made", ["approver"])
        await confirm_pending(conn, world.code, made, admin2)
        await enrol_as_owner(
            conn,
            world.cipher,
            world.code,
            await enrolment.issue(conn, world.cipher, world.code, admin2, made),
            PASSWORD,
        )
        # Created by admin2; its approver role requested by boss, confirmed by admin.
        asked = await _create(conn, world, admin2, "asked", ["reviewer"])
        await confirm_pending(conn, world.code, asked, admin)
        await grants.request(conn, world.code, boss, asked, ["approver"])
        await confirm_pending(conn, world.code, asked, admin)
        # Created by admin2; its approver role requested by admin2, confirmed by boss.
        vouched = await _create(conn, world, admin2, "vouched", ["approver"])
        await confirm_pending(conn, world.code, vouched, boss)
    assert "作成したため" in await _draft_and_try(app_pool, settings, world, "boss", "made", transfer_date)
    assert "申請または確認したため" in await _draft_and_try(app_pool, settings, world, "boss", "asked", transfer_date)
    assert "申請または確認したため" in await _draft_and_try(app_pool, settings, world, "boss", "vouched", transfer_date)
    # The same approvers may approve another drafter's batch (the page says nothing against it).
    assert await _draft_and_try(app_pool, settings, world, "draft", "made", transfer_date) == ""


async def test_whoever_issued_a_confirmers_link_cannot_confirm_through_them(make_world, app_pool):
    """A takeover by reset: admin resets admin2 and keeps the link. admin2's hands now include admin, so
    admin2 cannot confirm admin's requests (nor admin a request of admin2's)."""
    world = await make_world(applications=0)
    admin = world.staff["admin"]
    async with tenant_transaction(app_pool, world.code) as conn:
        admin2 = await make_staff(conn, world, "admin2", ["admin"])
        await enrol_as_owner(
            conn,
            world.cipher,
            world.code,
            await enrolment.issue(conn, world.cipher, world.code, admin, admin2.staff_id),
            PASSWORD,
        )
        [g] = await grants.request(conn, world.code, admin, world.staff["rev"].staff_id, ["drafter"])
        with pytest.raises(Forbidden, match="同じ人が登録用リンクを発行"):
            await grants.confirm(conn, world.code, admin2, g)
    with pytest.raises(asyncpg.CheckViolationError, match="not independent of the requester"):
        async with tenant_transaction(app_pool, world.code) as conn:
            await conn.execute(
                "UPDATE staff_role_grants SET status = 'confirmed', decided_by = $2, decided_at = now()"
                " WHERE grant_id = $1",
                g,
                admin2.staff_id,
            )
    # Through a chain: admin2 (controlled by admin) resets admin3; admin3 still shares admin's hands.
    async with tenant_transaction(app_pool, world.code) as conn:
        admin3 = await make_staff(conn, world, "admin3", ["admin"])
        await enrol_as_owner(
            conn,
            world.cipher,
            world.code,
            await enrolment.issue(conn, world.cipher, world.code, admin2, admin3.staff_id),
            PASSWORD,
        )
        with pytest.raises(Forbidden, match="同じ人が登録用リンクを発行"):
            await grants.confirm(conn, world.code, admin3, g)


async def test_the_cli_issues_links_and_asks_but_a_console_admin_confirms(
    municipality, subprocess_env, settings, app_pool
):
    code = await municipality()

    def cli(*args):
        return run_cli(subprocess_env, "staff", *args, "--municipality", code, timeout=120)

    def link_of(out: str) -> str:
        return re.search(r"/staff/enroll/\d{6}/([A-Za-z0-9_-]{43})", out).group(1)

    r = cli("add", "--login", "clerk", "--name", "事務", "--roles", "drafter")
    assert r.returncode == 2 and "--operator" in r.stderr  # who runs it is recorded, so it must be said
    tokens = {}
    for login in ("boss1", "boss2"):
        r = cli("bootstrap-admin", "--operator", "ops-sato", "--login", login, "--name", f"{login}さん")
        assert r.returncode == 0, r.stderr
        assert "password:" not in r.stdout and "TOTP secret" not in r.stdout
        tokens[login] = link_of(r.stdout)
    r = cli("bootstrap-admin", "--operator", "ops-sato", "--login", "boss3", "--name", "三人目")
    assert r.returncode == 2 and "既に2人" in r.stderr
    r = cli("add", "--operator", "ops-sato", "--login", "clerk", "--name", "事務", "--roles", "drafter")
    assert r.returncode == 0 and "pending" in r.stdout and "TOTP secret" not in r.stdout
    r = run_cli(subprocess_env, "staff", "list", "--municipality", code)
    assert "clerk\t-\tactive\tno-totp\tpending:drafter" in r.stdout
    # No password option any more: the operator cannot choose one.
    r = cli(
        "add",
        "--operator",
        "ops-sato",
        "--login",
        "clerk2",
        "--name",
        "x",
        "--roles",
        "reviewer",
        "--password",
        "chosen-by-operator",
    )
    assert r.returncode == 2
    async with tenant_transaction(app_pool, code) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        for login, token in tokens.items():
            issued = enrolment.Issued(0, 0, login, token, "", None)
            assert await enrol_as_owner(conn, cipher, code, issued, PASSWORD)
    # The same operator resets boss1: boss1's hands now include the operator, who asked for clerk's role.
    r = cli("enroll", "--operator", "ops-sato", "--login", "boss1")
    assert r.returncode == 0 and "no longer work" in r.stdout
    async with tenant_transaction(app_pool, code) as conn:
        await enrol_as_owner(conn, cipher, code, enrolment.Issued(0, 0, "boss1", link_of(r.stdout), "", None), PASSWORD)
        boss1, boss2 = await _staff(conn, code, "boss1"), await _staff(conn, code, "boss2")
        [g] = [g["grant_id"] for g in await grants.pending(conn, code)]
        with pytest.raises(Forbidden, match="同じ人が登録用リンクを発行"):
            await grants.confirm(conn, code, boss1, g)
    async with tenant_transaction(app_pool, code) as conn:
        assert await grants.confirm(conn, code, boss2, g) == "drafter"
        rows = await conn.fetch("SELECT action, actor_label FROM audit_log WHERE actor_label LIKE 'cli:%' ORDER BY seq")
    assert {r["actor_label"] for r in rows} == {"cli:ops-sato"}
    assert [r["action"] for r in rows].count("grant.bootstrap") == 2
    assert {"staff.create", "enrolment.issue", "grant.request"} <= {r["action"] for r in rows}
    # An operator can never confirm: there is no command for it, and the database wants a console admin.
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            [g2] = await grants.request(conn, code, Operator("ops-sato"), boss2.staff_id, ["reviewer"])
            await conn.execute(
                "UPDATE staff_role_grants SET status = 'confirmed', decided_by_operator = 'ops-suzuki',"
                " decided_at = now() WHERE grant_id = $1",
                g2,
            )
    assert caught.value.constraint_name == "staff_role_grants_four_eyes"


async def test_the_demo_people_are_independent_and_ready(municipality, app_pool, settings):
    """provision (the demo, e2e, load tests): two bootstrapped admins, the drafter's and the approver's
    links issued by different admins, so the demo can draft, approve and release."""
    from devtools.demo_staff import DEMO_ADMINS, DEMO_OPERATOR, DEMO_STAFF, provision

    code = await municipality()
    async with tenant_transaction(app_pool, code) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        totp = await provision(conn, cipher, code, DEMO_OPERATOR, DEMO_ADMINS, DEMO_STAFF)
        again = await provision(conn, cipher, code, DEMO_OPERATOR, DEMO_ADMINS, DEMO_STAFF)
        drafter, approver = await _staff(conn, code, "drafter"), await _staff(conn, code, "approver")
        assert await conn.fetchval(batches.APPROVAL_CONFLICT, code, drafter.staff_id, approver.staff_id) is None
        roles = dict(await conn.fetch("SELECT login, roles FROM staff_users"))
    assert totp == again and {k for k, v in totp.items() if v} == {"approver", "admin", "admin2"}
    assert roles == {
        "reviewer": ["reviewer"],
        "drafter": ["drafter"],
        "approver": ["approver"],
        "admin": ["admin"],
        "admin2": ["admin"],
        "keyer1": ["keyer"],
        "keyer2": ["keyer"],
    }

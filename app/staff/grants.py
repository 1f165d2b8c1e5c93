"""Roles are granted by two admins, and money needs two independent people.

Separation of duties in the console, so that no one person can move money alone (issue 12, finding 2):

* **Credentials belong to their owner.** An admin (or a platform operator at the CLI) never chooses or
  sees another account's password or TOTP secret: creating an account, or resetting one, issues a one-time
  enrolment link (app/staff/enrolment.py) that the owner opens to set both.
* **Every role needs a second admin.** An admin's request for a role (on creation or by a role change) is a
  pending grant until another admin confirms it; only then is it in staff_users.roles. The database holds
  this: the four-eyes CHECK on staff_role_grants (confirmed by a signed-in admin who did not ask, and not
  the one who receives it), and a trigger that lets staff_users.roles gain only a role a confirmed grant
  backs. Reviewers too: a reviewer's decision makes a flagged application payable, so a reviewer that one
  admin made up would let that admin pay an account of their choosing. Taking a role away is immediate
  (it only reduces what someone can do), and revokes its grant.
* **Independent, not just different, accounts.** Whoever issued an account's current enrolment saw its
  link and may have used it, so they count as "hands" that may be acting as it, and so do whoever issued
  theirs, up the chain (kyufu_hands). A grant's confirmer must share no hands with its requester; a batch's
  approver must share none with its drafter, and must not have been created by the drafter nor had their
  approver role requested or confirmed by the drafter (kyufu_approval_conflict; checked by approve_batch
  for the message and by a trigger on payout_batches whatever writes the row). So an admin who creates a
  drafter and an approver and keeps both links gets nothing: both accounts share that admin's hands.
* **The CLI is one more principal, and a weaker one.** `kyufu staff add|enroll|grant --operator NAME`
  issues enrolments and requests grants; only a signed-in admin (password + TOTP) confirms, and only one
  that shares no hands with the operator, so an operator cannot confirm through an admin whose link they
  issued. Operator names are self-declared, which is why a second "operator" cannot confirm instead.
* **Bootstrap.** A new municipality has no admin to confirm anything. An operator may make an admin of a
  new account (`kyufu staff bootstrap-admin`) while the municipality has fewer than two enabled admins:
  the first two, and again if all but one leave. Bootstrapped admins are the trust anchor: their
  operator is not counted among their hands (or every account of the municipality would share them).

What remains, and why. A platform operator holds DATABASE_OWNER_URL and the master key: with the owner
role they can write these tables directly or disable the triggers, and with the CLI they can bootstrap
admins whenever a municipality has fewer than two enabled ones (an admin who disables the other admin and
also runs the CLI can therefore make a second admin of their own). That is the platform's trust boundary,
which the application cannot close; the hash-chained audit trail (every enrolment issued, completed or tried
after use or expiry, every grant requested, confirmed, refused, cancelled or bootstrapped, each disable,
with the operator's name) makes it visible to `kyufu audit verify` and the municipality's auditors.
Accounts that existed before migration 0014 keep their roles (one grant each, origin 'migration') and
their credentials, which an admin may have chosen: re-issue their enrolment links to close that. Inside a
municipality, two people who collude can still move money: four eyes means two people, not two honest
people; and a reviewer's decision on a flagged application is one person's, as before (a second admin
confirmed that reviewer; the drafter and approver still see the batch's totals). A link is only as good as
the channel it is handed over by: an admin must give it to the person in person or through a channel they
trust, because whoever holds it can become that account until its owner notices they cannot sign in.
"""

from __future__ import annotations

import asyncpg

from app import audit
from app.staff.accounts import ROLES, Staff, check_roles, set_roles
from app.staff.actors import Actor, Operator, audit_actor, columns
from app.staff.errors import Conflict, Forbidden, NotFound

REQUEST = """
INSERT INTO staff_role_grants (municipality_code, staff_id, role, requested_by, requested_by_operator)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (municipality_code, staff_id, role) WHERE status IN ('pending', 'confirmed') DO NOTHING
RETURNING grant_id
"""
BOOTSTRAP = """
INSERT INTO staff_role_grants (municipality_code, staff_id, role, origin, status, requested_by_operator,
                               decided_by_operator, decided_at)
VALUES ($1, $2, 'admin', 'bootstrap', 'confirmed', $3, $3, now())
RETURNING grant_id
"""
LOCK_GRANT = """
SELECT g.grant_id, g.staff_id, g.role, g.status, g.requested_by, g.requested_by_operator, u.login
FROM staff_role_grants g JOIN staff_users u USING (municipality_code, staff_id)
WHERE g.municipality_code = $1 AND g.grant_id = $2
FOR UPDATE OF g
"""
DECIDE = """
UPDATE staff_role_grants SET status = $3, decided_by = $4, decided_by_operator = $5, decided_at = now()
WHERE municipality_code = $1 AND grant_id = $2
"""
# The role joins the others in the canonical order of ROLES.
ADD_ROLE = """
UPDATE staff_users SET roles = ARRAY(
    SELECT r FROM unnest($4::text[]) WITH ORDINALITY AS t(r, i) WHERE r = ANY (roles) OR r = $3 ORDER BY i)
WHERE municipality_code = $1 AND staff_id = $2
"""
INDEPENDENT = "SELECT kyufu_independent($1, $2, $3, $4, $5)"
ENABLED_ADMINS = """
SELECT count(*) FROM staff_users WHERE municipality_code = $1 AND 'admin' = ANY (roles) AND disabled_at IS NULL
"""
TARGET = "SELECT staff_id, login, roles, disabled_at FROM staff_users WHERE municipality_code = $1 AND staff_id = $2"
LIVE_ROLES = """
SELECT role, status FROM staff_role_grants
WHERE municipality_code = $1 AND staff_id = $2 AND status IN ('pending', 'confirmed')
"""
PENDING = """
SELECT g.grant_id, g.staff_id, u.login, u.display_name, g.role, g.requested_by, g.requested_by_operator,
       r.login AS requested_by_login, g.requested_at
FROM staff_role_grants g
JOIN staff_users u ON u.municipality_code = g.municipality_code AND u.staff_id = g.staff_id
LEFT JOIN staff_users r ON r.municipality_code = g.municipality_code AND r.staff_id = g.requested_by
WHERE g.municipality_code = $1 AND g.status = 'pending'
ORDER BY g.requested_at, g.grant_id
"""
PENDING_ROLES = """
SELECT role FROM staff_role_grants WHERE municipality_code = $1 AND staff_id = $2 AND status = 'pending'
"""


def _require_admin(actor: Actor) -> None:
    if isinstance(actor, Staff):
        actor.require("admin")


async def _target(conn: asyncpg.Connection, code: str, staff_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(TARGET, code, staff_id)
    if row is None:
        raise NotFound()
    return row


async def request(conn: asyncpg.Connection, code: str, actor: Actor, staff_id: int, roles: list[str]) -> list[int]:
    """Ask for `roles` for an account; returns the new pending grants' ids (a role the account already
    holds or has pending is skipped). Nothing is effective until another admin confirms."""
    _require_admin(actor)
    roles = check_roles(roles)
    target = await _target(conn, code, staff_id)
    if target["disabled_at"] is not None:
        raise Conflict("無効にされたアカウントには権限を申請できません。")
    by_staff, by_operator = columns(actor)
    who, label = audit_actor(actor)
    ids = []
    for role in roles:
        grant_id = await conn.fetchval(REQUEST, code, staff_id, role, by_staff, by_operator)
        if grant_id is None:
            continue
        ids.append(grant_id)
        await audit.append(
            conn,
            code,
            who,
            "grant.request",
            "staff_role_grant",
            grant_id,
            {"staff_id": staff_id, "login": target["login"], "role": role},
            actor_label=label,
        )
    return ids


async def bootstrap_admin(conn: asyncpg.Connection, code: str, operator: Operator, staff_id: int) -> int:
    """Make a new account (created by `operator`) an admin at once: only while the municipality has fewer
    than two enabled admins, who would otherwise have nobody to confirm them. The database refuses
    anything else (staff_role_grants_rules)."""
    admins = await conn.fetchval(ENABLED_ADMINS, code)
    if admins >= 2:
        raise Conflict(
            f"この団体には有効な管理者が既に{admins}人います。管理者の追加は、管理者がコンソールで"
            "申請し、別の管理者が確認してください。"
        )
    target = await _target(conn, code, staff_id)
    grant_id = await conn.fetchval(BOOTSTRAP, code, staff_id, operator.name)
    await conn.execute(ADD_ROLE, code, staff_id, "admin", list(ROLES))
    await audit.append(
        conn,
        code,
        None,
        "grant.bootstrap",
        "staff_role_grant",
        grant_id,
        {"staff_id": staff_id, "login": target["login"], "role": "admin", "admins_before": admins},
        actor_label=operator.label,
    )
    return grant_id


async def _lock_pending(conn: asyncpg.Connection, code: str, grant_id: int) -> asyncpg.Record:
    # The row lock serialises decisions on one grant: two admins confirming and refusing at once see each
    # other's outcome instead of both proceeding.
    grant = await conn.fetchrow(LOCK_GRANT, code, grant_id)
    if grant is None:
        raise NotFound()
    if grant["status"] != "pending":
        raise Conflict("この権限付与の申請は既に確認・却下・取下げされています。")
    return grant


async def confirm(conn: asyncpg.Connection, code: str, admin: Staff, grant_id: int) -> str:
    """A second admin confirms a pending grant; the role is effective from the grantee's next request.
    Returns the role."""
    admin.require("admin")
    grant = await _lock_pending(conn, code, grant_id)
    if grant["requested_by"] == admin.staff_id:
        raise Forbidden("自分が申請した権限付与は確認できません。別の管理者が確認してください。")
    if grant["staff_id"] == admin.staff_id:
        raise Forbidden("自分自身への権限付与は確認できません。別の管理者が確認してください。")
    if not await conn.fetchval(
        INDEPENDENT, code, grant["requested_by"], grant["requested_by_operator"], admin.staff_id, None
    ):
        raise Forbidden(
            "この申請は確認できません: 申請者とあなたのアカウントは、同じ人が登録用リンクを発行して"
            "います（同一人物が両方を操作できた可能性があります）。申請者と無関係な別の管理者が"
            "確認してください。"
        )
    try:
        await conn.execute(DECIDE, code, grant_id, "confirmed", admin.staff_id, None)
        await conn.execute(ADD_ROLE, code, grant["staff_id"], grant["role"], list(ROLES))
    except asyncpg.CheckViolationError as exc:
        # The checks above ask the same questions first; this is the database saying no to a path they missed.
        if exc.constraint_name not in (
            "staff_role_grants_four_eyes",
            "staff_role_grants_not_own",
            "staff_role_grants_independent",
            "staff_role_grants_confirmer_admin",
            "staff_users_roles_granted",
        ):
            raise
        raise Forbidden(
            "この権限付与は確認できません（申請者・対象者以外の、独立した管理者が確認してください）。"
        ) from None
    await audit.append(
        conn,
        code,
        admin,
        "grant.confirm",
        "staff_role_grant",
        grant_id,
        {
            "staff_id": grant["staff_id"],
            "login": grant["login"],
            "role": grant["role"],
            "requested_by": _requester(grant),
        },
    )
    return grant["role"]


async def refuse(conn: asyncpg.Connection, code: str, admin: Staff, grant_id: int) -> str:
    """Refuse a pending grant (another admin), or withdraw one's own request. Returns the new status."""
    admin.require("admin")
    grant = await _lock_pending(conn, code, grant_id)
    status = "cancelled" if grant["requested_by"] == admin.staff_id else "refused"
    await conn.execute(DECIDE, code, grant_id, status, admin.staff_id, None)
    await audit.append(
        conn,
        code,
        admin,
        "grant.cancel" if status == "cancelled" else "grant.refuse",
        "staff_role_grant",
        grant_id,
        {
            "staff_id": grant["staff_id"],
            "login": grant["login"],
            "role": grant["role"],
            "requested_by": _requester(grant),
        },
    )
    return status


def _requester(grant: asyncpg.Record) -> str:
    if grant["requested_by_operator"] is not None:
        return Operator(grant["requested_by_operator"]).label
    return f"staff:{grant['requested_by']}"


async def change_roles(
    conn: asyncpg.Connection,
    code: str,
    admin: Staff,
    staff_id: int,
    wanted: list[str],
) -> tuple[tuple[str, ...], list[int]]:
    """The admin's roles form: roles left out are removed at once (LastAdmin still applies), roles added
    become pending grants. Returns (roles removed, new grant ids); the caller revokes sessions on removal."""
    admin.require("admin")
    wanted = check_roles(wanted)
    target = await _target(conn, code, staff_id)
    current = tuple(target["roles"])
    added = [r for r in wanted if r not in current]
    # Asked for first: an admin who takes away their own admin role is no longer one who may ask.
    ids = await request(conn, code, admin, staff_id, added) if added else []
    removed = tuple(r for r in current if r not in wanted)
    if removed:
        await set_roles(conn, code, staff_id, [r for r in current if r in wanted])
        await audit.append(
            conn,
            code,
            admin,
            "staff.roles",
            "staff",
            staff_id,
            {"from": list(current), "to": [r for r in current if r in wanted]},
        )
    return removed, ids


async def pending(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    return await conn.fetch(PENDING, code)


async def pending_roles(conn: asyncpg.Connection, code: str, staff_id: int) -> list[str]:
    rows = {r["role"] for r in await conn.fetch(PENDING_ROLES, code, staff_id)}
    return [r for r in ROLES if r in rows]

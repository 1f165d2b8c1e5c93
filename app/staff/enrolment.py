"""One-time enrolment links: the only way an account gets its password and TOTP secret (by its owner).

Creating an account, or resetting its password or TOTP, issues an enrolment: a random token (only its
SHA-256 is stored) valid for 72 hours and usable once, opened at /staff/enroll/<municipality>/<token>.
Issuing one disables the account's current password, TOTP secret and sessions, and supersedes any earlier
unused link. The page shows the holder the TOTP secret (approvers and admins, or anyone about to become
one) and takes their password and a current code from the authenticator app; only when both are right are
they stored. The admin or operator who issued the link saw it, never the password or the secret; they are
recorded as the issuer, which app/staff/grants.py counts as someone who may be acting as the account.

Every function runs inside the caller's tenant_transaction and appends its audit entries there; a use of
an expired or already used link is audited too, so `open_link` and `complete` report it in their result
instead of raising (the caller's transaction must commit the entry).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass, field

import asyncpg
import pyotp

from app import audit
from app.crypto import DecryptionError, FieldCipher
from app.db import fetch_always
from app.staff import grants, sessions

# _totp_step: the sign-in's own check of a code (±1 step), so that enrolment accepts exactly what sign-in will.
from app.staff.accounts import TOTP_ROLES, Staff, _totp_step, hash_password, totp_uri, unlock
from app.staff.actors import Actor, Operator, audit_actor, columns
from app.staff.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger("kyufu.staff")

LIFETIME_H = 72
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
LOGIN = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")
MAX_PASSWORD_CHARS = 256

CREATE_ACCOUNT = """
INSERT INTO staff_users (municipality_code, login, display_name, roles, password_hash, created_by, created_by_operator)
VALUES ($1, $2, $3, '{}', $4, $5, $6)
ON CONFLICT (municipality_code, login) DO NOTHING
RETURNING staff_id
"""
TARGET = (
    "SELECT staff_id, login, disabled_at FROM staff_users WHERE municipality_code = $1 AND staff_id = $2 FOR UPDATE"
)
SUPERSEDE = """
UPDATE staff_enrolments SET superseded_at = now()
WHERE municipality_code = $1 AND staff_id = $2 AND completed_at IS NULL AND superseded_at IS NULL
"""
# The old credentials stop working the moment a new enrolment is issued (a reset must not leave them usable).
DISABLE_CREDENTIALS = """
UPDATE staff_users SET password_hash = $3, totp_secret = NULL, totp_last_step = NULL
WHERE municipality_code = $1 AND staff_id = $2
"""
INSERT_ENROLMENT = f"""
INSERT INTO staff_enrolments (municipality_code, staff_id, token_sha256, totp_secret, issued_by, issued_by_operator,
                              bootstrap, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(hours => {LIFETIME_H}))
RETURNING enrolment_id, expires_at
"""
BY_TOKEN = """
SELECT e.enrolment_id, e.staff_id, e.token_sha256, e.totp_secret, e.expires_at, e.completed_at, e.superseded_at,
       e.expires_at <= now() AS expired, u.municipality_code, u.login, u.display_name, u.roles, u.disabled_at
FROM staff_enrolments e JOIN staff_users u ON u.municipality_code = e.municipality_code AND u.staff_id = e.staff_id
WHERE e.municipality_code = $1 AND e.token_sha256 = $2
"""
SET_CREDENTIALS = """
UPDATE staff_users SET password_hash = $3, totp_secret = $4, totp_last_step = $5
WHERE municipality_code = $1 AND staff_id = $2
"""
COMPLETE = "UPDATE staff_enrolments SET completed_at = now() WHERE municipality_code = $1 AND enrolment_id = $2"
# Each account's newest enrolment, for the admins' staff list.
LATEST = """
SELECT DISTINCT ON (e.staff_id) e.staff_id, e.issued_by, e.issued_by_operator, i.login AS issued_by_login,
       e.bootstrap, e.issued_at, e.expires_at, e.completed_at, e.expires_at <= now() AS expired
FROM staff_enrolments e
LEFT JOIN staff_users i ON i.municipality_code = e.municipality_code AND i.staff_id = e.issued_by
WHERE e.municipality_code = $1
ORDER BY e.staff_id, e.enrolment_id DESC
"""


@functools.cache
def unusable_hash() -> str:
    """A real argon2id hash of a random password nobody knows: what an account holds until its owner
    enrols. Signing in with it fails like any wrong password, and takes as long."""
    return hash_password(secrets.token_urlsafe(32))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _secret_args(token_sha256: str) -> tuple[str, str, str]:
    return ("staff_enrolments", "totp_secret", token_sha256)


def link_path(code: str, token: str) -> str:
    return f"/staff/enroll/{code}/{token}"


@dataclass(frozen=True)
class Issued:
    """A new enrolment: `token` is shown once, to whoever issued it, to hand to the account's owner."""

    enrolment_id: int
    staff_id: int
    login: str
    token: str
    path: str
    expires_at: dt.datetime


def _require_issuer(actor: Actor) -> None:
    if isinstance(actor, Staff):
        actor.require("admin")


def _check_account_fields(login: str, display_name: str) -> None:
    if not LOGIN.fullmatch(login):
        raise InvalidInput("ログインID（login）は半角英小文字・数字・._- の3〜64文字で入力してください。")
    if not display_name or len(display_name) > 100:
        raise InvalidInput("氏名（display_name）を100文字以内で入力してください。")


async def create_account(
    conn: asyncpg.Connection,
    cipher: FieldCipher,
    code: str,
    actor: Actor,
    login: str,
    display_name: str,
    roles: list[str],
    *,
    bootstrap: bool = False,
) -> Issued:
    """Create an account with no role and no usable credentials, ask for `roles` (pending until another
    admin confirms) and issue its first enrolment.

    `bootstrap` (an operator only): make it an admin at once, for a municipality with fewer than two
    enabled admins (grants.bootstrap_admin), with an enrolment marked as the bootstrap's.
    """
    from app.staff.accounts import check_roles

    _require_issuer(actor)
    roles = check_roles(roles)
    _check_account_fields(login, display_name)
    if bootstrap and not (isinstance(actor, Operator) and roles == ["admin"]):
        raise InvalidInput("管理者の初期登録（bootstrap）は、運用者が管理者の権限だけで行います。")
    by_staff, by_operator = columns(actor)
    staff_id = await conn.fetchval(CREATE_ACCOUNT, code, login, display_name, unusable_hash(), by_staff, by_operator)
    if staff_id is None:
        raise InvalidInput("そのログインID（login）は既に使われています。")
    who, label = audit_actor(actor)
    await audit.append(
        conn,
        code,
        who,
        "staff.create",
        "staff",
        staff_id,
        {"login": login, "roles_requested": roles, "bootstrap": bootstrap},
        actor_label=label,
    )
    if bootstrap:
        assert isinstance(actor, Operator)
        await grants.bootstrap_admin(conn, code, actor, staff_id)
    else:
        await grants.request(conn, code, actor, staff_id, roles)
    return await issue(conn, cipher, code, actor, staff_id, bootstrap=bootstrap)


async def issue(
    conn: asyncpg.Connection,
    cipher: FieldCipher,
    code: str,
    actor: Actor,
    staff_id: int,
    *,
    bootstrap: bool = False,
) -> Issued:
    """Issue a new enrolment for an account (its first, or a reset of its password and TOTP): the current
    credentials and sessions stop working now, an earlier unused link is superseded."""
    _require_issuer(actor)
    target = await conn.fetchrow(TARGET, code, staff_id)
    if target is None:
        raise NotFound()
    if target["disabled_at"] is not None:
        raise Conflict("無効にされたアカウントには登録用リンクを発行できません。先に有効化してください。")
    superseded = await conn.execute(SUPERSEDE, code, staff_id)
    await conn.execute(DISABLE_CREDENTIALS, code, staff_id, unusable_hash())
    revoked = await sessions.revoke_all(conn, code, staff_id)
    token = secrets.token_urlsafe(32)
    digest = _digest(token)
    secret = cipher.encrypt(*_secret_args(digest), pyotp.random_base32())
    by_staff, by_operator = columns(actor)
    row = await fetch_always(conn, INSERT_ENROLMENT, code, staff_id, digest, secret, by_staff, by_operator, bootstrap)
    who, label = audit_actor(actor)
    await audit.append(
        conn,
        code,
        who,
        "enrolment.issue",
        "staff_enrolment",
        row["enrolment_id"],
        {
            "staff_id": staff_id,
            "login": target["login"],
            "expires_at": row["expires_at"].isoformat(),
            "superseded": superseded != "UPDATE 0",
            "sessions_revoked": revoked,
            "bootstrap": bootstrap,
        },
        actor_label=label,
    )
    return Issued(row["enrolment_id"], staff_id, target["login"], token, link_path(code, token), row["expires_at"])


@dataclass
class Link:
    """What an enrolment link leads to. `state`: ok, unknown, used (completed or superseded), expired or
    disabled; only an ok link shows anything about the account."""

    state: str
    login: str = ""
    display_name: str = ""
    roles: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    needs_totp: bool = False
    totp_secret: str = ""
    totp_uri: str = ""
    expires_at: dt.datetime | None = None
    errors: dict[str, str] = field(default_factory=dict)
    completed: bool = False


async def _load(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, token: str, *, lock: bool
) -> tuple[Link, asyncpg.Record | None]:
    if not TOKEN.fullmatch(token):
        return Link("unknown"), None
    row = await conn.fetchrow(BY_TOKEN + (" FOR UPDATE OF e" if lock else ""), code, _digest(token))
    if row is None:
        return Link("unknown"), None
    if row["completed_at"] is not None or row["superseded_at"] is not None:
        state, action = "used", "enrolment.reuse_attempt"
    elif row["expired"]:
        state, action = "expired", "enrolment.expired_attempt"
    elif row["disabled_at"] is not None:
        state, action = "disabled", "enrolment.disabled_attempt"
    else:
        pending = tuple(await grants.pending_roles(conn, code, row["staff_id"]))
        try:
            secret = cipher.decrypt_str(*_secret_args(row["token_sha256"]), row["totp_secret"])
        except DecryptionError:  # a wrong key or a damaged row: the link cannot be used; say so, no 500
            log.error("enrolment TOTP secret did not decrypt (DecryptionError)")
            return Link("unreadable"), None
        roles = tuple(row["roles"])
        return Link(
            "ok",
            row["login"],
            row["display_name"],
            roles,
            pending,
            needs_totp=bool(TOTP_ROLES & set(roles + pending)),
            totp_secret=secret,
            totp_uri=totp_uri(secret, code, row["login"]),
            expires_at=row["expires_at"],
        ), row
    # Someone holds a real link that no longer works: the account's admins should know.
    await audit.append(
        conn,
        code,
        None,
        action,
        "staff_enrolment",
        row["enrolment_id"],
        {"staff_id": row["staff_id"], "login": row["login"]},
        actor_label="?",
    )
    return Link(state), None


async def open_link(conn: asyncpg.Connection, cipher: FieldCipher, code: str, token: str) -> Link:
    """The enrolment page's content for `token` (an expired or used link is audited)."""
    link, _row = await _load(conn, cipher, code, token, lock=False)
    return link


async def complete(
    conn: asyncpg.Connection,
    cipher: FieldCipher,
    code: str,
    token: str,
    password: str,
    password_confirm: str,
    totp_code: str,
    *,
    now: float | None = None,
) -> Link:
    """The owner sets their password (and TOTP, confirmed by a current code): the link is used up and the
    account can sign in with the roles confirmed for it. Wrong input comes back in `errors` (nothing
    written, the link still usable)."""
    # The row lock makes the link single-use under concurrency: a second submit waits, then finds it used.
    link, row = await _load(conn, cipher, code, token, lock=True)
    if row is None:
        return link
    errors = {}
    if len(password) < 12:
        errors["password"] = "パスワード（password）は12文字以上で入力してください。"
    elif len(password) > MAX_PASSWORD_CHARS:
        errors["password"] = f"パスワード（password）は{MAX_PASSWORD_CHARS}文字以内で入力してください。"
    elif password.strip().lower() == link.login:
        errors["password"] = "パスワード（password）にログインIDは使えません。"
    elif password != password_confirm:
        errors["password_confirm"] = "確認用パスワード（password_confirm）がパスワードと一致しません。"
    step = None
    if link.needs_totp:
        step = _totp_step(link.totp_secret, totp_code.replace(" ", ""), None, time.time() if now is None else now)
        if step is None:
            errors["totp"] = (
                "確認コード（totp）が正しくありません。認証アプリに秘密鍵を登録し、表示されている"
                "6桁の数字を入力してください。"
            )
    if errors:
        link.errors = errors
        return link
    staff_id = row["staff_id"]
    password_hash = await asyncio.to_thread(hash_password, password)  # argon2: off the event loop
    secret = cipher.encrypt("staff_users", "totp_secret", staff_id, link.totp_secret) if link.needs_totp else None
    await conn.execute(SET_CREDENTIALS, code, staff_id, password_hash, secret, step)
    await conn.execute(COMPLETE, code, row["enrolment_id"])
    await unlock(conn, code, staff_id)  # waits from failed sign-ins before the reset end with it
    owner = Staff(staff_id, code, row["login"], row["display_name"], tuple(row["roles"]))
    await audit.append(
        conn,
        code,
        owner,
        "enrolment.complete",
        "staff_enrolment",
        row["enrolment_id"],
        {"staff_id": staff_id, "login": row["login"], "totp": link.needs_totp},
    )
    link.completed = True
    link.totp_secret = link.totp_uri = ""
    return link


async def latest(conn: asyncpg.Connection, code: str) -> dict[int, asyncpg.Record]:
    """Each account's newest enrolment (none: created before enrolments existed)."""
    return {r["staff_id"]: r for r in await conn.fetch(LATEST, code)}

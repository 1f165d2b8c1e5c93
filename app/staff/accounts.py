"""Staff accounts: argon2id passwords, TOTP for approvers and admins, login throttling and lockout.

Every function takes a connection inside the caller's tenant_transaction(conn, code): a login of one
municipality cannot even be looked up from another's scope.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass

import asyncpg
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.crypto import FieldCipher
from app.staff import audit
from app.staff.errors import Forbidden, InvalidInput, LoginFailed

ROLES = ("reviewer", "drafter", "approver", "admin")
ROLE_LABELS = {"reviewer": "審査", "drafter": "起案", "approver": "承認", "admin": "管理者"}
# Roles whose login needs a second factor: they move money or change who can.
TOTP_ROLES = frozenset({"approver", "admin"})
MAX_FAILED_LOGINS = 5
LOCKOUT_SECONDS = 15 * 60
TOTP_STEP_S = 30

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the login does not exist, so a wrong login costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("kyufu-no-such-user-password")

INSERT_STAFF = """
INSERT INTO staff_users (municipality_code, login, display_name, roles, password_hash)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (municipality_code, login) DO NOTHING
RETURNING staff_id
"""
SET_TOTP = "UPDATE staff_users SET totp_secret = $3, totp_last_step = NULL WHERE municipality_code = $1 AND staff_id = $2"
STAFF_COLUMNS = "staff_id, municipality_code, login, display_name, roles, disabled_at"
STAFF_BY_LOGIN = f"""
SELECT {STAFF_COLUMNS}, password_hash, totp_secret, totp_last_step, failed_logins, locked_until,
       locked_until > now() AS locked
FROM staff_users WHERE municipality_code = $1 AND login = $2
FOR UPDATE
"""
STAFF_BY_ID = f"SELECT {STAFF_COLUMNS}, totp_secret IS NOT NULL AS has_totp FROM staff_users WHERE municipality_code = $1 AND staff_id = $2"
LIST_STAFF = f"""
SELECT {STAFF_COLUMNS}, totp_secret IS NOT NULL AS has_totp, locked_until > now() AS locked, created_at
FROM staff_users WHERE municipality_code = $1 ORDER BY login
"""
LOGIN_FAILED = f"""
UPDATE staff_users
SET failed_logins = CASE WHEN failed_logins + 1 >= {MAX_FAILED_LOGINS} THEN 0 ELSE failed_logins + 1 END,
    locked_until = CASE WHEN failed_logins + 1 >= {MAX_FAILED_LOGINS}
                        THEN now() + make_interval(secs => {LOCKOUT_SECONDS}) ELSE locked_until END
WHERE municipality_code = $1 AND staff_id = $2
RETURNING locked_until > now() AS locked
"""
LOGIN_OK = """
UPDATE staff_users SET failed_logins = 0, locked_until = NULL, totp_last_step = coalesce($3, totp_last_step)
WHERE municipality_code = $1 AND staff_id = $2
"""
SET_ROLES = """
UPDATE staff_users u SET roles = $3 FROM (SELECT roles FROM staff_users WHERE municipality_code = $1 AND staff_id = $2) old
WHERE u.municipality_code = $1 AND u.staff_id = $2 RETURNING old.roles
"""
# The enabled admins, locked: two admins removing each other's (or their own) admin role at the same time
# would otherwise each still see the other and leave the municipality with none. The second waits here,
# then re-reads the rows and no longer counts the one the first demoted.
LOCK_ADMINS = """
SELECT staff_id FROM staff_users
WHERE municipality_code = $1 AND 'admin' = ANY (roles) AND disabled_at IS NULL
ORDER BY staff_id FOR UPDATE
"""
SET_DISABLED = """
UPDATE staff_users SET disabled_at = CASE WHEN $3 THEN coalesce(disabled_at, now()) END
WHERE municipality_code = $1 AND staff_id = $2 RETURNING staff_id
"""
UNLOCK = "UPDATE staff_users SET failed_logins = 0, locked_until = NULL WHERE municipality_code = $1 AND staff_id = $2"


@dataclass(frozen=True)
class Staff:
    """The signed-in staff member. Everything they do is scoped to `municipality_code`."""

    staff_id: int
    municipality_code: str
    login: str
    display_name: str
    roles: tuple[str, ...]

    def has(self, role: str) -> bool:
        return role in self.roles

    def require(self, *roles: str) -> None:
        """Refuse unless the staff member holds at least one of `roles`."""
        if not any(r in self.roles for r in roles):
            labels = "・".join(ROLE_LABELS[r] for r in roles)
            raise Forbidden(f"この操作には{labels}の権限が必要です。")

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> "Staff":
        return cls(row["staff_id"], row["municipality_code"], row["login"], row["display_name"], tuple(row["roles"]))


def hash_password(password: str) -> str:
    if len(password) < 12:
        raise ValueError("パスワードは12文字以上にしてください。")
    return _hasher.hash(password)


def check_roles(roles: list[str]) -> list[str]:
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise InvalidInput(f"権限（roles）は {', '.join(ROLES)} から1つ以上選んでください。")
    return [r for r in ROLES if r in roles]


async def create_staff(
    conn: asyncpg.Connection, municipality_code: str, login: str, display_name: str, roles: list[str], password: str
) -> int | None:
    """Create a staff account (inside a tenant transaction); None if the login already exists.

    Approvers and admins cannot sign in until `enroll_totp` has given them a second factor.
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}; choose from {ROLES}")
    return await conn.fetchval(INSERT_STAFF, municipality_code, login, display_name, roles, hash_password(password))


def _totp_cipher_args(staff_id: int) -> tuple[str, str, int]:
    return ("staff_users", "totp_secret", staff_id)


async def enroll_totp(conn: asyncpg.Connection, cipher: FieldCipher, code: str, staff_id: int) -> str:
    """Give the account a new TOTP secret (encrypted at rest) and return it once, for the authenticator app."""
    secret = pyotp.random_base32()
    await conn.execute(SET_TOTP, code, staff_id, cipher.encrypt(*_totp_cipher_args(staff_id), secret))
    return secret


def totp_uri(secret: str, code: str, login: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=f"{login}@{code}", issuer_name="kyufu")


async def load_totp_secret(conn: asyncpg.Connection, cipher: FieldCipher, code: str, staff_id: int) -> str | None:
    raw = await conn.fetchval("SELECT totp_secret FROM staff_users WHERE municipality_code = $1 AND staff_id = $2",
                              code, staff_id)
    return None if raw is None else cipher.decrypt_str(*_totp_cipher_args(staff_id), raw)


def _totp_step(secret: str, submitted: str, last_step: int | None, now: float) -> int | None:
    """The time step the code is valid for (±1 step of clock drift), or None. A step at or before the last
    accepted one is refused, so an observed code cannot be replayed."""
    submitted = submitted.strip()
    if not (len(submitted) == 6 and submitted.isascii() and submitted.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // TOTP_STEP_S)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.at(step * TOTP_STEP_S), submitted) and (last_step is None or step > last_step):
            return step
    return None


async def login(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, login_name: str, password: str, totp_code: str = "",
    *, now: float | None = None,
) -> tuple[Staff | None, str]:
    """Check a login inside the caller's tenant transaction and record the outcome (audit, counters).

    Returns (staff, "") on success or (None, reason) on failure, so that the caller's transaction commits
    the failure counter and the audit entry; the reason is for the audit trail only — the person at the
    screen always gets the same message. Five failures in a row lock the account for 15 minutes.
    """
    now = time.time() if now is None else now
    row = await conn.fetchrow(STAFF_BY_LOGIN, code, login_name)
    if row is None:
        await _verify_password_off_loop(_DUMMY_HASH, password)
        await audit.append(conn, code, None, "login.failed", "staff", "", {"reason": "unknown_login"},
                           actor_label=login_name[:64])
        return None, "unknown_login"
    staff = Staff.from_row(row)
    password_ok = await _verify_password_off_loop(row["password_hash"], password)
    reason = ""
    step = None
    if row["locked"]:
        reason = "locked"
    elif row["disabled_at"] is not None:
        reason = "disabled"
    elif not password_ok:
        reason = "bad_password"
    elif TOTP_ROLES & set(staff.roles):
        if row["totp_secret"] is None:
            reason = "totp_not_enrolled"
        else:
            secret = cipher.decrypt_str(*_totp_cipher_args(staff.staff_id), row["totp_secret"])
            step = _totp_step(secret, totp_code, row["totp_last_step"], now)
            if step is None:
                reason = "bad_totp"
    if reason:
        if reason in ("bad_password", "bad_totp"):
            locked = await conn.fetchval(LOGIN_FAILED, code, staff.staff_id)
            if locked:
                reason += "+locked_now"
        await audit.append(conn, code, staff, "login.failed", "staff", staff.staff_id, {"reason": reason})
        return None, reason
    await conn.execute(LOGIN_OK, code, staff.staff_id, step)
    await audit.append(conn, code, staff, "login", "staff", staff.staff_id)
    return staff, ""


async def _verify_password_off_loop(password_hash: str, password: str) -> bool:
    """argon2 takes ~0.1-0.3 s of CPU by design; on the event loop it would stall every other request of
    the process for that long (measured by loadtests/surge: p50 of requests started meanwhile 40-386 ms
    against 5-11 ms). argon2-cffi releases the GIL, so a thread lets the loop go on."""
    return await asyncio.to_thread(_verify_password, password_hash, password)


def _verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        # A mismatch, or a placeholder hash (sample rows): both mean "not this password".
        return False


async def get_staff(conn: asyncpg.Connection, code: str, staff_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(STAFF_BY_ID, code, staff_id)


async def list_staff(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_STAFF, code)


async def set_roles(
    conn: asyncpg.Connection, code: str, staff_id: int, roles: list[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Replace a staff member's roles; returns (old roles, new roles). Refused (LastAdmin) if it would
    leave the municipality without an enabled admin. The caller revokes their sessions."""
    from app.staff.errors import LastAdmin, NotFound

    new = check_roles(roles)
    admins = [r["staff_id"] for r in await conn.fetch(LOCK_ADMINS, code)]
    if "admin" not in new and admins == [staff_id]:
        raise LastAdmin()
    old = await conn.fetchval(SET_ROLES, code, staff_id, new)
    if old is None:
        raise NotFound()
    return tuple(old), tuple(new)


async def set_disabled(conn: asyncpg.Connection, code: str, staff_id: int, disabled: bool) -> None:
    """Disable (or re-enable) an account; disabling also revokes every session it has."""
    from app.staff.errors import NotFound
    from app.staff.sessions import revoke_all

    if await conn.fetchval(SET_DISABLED, code, staff_id, disabled) is None:
        raise NotFound()
    if disabled:
        await revoke_all(conn, code, staff_id)


async def unlock(conn: asyncpg.Connection, code: str, staff_id: int) -> None:
    await conn.execute(UNLOCK, code, staff_id)


__all__ = ["Forbidden", "Staff", "ROLES", "create_staff", "enroll_totp", "login"]

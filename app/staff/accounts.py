"""Staff accounts: argon2id passwords, TOTP for approvers and admins, and sign-in (whose limits, progressive
delays per path and trusted devices, live in app/staff/signin.py).

Every function takes a connection inside the caller's tenant_transaction(conn, code): a login of one
municipality cannot even be looked up from another's scope.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app import audit
from app.crypto import DecryptionError, FieldCipher
from app.principals import ROLES, Staff
from app.staff import signin
from app.staff.errors import Forbidden, InvalidInput, LastAdmin, NotFound
from app.staff.sessions import revoke_all

log = logging.getLogger("kyufu.staff")

# Roles whose login needs a second factor: they move money or change who can.
TOTP_ROLES = frozenset({"approver", "admin"})
TOTP_STEP_S = 30

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the login does not exist, so a wrong login costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("kyufu-no-such-user-password")

STAFF_COLUMNS = "staff_id, municipality_code, login, display_name, roles, disabled_at"
_LOGIN_SYNTAX = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")
STAFF_ID_BY_LOGIN = "SELECT staff_id FROM staff_users WHERE municipality_code = $1 AND login = $2"
# Locked after the path's lock (signin.open_track), always in that order: concurrent sign-ins to one account
# by different paths still see each other's TOTP step (replay protection).
STAFF_BY_LOGIN = f"""
SELECT {STAFF_COLUMNS}, password_hash, totp_secret, totp_last_step
FROM staff_users WHERE municipality_code = $1 AND login = $2
FOR UPDATE
"""
STAFF_BY_ID = (
    f"SELECT {STAFF_COLUMNS}, totp_secret IS NOT NULL AS has_totp FROM staff_users"
    " WHERE municipality_code = $1 AND staff_id = $2"
)
# `locked`: the login's untrusted path is waiting now (app/staff/signin.py); its trusted devices are not.
# failures_since_signin / last_failed_at: failed attempts on any path since the last sign-in.
LIST_STAFF = f"""
SELECT {STAFF_COLUMNS}, totp_secret IS NOT NULL AS has_totp, created_at, failures_since_signin, last_failed_at,
       d.delayed_until, coalesce(d.delayed_until > now(), false) AS locked
FROM staff_users u
LEFT JOIN LATERAL (SELECT max(f.delayed_until) AS delayed_until FROM staff_signin_failures f
                   WHERE f.municipality_code = u.municipality_code AND f.staff_id = u.staff_id) d ON true
WHERE municipality_code = $1 ORDER BY login
"""
# Every failed or refused attempt at the account, whatever the path: what the owner is told next time.
LOGIN_FAILED = """
UPDATE staff_users SET failures_since_signin = failures_since_signin + 1, last_failed_at = now()
WHERE municipality_code = $1 AND staff_id = $2
"""
# The failures since the previous sign-in become this session's notice (dashboard) and the count restarts.
LOGIN_OK = """
UPDATE staff_users SET totp_last_step = coalesce($3, totp_last_step),
       notice_failures = failures_since_signin, notice_last_failed_at = last_failed_at,
       failures_since_signin = 0
WHERE municipality_code = $1 AND staff_id = $2
"""
SIGNIN_NOTICE = """
SELECT notice_failures, notice_last_failed_at FROM staff_users
WHERE municipality_code = $1 AND staff_id = $2 AND notice_failures > 0
"""
SET_ROLES = """
UPDATE staff_users u SET roles = $3
FROM (SELECT roles FROM staff_users WHERE municipality_code = $1 AND staff_id = $2) old
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


def hash_password(password: str) -> str:
    if len(password) < 12:
        raise ValueError("パスワードは12文字以上にしてください。")
    return _hasher.hash(password)


def check_roles(roles: list[str], *, allow_empty: bool = False) -> list[str]:
    unknown = set(roles) - set(ROLES)
    if unknown or not (roles or allow_empty):
        raise InvalidInput(f"権限（roles）は {', '.join(ROLES)} から1つ以上選んでください。")
    return [r for r in ROLES if r in roles]


# Accounts are created, and their password and TOTP set, only through app/staff/enrolment.py (by their
# owner); roles are given only through app/staff/grants.py (by two admins).


def _totp_cipher_args(staff_id: int) -> tuple[str, str, int]:
    return ("staff_users", "totp_secret", staff_id)


def totp_uri(secret: str, code: str, login: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=f"{login}@{code}", issuer_name="kyufu")


async def load_totp_secret(conn: asyncpg.Connection, cipher: FieldCipher, code: str, staff_id: int) -> str | None:
    raw = await conn.fetchval(
        "SELECT totp_secret FROM staff_users WHERE municipality_code = $1 AND staff_id = $2", code, staff_id
    )
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


@dataclass(frozen=True)
class SignIn:
    """The outcome of one sign-in attempt. `reason` is for the audit trail only; the screen tells the
    person no more than `wait_s` (the same for a login that does not exist)."""

    staff: Staff | None
    reason: str = ""
    refused: bool = False  # not checked at all: the path (or the address) had to wait
    wait_s: int = 0  # seconds until this path may try again (0: now)
    trusted: bool = False  # came from a trusted device of the account
    device_id: str | None = None  # on success: the device id for the browser's device cookie


async def login(
    conn: asyncpg.Connection,
    cipher: FieldCipher,
    code: str,
    login_name: str,
    password: str,
    totp_code: str = "",
    *,
    devices: Mapping[int, str] | None = None,
    address_wait_s: int = 0,
    now: float | None = None,
) -> SignIn:
    """Check a login inside the caller's tenant transaction and record the outcome (audit, counters), so
    that the caller's transaction commits them with the failure.

    `devices`: {staff_id: device id} of the browser's authentic device cookie entries for `code`; an entry
    for this account that the server still trusts makes the attempt come by that device, else by the
    login's untrusted path (app/staff/signin.py). A path that is waiting refuses the attempt without
    checking the password; so does the untrusted path while the address is throttled (`address_wait_s`,
    app/staff/throttle.py), so that only known browsers get past an address limit.
    """
    now = time.time() if now is None else now
    # A login no account can have (the CHECK of staff_users.login; a NUL would not even reach PostgreSQL)
    # is not looked up, but otherwise goes the same way as any unknown login.
    possible = _LOGIN_SYNTAX.fullmatch(login_name) is not None
    staff_id = await conn.fetchval(STAFF_ID_BY_LOGIN, code, login_name) if possible else None
    device_id = (devices or {}).get(staff_id) if staff_id is not None else None
    track = await signin.open_track(conn, cipher.key, code, login_name, staff_id, device_id)
    path = "device" if track.trusted else "untrusted"
    wait_s = track.wait_s or (0 if track.trusted else address_wait_s)
    if wait_s:
        reason = "delayed" if track.wait_s else "address_throttled"
        await _audit_failure(conn, code, login_name, staff_id, track, {"reason": reason, "path": path})
        return SignIn(None, reason, refused=True, wait_s=wait_s, trusted=track.trusted)
    row = await conn.fetchrow(STAFF_BY_LOGIN, code, login_name) if possible else None
    if row is None:
        await _verify_password_off_loop(_DUMMY_HASH, password)
        reason = "unknown_login"
    else:
        reason, step = await _check(cipher, row, password, totp_code, now)
    if reason:
        failures, delay_s = await signin.record_failure(conn, code, track, row["staff_id"] if row else None)
        details = {"reason": reason, "path": path, "failures": failures}
        if delay_s:
            details["delay_s"] = delay_s  # a wait starts: the audit trail says so
        await _audit_failure(conn, code, login_name, row["staff_id"] if row else None, track, details)
        return SignIn(None, reason, wait_s=delay_s, trusted=track.trusted)
    assert row is not None, "an unknown login has a reason and returned above"
    staff = Staff.from_row(row)
    device_id = await signin.record_success(conn, code, track, staff.staff_id)
    await conn.execute(LOGIN_OK, code, staff.staff_id, step)
    await audit.append(conn, code, staff, "login", "staff", staff.staff_id, {"path": path})
    return SignIn(staff, trusted=track.trusted, device_id=device_id)


async def _check(
    cipher: FieldCipher, row: asyncpg.Record, password: str, totp_code: str, now: float
) -> tuple[str, int | None]:
    """(failure reason or "", the TOTP step accepted). The password is checked even for a disabled account,
    so that every checked attempt costs the same argon2 time."""
    staff = Staff.from_row(row)
    password_ok = await _verify_password_off_loop(row["password_hash"], password)
    if row["disabled_at"] is not None:
        return "disabled", None
    if not password_ok:
        return "bad_password", None
    if TOTP_ROLES & set(staff.roles):
        if row["totp_secret"] is None:
            return "totp_not_enrolled", None
        try:
            secret = cipher.decrypt_str(*_totp_cipher_args(staff.staff_id), row["totp_secret"])
        except DecryptionError:
            # A wrong key or a damaged row is not the person's fault, and no reason to answer 500: the
            # sign-in fails, the audit entry says why, and an admin re-issues the account's link.
            log.error("TOTP secret of a staff account did not decrypt (DecryptionError)")
            return "totp_unreadable", None
        step = _totp_step(secret, totp_code, row["totp_last_step"], now)
        if step is None:
            return "bad_totp", None
        return "", step
    return "", None


async def _audit_failure(
    conn: asyncpg.Connection, code: str, login_name: str, staff_id: int | None, track: signin.Track, details: dict
) -> None:
    """One audit entry per failed or refused attempt (no actor: whoever typed it is unknown), counted for
    the owner's next sign-in notice. A login that does not exist is named by a prefix of its HMAC, not by
    what was typed: that may be a password typed into the wrong field."""
    if staff_id is None:
        await audit.append(
            conn, code, None, "login.failed", "staff", "", details | {"login_key": track.key[:16]}, actor_label="?"
        )
        return
    await conn.execute(LOGIN_FAILED, code, staff_id)
    await audit.append(conn, code, None, "login.failed", "staff", staff_id, details, actor_label=login_name)


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
    leave the municipality without an enabled admin. The caller revokes their sessions. Only
    app/staff/grants.py calls it, to take roles away: a role added here would need a confirmed grant
    (trigger staff_users_roles_granted)."""

    new = check_roles(roles, allow_empty=True)
    admins = [r["staff_id"] for r in await conn.fetch(LOCK_ADMINS, code)]
    if "admin" not in new and admins == [staff_id]:
        raise LastAdmin()
    old = await conn.fetchval(SET_ROLES, code, staff_id, new)
    if old is None:
        raise NotFound()
    return tuple(old), tuple(new)


async def set_disabled(conn: asyncpg.Connection, code: str, staff_id: int, disabled: bool) -> None:
    """Disable (or re-enable) an account; disabling also revokes every session it has."""
    if await conn.fetchval(SET_DISABLED, code, staff_id, disabled) is None:
        raise NotFound()
    if disabled:
        await revoke_all(conn, code, staff_id)


async def unlock(conn: asyncpg.Connection, code: str, staff_id: int) -> None:
    """End every wait on sign-in to the account (its untrusted path and its devices); counts restart."""
    await signin.clear_delays(conn, code, staff_id)


async def signin_notice(conn: asyncpg.Connection, code: str, staff_id: int) -> asyncpg.Record | None:
    """(notice_failures, notice_last_failed_at): failed attempts at the account between the previous
    sign-in and the current one, or None if there were none."""
    return await conn.fetchrow(SIGNIN_NOTICE, code, staff_id)


__all__ = ["Forbidden", "Staff", "ROLES", "login"]

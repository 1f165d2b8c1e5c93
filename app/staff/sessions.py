"""Server-side staff sessions: revocable, with an idle timeout and an absolute lifetime.

The cookie is "<municipality code>.<random token>". The code tells the server which municipality's scope
to open; the token is looked up (by its SHA-256) only inside that scope, so a token of A presented with
B's code finds nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import asyncpg

from app.principals import Staff
from app.tenancy.codes import MunicipalityCodeError, validate_code

COOKIE = "kyufu_staff"
ABSOLUTE_LIFETIME_H = 12
DEFAULT_IDLE_MINUTES = 30

CREATE = "INSERT INTO staff_sessions (municipality_code, token_sha256, staff_id) VALUES ($1, $2, $3)"
# Touching last_seen_at in the same statement that checks it: a session idle too long is dead even if
# two requests race, and a disabled account's sessions stop at once.
TOUCH = f"""
UPDATE staff_sessions s SET last_seen_at = now()
FROM staff_users u
WHERE s.municipality_code = $1 AND s.token_sha256 = $2 AND s.revoked_at IS NULL
  AND s.last_seen_at > now() - make_interval(mins => $3)
  AND s.created_at > now() - make_interval(hours => {ABSOLUTE_LIFETIME_H})
  AND u.municipality_code = s.municipality_code AND u.staff_id = s.staff_id AND u.disabled_at IS NULL
RETURNING u.staff_id, u.municipality_code, u.login, u.display_name, u.roles
"""
REVOKE = """
UPDATE staff_sessions SET revoked_at = now()
WHERE municipality_code = $1 AND token_sha256 = $2 AND revoked_at IS NULL
"""
REVOKE_ALL = """
UPDATE staff_sessions SET revoked_at = now()
WHERE municipality_code = $1 AND staff_id = $2 AND revoked_at IS NULL
"""
IDLE_MINUTES = "SELECT session_idle_minutes FROM staff_settings WHERE municipality_code = $1"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def split_cookie(value: str | None) -> tuple[str, str] | None:
    """(municipality code, token) from a cookie value, or None if it is not one of ours."""
    if not value or "." not in value:
        return None
    code, token = value.split(".", 1)
    try:
        validate_code(code)
    except MunicipalityCodeError:
        return None
    if not 20 <= len(token) <= 100:
        return None
    return code, token


async def create(conn: asyncpg.Connection, code: str, staff_id: int) -> str:
    """Start a session; returns the cookie value."""
    token = secrets.token_urlsafe(32)
    await conn.execute(CREATE, code, _digest(token), staff_id)
    return f"{code}.{token}"


async def resume(conn: asyncpg.Connection, code: str, token: str) -> Staff | None:
    """The staff member of a live session (and mark it used), or None if revoked, idle or expired."""
    idle = await conn.fetchval(IDLE_MINUTES, code) or DEFAULT_IDLE_MINUTES
    row = await conn.fetchrow(TOUCH, code, _digest(token), idle)
    return None if row is None else Staff.from_row(row)


async def revoke(conn: asyncpg.Connection, code: str, token: str) -> None:
    await conn.execute(REVOKE, code, _digest(token))


async def revoke_all(conn: asyncpg.Connection, code: str, staff_id: int) -> int:
    """End every session of a staff member (an admin's "sign out everywhere", or disabling the account)."""
    status = await conn.execute(REVOKE_ALL, code, staff_id)
    return int(status.split()[-1])


def csrf_token(secret: bytes, cookie_value: str) -> str:
    """The form token of a session: an HMAC of the session cookie, so it needs no storage and dies with
    the session. A cross-site page can make the browser send the cookie, but cannot read this."""
    return hmac.new(secret, b"kyufu-staff-csrf|" + cookie_value.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, cookie_value: str, submitted: object) -> bool:
    """`submitted`: the form's field as read (str or None: read_form refuses file parts)."""
    return (
        isinstance(submitted, str)
        and bool(submitted)
        and hmac.compare_digest(csrf_token(secret, cookie_value), submitted)
    )

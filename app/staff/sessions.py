"""The console's session store: rows of staff_sessions, revocable, with an idle timeout and an absolute
lifetime. The mechanism around it (tokens, cookies, sign-in rotation, CSRF) is the one both sites share,
app/web/sessions.py, which says why the console keeps its sessions here and residents theirs in Redis.

The cookie is "<municipality code>.<token>". The code tells the server which municipality's scope to
open; the token is looked up (by its SHA-256) only inside that scope, so a token of A presented with B's
code finds nothing.
"""

from __future__ import annotations

import hashlib

import asyncpg

from app.principals import Staff
from app.tenancy.codes import MunicipalityCodeError, validate_code

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


def cookie_value(code: str, token: str) -> str:
    return f"{code}.{token}"


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


class PostgresStore:
    """The sessions of one municipality, inside its tenant_transaction: the `Store` of app/web/sessions.py."""

    def __init__(self, conn: asyncpg.Connection, code: str):
        self.conn = conn
        self.code = code

    async def load(self, token: str) -> Staff | None:
        """The staff member of a live session (and mark it used), or None if revoked, idle, expired or the
        account is disabled. Their roles are the account's roles now, not those at sign-in."""
        idle = await self.conn.fetchval(IDLE_MINUTES, self.code) or DEFAULT_IDLE_MINUTES
        row = await self.conn.fetchrow(TOUCH, self.code, _digest(token), idle)
        return None if row is None else Staff.from_row(row)

    async def save(self, token: str, value: Staff) -> None:
        if value.municipality_code != self.code:
            raise ValueError("a staff session is kept in its staff member's municipality")
        await self.conn.execute(CREATE, self.code, _digest(token), value.staff_id)

    async def revoke(self, token: str) -> None:
        await self.conn.execute(REVOKE, self.code, _digest(token))


async def revoke_all(conn: asyncpg.Connection, code: str, staff_id: int) -> int:
    """End every session of a staff member (an admin's "sign out everywhere", or disabling the account)."""
    status = await conn.execute(REVOKE_ALL, code, staff_id)
    return int(status.split()[-1])

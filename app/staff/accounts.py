"""Staff accounts: argon2id password hashes, roles per municipality."""

from __future__ import annotations

import asyncpg
from argon2 import PasswordHasher

ROLES = ("reviewer", "drafter", "approver", "admin")
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters

INSERT_STAFF = """
INSERT INTO staff_users (municipality_code, login, display_name, roles, password_hash)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (municipality_code, login) DO NOTHING
RETURNING staff_id
"""


def hash_password(password: str) -> str:
    if len(password) < 12:
        raise ValueError("パスワードは12文字以上にしてください。")
    return _hasher.hash(password)


async def create_staff(
    conn: asyncpg.Connection, municipality_code: str, login: str, display_name: str, roles: list[str], password: str
) -> int | None:
    """Create a staff account (inside a tenant transaction); None if the login already exists."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}; choose from {ROLES}")
    return await conn.fetchval(INSERT_STAFF, municipality_code, login, display_name, roles, hash_password(password))

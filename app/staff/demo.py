"""Demo logins, one per role, for `kyufu run` (idempotent)."""

from __future__ import annotations

import asyncpg

from app.staff import accounts
from app.tenancy.municipalities import load_field_cipher

DEMO_STAFF = [
    ("reviewer", "審査 太郎", ["reviewer"], "kyufu-demo-reviewer"),
    ("drafter", "起案 花子", ["drafter"], "kyufu-demo-drafter"),
    ("approver", "承認 次郎", ["approver"], "kyufu-demo-approver"),
    ("admin", "デモ管理者", ["admin"], "kyufu-demo-admin"),
]
HAS_TOTP = "SELECT staff_id, totp_secret IS NOT NULL FROM staff_users WHERE municipality_code = $1 AND login = $2"


async def seed_demo_staff(conn: asyncpg.Connection, code: str, master_key: bytes | None = None) -> list[str]:
    """Create the demo logins in `code` (call inside tenant_transaction(conn, code)); printable lines.

    Approver and admin need TOTP: their secret is printed so a person can add it to an authenticator app;
    `kyufu staff totp --municipality CODE --login approver` prints a current code instead (not in production).
    `master_key` wraps the municipality's data key (it encrypts the TOTP secrets); pass
    settings.master_key_bytes. Without it the local settings are loaded here, which only the demo does.
    """
    if master_key is None:
        from app.settings import load_settings

        master_key = load_settings().master_key_bytes
    lines = []
    cipher = await load_field_cipher(conn, master_key, code)
    for login, name, roles, password in DEMO_STAFF:
        await accounts.create_staff(conn, code, login, name, roles, password)
        staff_id, has_totp = await conn.fetchrow(HAS_TOTP, code, login)
        line = f"staff {','.join(roles)}: municipality {code}, login {login!r}, password {password!r}"
        if accounts.TOTP_ROLES & set(roles):
            if not has_totp:
                await accounts.enroll_totp(conn, cipher, code, staff_id)
            secret = await accounts.load_totp_secret(conn, cipher, code, staff_id)
            line += f", TOTP secret {secret} (or: kyufu staff totp --municipality {code} --login {login})"
        lines.append(line)
    return lines

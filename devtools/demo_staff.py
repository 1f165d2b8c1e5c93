"""Demo logins, one per role, for `kyufu run` (idempotent), and `provision`: ready-to-use accounts for
developer tools (the demo, `kyufu demo e2e`, load tests), made through the same enrolment and grant path
as real ones, with each step played by the person it belongs to.

The demo's own separation of duties is explicit: a platform operator named "demo-seed" bootstraps two
admins (`admin` and `admin2`, the one who confirms what `admin` asks for and vice versa); `admin` creates
the reviewer and the drafter, `admin2` the approver, so that the drafter and the approver are independent
(app/staff/grants.py). The seed then plays each person and completes their enrolment with the password
printed below, which is why none of this may run in production.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg
import pyotp

from app.crypto import FieldCipher
from app.staff import accounts, enrolment, grants
from app.staff.actors import Actor, Operator
from app.tenancy.municipalities import load_field_cipher


@dataclass(frozen=True)
class Person:
    login: str
    name: str
    roles: tuple[str, ...]
    password: str


DEMO_OPERATOR = Operator("demo-seed")
DEMO_ADMINS = (
    Person("admin", "デモ管理者", ("admin",), "kyufu-demo-admin"),
    Person("admin2", "デモ管理者（確認役）", ("admin",), "kyufu-demo-admin2"),
)
DEMO_STAFF = [
    Person("reviewer", "審査 太郎", ("reviewer",), "kyufu-demo-reviewer"),
    Person("drafter", "起案 花子", ("drafter",), "kyufu-demo-drafter"),
    Person("approver", "承認 次郎", ("approver",), "kyufu-demo-approver"),
    # Paper forms are keyed twice by two different clerks (devtools/demo_paper.py); reviewer decides mismatches.
    Person("keyer1", "入力 一郎", ("keyer",), "kyufu-demo-keyer1"),
    Person("keyer2", "入力 二美", ("keyer",), "kyufu-demo-keyer2"),
]
STAFF_BY_LOGIN = f"SELECT {accounts.STAFF_COLUMNS} FROM staff_users WHERE municipality_code = $1 AND login = $2"


async def _staff(conn: asyncpg.Connection, code: str, login: str) -> accounts.Staff | None:
    row = await conn.fetchrow(STAFF_BY_LOGIN, code, login)
    return None if row is None else accounts.Staff.from_row(row)


async def enrol_as_owner(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, issued: enrolment.Issued, password: str
) -> str | None:
    """Play the account's owner on their enrolment page; returns the TOTP secret they registered (None if
    their roles need none). The code typed is the previous 30-second step's (accepted for clock drift), so
    that a sign-in right after, in the same step, is not refused as a replay of it."""
    now = time.time()
    link = await enrolment.open_link(conn, cipher, code, issued.token)
    secret = link.totp_secret
    done = await enrolment.complete(
        conn, cipher, code, issued.token, password, password, pyotp.TOTP(secret).at(now - accounts.TOTP_STEP_S), now=now
    )
    if not done.completed:
        raise RuntimeError(f"enrolment of {issued.login} failed: {done.state} {sorted(done.errors)}")
    return secret if done.needs_totp else None


async def bootstrap_ready(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, operator: Operator, person: Person
) -> str | None:
    """A bootstrapped admin (the municipality has fewer than two), enrolled with `person.password`."""
    issued = await enrolment.create_account(
        conn, cipher, code, operator, person.login, person.name, ["admin"], bootstrap=True
    )
    return await enrol_as_owner(conn, cipher, code, issued, person.password)


async def ready(
    conn: asyncpg.Connection,
    cipher: FieldCipher,
    code: str,
    person: Person,
    *,
    creator: Actor,
    confirmer: accounts.Staff,
) -> str | None:
    """An account `creator` creates (asking for its roles), `confirmer` confirms, and its owner enrols."""
    issued = await enrolment.create_account(conn, cipher, code, creator, person.login, person.name, list(person.roles))
    await confirm_pending(conn, code, issued.staff_id, confirmer)
    return await enrol_as_owner(conn, cipher, code, issued, person.password)


async def confirm_pending(conn: asyncpg.Connection, code: str, staff_id: int, confirmer: accounts.Staff) -> None:
    for g in await grants.pending(conn, code):
        if g["staff_id"] == staff_id:
            await grants.confirm(conn, code, confirmer, g["grant_id"])


async def provision(
    conn: asyncpg.Connection,
    cipher: FieldCipher,
    code: str,
    operator: Operator,
    admins: tuple[Person, Person],
    people: list[Person],
) -> dict[str, str | None]:
    """Ready accounts in `code` (inside tenant_transaction): two bootstrapped admins, then `people`, each
    created by one admin and confirmed by the other — accounts with the approver role by the second admin,
    the rest by the first, so that no drafter shares hands with an approver. An admin's other roles are
    asked for by itself and confirmed by the other admin. Logins that exist already are left as they are.
    Returns {login: TOTP secret or None}."""
    secrets_by_login: dict[str, str | None] = {}
    for person in admins:
        if await _staff(conn, code, person.login) is None:
            secrets_by_login[person.login] = await bootstrap_ready(conn, cipher, code, operator, person)
    first, second = [await _staff(conn, code, p.login) for p in admins]
    assert first is not None and second is not None
    for person, me, other in ((admins[0], first, second), (admins[1], second, first)):
        extra = [r for r in person.roles if r not in me.roles]
        if extra:
            await grants.request(conn, code, me, me.staff_id, extra)
            await confirm_pending(conn, code, me.staff_id, other)
    for person in people:
        if await _staff(conn, code, person.login) is not None:
            continue
        creator, confirmer = (second, first) if "approver" in person.roles else (first, second)
        secrets_by_login[person.login] = await ready(conn, cipher, code, person, creator=creator, confirmer=confirmer)
    for login in [p.login for p in (*admins, *people)]:
        if login not in secrets_by_login:
            staff = await _staff(conn, code, login)
            assert staff is not None
            secrets_by_login[login] = await accounts.load_totp_secret(conn, cipher, code, staff.staff_id)
    return secrets_by_login


async def seed_demo_staff(conn: asyncpg.Connection, code: str, master_key: bytes | None = None) -> list[str]:
    """Create the demo logins in `code` (call inside tenant_transaction(conn, code)); printable lines.

    Approver and admins need TOTP: their secret is printed so a person can add it to an authenticator app;
    `kyufu staff totp --municipality CODE --login approver` prints a current code instead (not in production).
    `master_key` wraps the municipality's data key (it encrypts the TOTP secrets); pass
    settings.master_key_bytes. Without it the local settings are loaded here, which only the demo does.
    """
    if master_key is None:
        from app.settings import load_settings

        master_key = load_settings().master_key_bytes
    cipher = await load_field_cipher(conn, master_key, code)
    totp = await provision(conn, cipher, code, DEMO_OPERATOR, DEMO_ADMINS, DEMO_STAFF)
    lines = []
    for person in [*DEMO_STAFF, *DEMO_ADMINS]:
        staff = await _staff(conn, code, person.login)
        assert staff is not None
        roles = ",".join(staff.roles)
        line = f"staff {roles}: municipality {code}, login {person.login!r}, password {person.password!r}"
        if totp[person.login]:
            line += (
                f", TOTP secret {totp[person.login]} (or: kyufu staff totp --municipality {code}"
                f" --login {person.login})"
            )
        lines.append(line)
    lines.append("  (admin and admin2 confirm each other's role requests: every role needs a second admin)")
    return lines

"""A municipality with one staff member per role, a program and applications with encrypted bank details."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import pyotp
import pytest

from app.crypto import FieldCipher
from app.staff.accounts import STAFF_COLUMNS, Staff
from app.staff.actors import Operator
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from devtools.demo_staff import Person, bootstrap_ready, ready
from payouts.payments import ACCOUNT_NUMBER, HOLDER_KANA

PASSWORD = "correct-horse-battery"


@dataclass
class World:
    code: str
    cipher: FieldCipher
    staff: dict[str, Staff] = field(default_factory=dict)
    totp: dict[str, str] = field(default_factory=dict)
    program_id: int = 0
    snapshot_id: int = 0
    applications: list[int] = field(default_factory=list)
    settings: Any = None  # the suite's Settings, for the worker's jobs (tests/jobs.py)

    def totp_now(self, login: str, offset_steps: int = 0) -> str:
        import time

        return pyotp.TOTP(self.totp[login]).at(time.time() + 30 * offset_steps)


FIRST_ADMIN = "admin"
STAFF_BY_LOGIN = f"SELECT {STAFF_COLUMNS} FROM staff_users WHERE municipality_code = $1 AND login = $2"


async def _staff(conn, code: str, login: str) -> Staff | None:
    row = await conn.fetchrow(STAFF_BY_LOGIN, code, login)
    return row and Staff.from_row(row)


async def ready_staff(
    conn, cipher: FieldCipher, code: str, login: str, roles: list[str], password: str = PASSWORD
) -> tuple[Staff, str | None]:
    """A ready account, made the way a municipality makes one (devtools/demo_staff.py): created with its roles
    asked for, each role confirmed by a second admin, and enrolled by its owner through the link. Returns
    (staff, TOTP secret or None).

    The municipality's first admin ("admin") is bootstrapped by an operator (made first if needed). Every
    other account is created, and its link issued, by an operator of its own ("tests-<login>") and confirmed
    by "admin": no two test accounts share hands, so any drafter and approver are independent. Tests of the
    independence rules make their accounts through the console or the domain functions instead."""
    first = await _staff(conn, code, FIRST_ADMIN)
    person = Person(login, f"{login}さん", tuple(roles), password)
    if first is None:
        if login == FIRST_ADMIN and list(roles) == ["admin"]:
            secret = await bootstrap_ready(conn, cipher, code, Operator("tests"), person)
            return await _staff(conn, code, login), secret
        await bootstrap_ready(
            conn, cipher, code, Operator("tests"), Person(FIRST_ADMIN, "adminさん", ("admin",), password)
        )
        first = await _staff(conn, code, FIRST_ADMIN)
    secret = await ready(conn, cipher, code, person, creator=Operator(f"tests-{login}"), confirmer=first)
    return await _staff(conn, code, login), secret


async def make_staff(conn, world: World, login: str, roles: list[str]) -> Staff:
    staff, secret = await ready_staff(conn, world.cipher, world.code, login, roles)
    if secret:
        world.totp[login] = secret
    world.staff[login] = staff
    return staff


async def add_application(
    conn,
    world: World,
    *,
    status: str = "needs_review",
    amount_yen: int = 100000,
    bank_code: str = "0001",
    holder: str = "ﾔﾏﾀﾞ ﾀﾛｳ",
    reasons=("holder_name_mismatch",),
    account_number: str | None = None,
) -> int:
    """An application of a new household; its account is its own (account_number(app_id)) unless given."""
    household = secrets.token_hex(4)
    resident = f"{secrets.randbelow(10**11):011d}"
    await conn.execute(
        "INSERT INTO residents (municipality_code, snapshot_id, resident_code, household_no, relationship, is_head,"
        " family_name, given_name, family_kana, given_kana, birth_date, sex, address)"
        " VALUES ($1, $2, $3, $4, '世帯主', true, '山田', '太郎', 'ヤマダ', 'タロウ', '1980-01-01', '1',"
        " '東京都千代田区1-1')",
        world.code,
        world.snapshot_id,
        resident,
        household,
    )
    ent = await conn.fetchval(
        "INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no, head_resident_code,"
        " members_counted, amount_yen, rule, status) VALUES ($1, $2, $3, $4, $5, 1, $6, 'test', 'claimed')"
        " RETURNING entitlement_id",
        world.code,
        world.program_id,
        world.snapshot_id,
        household,
        resident,
        amount_yen,
    )
    app_id = await conn.fetchval("SELECT nextval('applications_application_id_seq')")
    await conn.execute(
        "INSERT INTO applications (municipality_code, application_id, entitlement_id, receipt_no, channel, status,"
        " reason_codes, applicant_resident_code, bank_code, branch_code, account_type, account_number_enc,"
        " holder_kana_enc)"
        " OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, 'online', $5, $6, $7, $8, '001', 1, $9, $10)",
        world.code,
        app_id,
        ent,
        f"R{app_id:09d}",
        status,
        list(reasons),
        resident,
        bank_code,
        world.cipher.encrypt("applications", ACCOUNT_NUMBER, app_id, account_number or own_account(app_id)),
        world.cipher.encrypt("applications", HOLDER_KANA, app_id, holder),
    )
    world.applications.append(app_id)
    return app_id


def own_account(app_id: int) -> str:
    """The account number add_application gives an application by default: one per household, as in life
    (a batch may pay an account once: migration 0018)."""
    return f"{app_id % 10_000_000:07d}"


async def build_world(db, code: str, settings, *, applications: int = 3, status: str = "needs_review") -> World:
    """Fill municipality `code` (db: a pool or a connection of the app role)."""
    async with tenant_transaction(db, code) as conn:
        world = World(code, await load_field_cipher(conn, settings.master_key_bytes, code), settings=settings)
        # The admin first: it confirms the others' roles (ready_staff).
        for login, roles in (
            ("admin", ["admin"]),
            ("rev", ["reviewer"]),
            ("draft", ["drafter"]),
            ("appr", ["approver"]),
            ("draft2", ["drafter", "approver"]),
        ):
            await make_staff(conn, world, login, roles)
        world.snapshot_id = await conn.fetchval(
            "INSERT INTO registry_snapshots (municipality_code, kind, file_sha256, status)"
            " VALUES ($1, 'residents', $2, 'published') RETURNING snapshot_id",
            code,
            secrets.token_hex(32),
        )
        world.program_id = await conn.fetchval(
            "INSERT INTO programs (municipality_code, name, base_date, unit, amount_yen, payment_mode)"
            " VALUES ($1, '物価高騰支援給付金', '2026-01-01', 'household', 100000, 'application') RETURNING program_id",
            code,
        )
        for i in range(applications):
            await add_application(conn, world, status=status, bank_code=f"{(i % 2) + 1:04d}")
    return world


@pytest.fixture
def make_world(app_pool, municipality, settings):
    async def make(*, applications: int = 3, status: str = "needs_review") -> World:
        return await build_world(app_pool, await municipality(), settings, applications=applications, status=status)

    return make


async def add_bank_settings(conn, code: str, lead_days: int = 2) -> None:
    """The municipality's bank contract (payout stage), with a fresh age recipient."""
    from pyrage import x25519

    from payouts import zengin
    from payouts.settings_store import StoredBankSettings, put_bank_settings

    bank = zengin.BankSettings(
        requester_code="1234567890",
        requester_name_kana="ﾃｽﾄｼ",
        bank_code="0001",
        branch_code="001",
        account_type=1,
        account_number="7654321",
        separator="crlf",
    )
    await put_bank_settings(
        conn, code, StoredBankSettings(bank, (str(x25519.Identity.generate().to_public()),), lead_days)
    )


@pytest.fixture
def transfer_date():
    from payouts.bankdays import earliest_transfer_date, today_jst

    return earliest_transfer_date(today_jst(), 5)


@pytest.fixture(autouse=True)
def forget_staff_login_failures(settings):
    """Every TestClient signs in from the address "testclient": clear its failure count so failed sign-ins
    of earlier tests (on purpose, e.g. the lockout test) cannot throttle this one. (Synchronous: it also
    runs for the synchronous tests here.)"""
    from redis import Redis

    from app.staff.throttle import IP_KEY

    with Redis.from_url(settings.redis_url) as redis:
        redis.delete(IP_KEY + "testclient")

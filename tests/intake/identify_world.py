"""A small registry for identification without a letter: a 申請型 program, households chosen to exercise
the matching rules (base date, removals, a household split, namesakes), their entitlements, and page
helpers that go through the real forms (CSRF included)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field

from app.registry.pins import pin_hash, pin_key
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from tests.intake.helpers import access_code

BASE_DATE = dt.date(2026, 1, 1)

INSERT_PROGRAM = """
INSERT INTO programs (municipality_code, name, base_date, unit, amount_yen, payment_mode, decline_deadline)
VALUES ($1, $2, $3, 'household', 70000, $4, CASE WHEN $4 = 'push' THEN date '2026-12-01' END) RETURNING program_id
"""
INSERT_SNAPSHOT = """
INSERT INTO registry_snapshots (municipality_code, kind, file_sha256, status) VALUES ($1, 'residents', $2, 'published')
RETURNING snapshot_id
"""
INSERT_RESIDENT = """
INSERT INTO residents (municipality_code, snapshot_id, resident_code, household_no, relationship, is_head,
    family_name, given_name, family_kana, given_kana, birth_date, sex, address, moved_in_on, removed_on,
    removal_reason, prev_household_no, household_changed_on)
VALUES ($1, $2, $3, $4, $5, $6, '試験', '太郎', $7, $8, $9, '1', $10, $11, $12, $13, $14, $15)
"""
INSERT_ENTITLEMENT = """
INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no, head_resident_code,
    members_counted, amount_yen, rule, status)
VALUES ($1, $2, $3, $4, $5, 1, 70000, 'test', $6) RETURNING entitlement_id
"""
INSERT_LETTER = """
INSERT INTO letters (municipality_code, entitlement_id, kind, access_code, pin_hash)
VALUES ($1, $2, 'confirmation', $3, $4)
"""


@dataclass(frozen=True)
class Person:
    key: str
    household: str
    head: bool
    family_kana: str
    given_kana: str
    birth: dt.date
    address: str
    moved_in_on: dt.date | None = None
    removed_on: dt.date | None = None
    prev_household: str | None = None
    household_changed_on: dt.date | None = None


# Registry addresses as an extract holds them; the tests type other spellings of the same address.
PEOPLE = [
    Person("taro", "H1", True, "ヤマダ", "タロウ", dt.date(1980, 4, 1), "九段南1丁目2番3号"),
    Person("hanako", "H1", False, "ヤマダ", "ハナコ", dt.date(1982, 6, 1), "九段南1丁目2番3号"),
    Person(
        "moved_out",
        "H1",
        False,
        "ヤマダ",
        "ジロウ",
        dt.date(2000, 1, 1),
        "九段南1丁目2番3号",
        removed_on=dt.date(2025, 12, 1),
    ),
    Person(
        "removed_on_base",
        "H1",
        False,
        "ヤマダ",
        "サブロウ",
        dt.date(2001, 1, 1),
        "九段南1丁目2番3号",
        removed_on=BASE_DATE,
    ),
    Person(
        "moved_in_late",
        "H1",
        False,
        "ヤマダ",
        "シロウ",
        dt.date(2002, 1, 1),
        "九段南1丁目2番3号",
        moved_in_on=dt.date(2026, 2, 1),
    ),
    Person("ken", "H2", True, "サトウ", "ケン", dt.date(1975, 1, 2), "富士見2-10-1"),
    # 世帯分離 after 基準日: now heads H2b, but was in H2 on 基準日, so H2's entitlement is hers.
    Person(
        "yui",
        "H2b",
        True,
        "サトウ",
        "ユイ",
        dt.date(2004, 3, 3),
        "富士見2-10-1",
        prev_household="H2",
        household_changed_on=dt.date(2026, 3, 1),
    ),
    # Namesakes born the same day in two households: the address tells them apart.
    Person("jiro_101", "H3", True, "タナカ", "ジロウ", dt.date(1990, 9, 9), "飯田橋3-1-1 コーポ飯田101号室"),
    Person("jiro_202", "H4", True, "タナカ", "ジロウ", dt.date(1990, 9, 9), "飯田橋3-1-1 コーポ飯田202号室"),
    # Namesakes born the same day at the same address in two households: never told apart.
    Person("ichiro_a", "H5", True, "スズキ", "イチロウ", dt.date(1970, 1, 1), "三崎町1-1-1"),
    Person("ichiro_b", "H6", True, "スズキ", "イチロウ", dt.date(1970, 1, 1), "三崎町1-1-1"),
    # Small kana and ヶ in the registry; residents type ﾘﾖｳﾍｲ from a passbook and 五味ケ谷 (issue 18, point 5).
    Person("ryohei", "H8", True, "ゴミ", "リョウヘイ", dt.date(1988, 8, 8), "五味ヶ谷2丁目1番1号"),
    # A household whose entitlement was withdrawn (no longer eligible).
    Person("gone", "H7", True, "イトウ", "ゴロウ", dt.date(1960, 5, 5), "神田1-1-1"),
]


@dataclass
class World:
    code: str
    program_id: int
    letter_program_id: int
    snapshot_id: int
    residents: dict[str, str] = field(default_factory=dict)  # person key -> 住民票コード
    entitlements: dict[str, int] = field(default_factory=dict)  # household -> entitlement id
    access_code: str = ""
    pin: str = ""


async def make_world(db, master_key: bytes, code: str) -> World:
    """The PEOPLE registry, a 申請型 program with an entitlement per household (H7's withdrawn), a letter
    for H1 (the cross-channel case), and a 確認書型 program over the same households."""
    async with tenant_transaction(db, code) as conn:
        program_id = await conn.fetchval(INSERT_PROGRAM, code, "生活支援給付金（申請型）", BASE_DATE, "application")
        letter_program_id = await conn.fetchval(
            INSERT_PROGRAM, code, "物価高騰対策給付金（確認書型）", BASE_DATE, "letter"
        )
        snap = await conn.fetchval(INSERT_SNAPSHOT, code, secrets.token_hex(32))
        world = World(code, program_id, letter_program_id, snap)
        for p in PEOPLE:
            rc = f"{secrets.randbelow(10**11):011d}"
            world.residents[p.key] = rc
            await conn.execute(
                INSERT_RESIDENT,
                code,
                snap,
                rc,
                p.household,
                "世帯主" if p.head else "世帯員",
                p.head,
                p.family_kana,
                p.given_kana,
                p.birth,
                p.address,
                p.moved_in_on,
                p.removed_on,
                "転出" if p.removed_on else None,
                p.prev_household,
                p.household_changed_on,
            )
        heads = {
            "H1": "taro",
            "H2": "ken",
            "H3": "jiro_101",
            "H4": "jiro_202",
            "H5": "ichiro_a",
            "H6": "ichiro_b",
            "H7": "gone",
            "H8": "ryohei",
        }
        for hh, head in heads.items():
            status = "withdrawn" if hh == "H7" else "open"
            world.entitlements[hh] = await conn.fetchval(
                INSERT_ENTITLEMENT, code, program_id, snap, hh, world.residents[head], status
            )
            await conn.execute(INSERT_ENTITLEMENT, code, letter_program_id, snap, hh, world.residents[head], "open")
        world.access_code, world.pin = access_code(), f"{secrets.randbelow(10**6):06d}"
        key = pin_key(await load_field_cipher(conn, master_key, code))
        await conn.execute(
            INSERT_LETTER,
            code,
            world.entitlements["H1"],
            world.access_code,
            pin_hash(key, world.access_code, world.pin),
        )
    return world


# ---- pages ---------------------------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_RECEIPT = re.compile(r'id="receipt-no">([0-9-]+)<')


def csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no csrf_token in the page"
    return match.group(1)


def typed(person: Person, **overrides) -> dict[str, str]:
    """The form as a resident fills it in: the address with prefecture and municipality (the world's
    municipality is named 千代田区), full-width digits and hyphens, a space."""
    wide = str.maketrans("0123456789-", "０１２３４５６７８９－")
    form = {
        "family_kana": person.family_kana,
        "given_kana": person.given_kana,
        "birth_year": str(person.birth.year),
        "birth_month": str(person.birth.month),
        "birth_day": str(person.birth.day),
        "address": "東京都 千代田区" + person.address.translate(wide),
    }
    form.update(overrides)
    return form


def person(key: str) -> Person:
    return next(p for p in PEOPLE if p.key == key)


async def identify(client, world: World, form: dict[str, str], *, program_id: int | None = None, next_page: str = ""):
    """GET the form (for its CSRF token), POST it; returns the POST's response (redirects not followed)."""
    program = world.program_id if program_id is None else program_id
    page = await client.get(f"/m/{world.code}/identify", params={"program": program})
    assert page.status_code == 200, page.status_code
    data = {"csrf_token": csrf(page.text), "program": str(program), "next": next_page, **form}
    return await client.post(f"/m/{world.code}/identify", data=data)


async def apply(client, world: World, holder_kana: str = "ヤマダ タロウ") -> tuple[str, bool]:
    """From a signed-in session: bank form, confirm; returns (receipt number as shown, duplicate notice shown)."""
    base = f"/m/{world.code}"
    bank = await client.get(base + "/bank")
    assert bank.status_code == 200, bank.status_code
    r = await client.post(
        base + "/bank",
        data={
            "csrf_token": csrf(bank.text),
            "bank_code": "0001",
            "branch_code": "001",
            "account_type": "1",
            "account_number": "1234567",
            "holder_kana": holder_kana,
        },
    )
    assert r.status_code == 303 and r.headers["location"] == base + "/confirm", (r.status_code, r.text[:300])
    confirm = await client.get(base + "/confirm")
    # An active application exists: its receipt (for another account, 口座変更の届出 is offered first).
    if confirm.status_code == 303:
        assert confirm.headers["location"] in (base + "/receipt", base + "/account-change")
    else:
        r = await client.post(base + "/confirm", data={"csrf_token": csrf(confirm.text)})
        assert r.status_code == 303 and r.headers["location"] == base + "/receipt", r.status_code
    receipt = await client.get(base + "/receipt")
    assert receipt.status_code == 200
    return _RECEIPT.search(receipt.text).group(1), "最初の申請の受付番号" in receipt.text

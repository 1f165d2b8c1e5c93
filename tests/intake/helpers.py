"""Build what a resident needs to apply (program, snapshot, household, entitlement, letter) with SQL.

The registry area owns the real import and letter issue; these tests only need rows that look like
theirs, with the PIN hashed by the shared app.registry.pins.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from app.registry.pins import pin_hash, pin_key
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass
class LetterForTest:
    code: str
    access_code: str
    pin: str
    entitlement_id: int
    letter_id: int
    program_id: int


INSERT_PROGRAM = """
INSERT INTO programs (municipality_code, name, base_date, unit, amount_yen, payment_mode, apply_until)
VALUES ($1, '物価高騰対策給付金', '2026-01-01', 'household', 100000, 'letter', '2026-12-28') RETURNING program_id
"""
INSERT_SNAPSHOT = """
INSERT INTO registry_snapshots (municipality_code, kind, file_sha256, status) VALUES ($1, 'residents', $2, 'published')
RETURNING snapshot_id
"""
INSERT_RESIDENTS = """
INSERT INTO residents (municipality_code, snapshot_id, resident_code, household_no, relationship, is_head,
    family_name, given_name, family_kana, given_kana, birth_date, sex, address)
SELECT $1, $2, r.rc, r.hh, r.rel, r.head, '山田', r.given, 'ヤマダ', r.kana, r.born, '1', '東京都千代田区1-1'
FROM unnest($3::text[], $4::text[], $5::text[], $6::boolean[], $7::text[], $8::text[], $9::date[])
     AS r(rc, hh, rel, head, given, kana, born)
"""
INSERT_ENTITLEMENTS = """
INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no, head_resident_code,
    members_counted, amount_yen, rule)
SELECT $1, $2, $3, e.hh, e.head, 2, 100000, 'test' FROM unnest($4::text[], $5::text[]) AS e(hh, head)
RETURNING entitlement_id, household_no
"""
INSERT_LETTERS = """
INSERT INTO letters (municipality_code, entitlement_id, kind, access_code, pin_hash)
SELECT $1, l.ent, 'confirmation', l.code, l.hash
FROM unnest($2::bigint[], $3::text[], $4::bytea[]) AS l(ent, code, hash)
RETURNING letter_id, entitlement_id
"""


def access_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))


async def make_letters(
    db, master_key: bytes, code: str, n: int = 1, *, pin: str | None = None, program_id: int | None = None
) -> list[LetterForTest]:
    """n households of two, each with an open entitlement and a valid letter (one transaction)."""
    import datetime as dt

    async with tenant_transaction(db, code) as conn:
        key = pin_key(await load_field_cipher(conn, master_key, code))
        if program_id is None:
            program_id = await conn.fetchval(INSERT_PROGRAM, code)
        snap = await conn.fetchval(INSERT_SNAPSHOT, code, secrets.token_hex(32))
        tag = secrets.token_hex(4)
        households = [f"{tag}-{i}" for i in range(n)]
        # Distinct 住民票コード (drawn independently, 40,000 of them collide about once in 125 calls).
        drawn = [f"{c:011d}" for c in secrets.SystemRandom().sample(range(10**11), 2 * n)]
        heads, spouses = drawn[:n], drawn[n:]
        rcs, hhs, rels, is_head, givens, kanas, born = [], [], [], [], [], [], []
        for hh, head, spouse in zip(households, heads, spouses):
            for rc, rel, h, g, k, b in (
                (head, "世帯主", True, "太郎", "タロウ", dt.date(1980, 4, 1)),
                (spouse, "妻", False, "花子", "ハナコ", dt.date(1982, 6, 1)),
            ):
                rcs.append(rc)
                hhs.append(hh)
                rels.append(rel)
                is_head.append(h)
                givens.append(g)
                kanas.append(k)
                born.append(b)
        await conn.execute(INSERT_RESIDENTS, code, snap, rcs, hhs, rels, is_head, givens, kanas, born)
        ents = await conn.fetch(INSERT_ENTITLEMENTS, code, program_id, snap, households, heads)
        by_hh = {r["household_no"]: r["entitlement_id"] for r in ents}
        ent_ids = [by_hh[h] for h in households]
        codes = [access_code() for _ in range(n)]
        pins = [pin or f"{secrets.randbelow(10**6):06d}" for _ in range(n)]
        rows = await conn.fetch(
            INSERT_LETTERS, code, ent_ids, codes, [pin_hash(key, c, p) for c, p in zip(codes, pins)]
        )
        letter_by_ent = {r["entitlement_id"]: r["letter_id"] for r in rows}
    return [LetterForTest(code, c, p, e, letter_by_ent[e], program_id) for c, p, e in zip(codes, pins, ent_ids)]


def bank_body(**overrides) -> dict:
    body = {
        "bank_code": "0001",
        "branch_code": "001",
        "account_type": 1,
        "account_number": "1234567",
        "holder_kana": "ヤマダ タロウ",
    }
    body.update(overrides)
    return body


def application_body(letter: LetterForTest, **bank) -> dict:
    return {
        "municipality_code": letter.code,
        "access_code": letter.access_code,
        "pin": letter.pin,
        "bank": bank_body(**bank),
    }

"""確認書 and 支給のお知らせ letters: access codes, PINs, issue, one-time export to the print vendor, re-issue.

An access code (確認書番号) is 11 random Crockford base32 symbols and a Luhn mod 32 check symbol,
printed as XXXX-XXXX-XXXX. Crockford's alphabet has no I, L, O or U, so what a resident types can be
read leniently (I/L -> 1, O -> 0, hyphens, spaces and full-width forms ignored); the check symbol
catches every single-symbol typo and most swaps of neighbours before the database is asked.

Only pin_hash(pin_key, code, PIN) is kept for sign-in. Until the letter is exported the PIN is also
kept encrypted (pin_enc); export erases it in the same transaction that sets exported_at, so the print
file can be produced once per issue and never again.
"""

from __future__ import annotations

import io
import secrets
import unicodedata
from dataclasses import dataclass

import asyncpg

from app import csvsafe
from app.crypto import FieldCipher
from app.registry.errors import EntitlementNotFound, RegistryError
from app.registry.events import record_event
from app.registry.pins import pin_hash, pin_key
from app.registry.programs import get_program

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_LENIENT = str.maketrans({"I": "1", "L": "1", "O": "0", "-": None, " ": None})
CODE_SYMBOLS = 11
PIN_DIGITS = 6


class InvalidAccessCode(RegistryError):
    """What was typed is not a well-formed 確認書番号 (wrong length, symbol or check character)."""


def check_symbol(payload: str) -> str:
    """Luhn mod N over the Crockford alphabet (N = 32)."""
    total, factor = 0, 2
    for ch in reversed(payload):
        addend = factor * _VALUE[ch]
        total += addend // 32 + addend % 32
        factor = 1 if factor == 2 else 2
    return ALPHABET[(32 - total % 32) % 32]


def new_access_code() -> str:
    payload = "".join(secrets.choice(ALPHABET) for _ in range(CODE_SYMBOLS))
    return payload + check_symbol(payload)


def new_pin() -> str:
    return f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"


def format_access_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalise_access_code(typed: str) -> str:
    """The canonical 12-symbol code for what a resident typed, or InvalidAccessCode."""
    text = unicodedata.normalize("NFKC", typed or "").upper().replace("‐", "-").replace("ー", "-")
    text = text.translate(_LENIENT)
    if len(text) != CODE_SYMBOLS + 1 or any(c not in _VALUE for c in text):
        raise InvalidAccessCode("確認書番号は英数字12文字です（例: ABCD-EFGH-JK12）。")
    if check_symbol(text[:-1]) != text[-1]:
        raise InvalidAccessCode("確認書番号に誤りがあります。確認書に印字された番号をもう一度ご確認ください。")
    return text


# Entitlements of the program that are open and have no valid letter. For プッシュ型 the household gets
# a 支給のお知らせ when its head has a registered account, a 確認書 otherwise.
CANDIDATES = """
SELECT e.entitlement_id,
       CASE WHEN $3 = 'push' AND EXISTS (SELECT 1 FROM registered_accounts ra
                                          WHERE ra.municipality_code = e.municipality_code
                                            AND ra.resident_code = e.head_resident_code)
            THEN 'push_notice' ELSE 'confirmation' END AS kind
FROM entitlements e
WHERE e.municipality_code = $1 AND e.program_id = $2 AND e.status = 'open'
  AND NOT EXISTS (SELECT 1 FROM letters l WHERE l.municipality_code = e.municipality_code
                  AND l.entitlement_id = e.entitlement_id AND l.invalidated_at IS NULL)
ORDER BY e.entitlement_id
"""
# An access-code collision (55 random bits: practically never) skips the row; the caller retries it.
INSERT_LETTERS = """
INSERT INTO letters (municipality_code, entitlement_id, kind, access_code, pin_hash, pin_enc)
SELECT $1, e, k, c, h, p FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bytea[], $6::bytea[]) AS u(e, k, c, h, p)
ON CONFLICT DO NOTHING
RETURNING entitlement_id
"""
ENTITLEMENT_FOR_REISSUE = """
SELECT e.entitlement_id, e.program_id, e.status,
       (SELECT l.kind FROM letters l
        WHERE l.municipality_code = e.municipality_code AND l.entitlement_id = e.entitlement_id
        ORDER BY l.letter_id DESC LIMIT 1) AS last_kind
FROM entitlements e WHERE e.municipality_code = $1 AND e.entitlement_id = $2
"""
INVALIDATE = """
UPDATE letters SET invalidated_at = now(), pin_enc = NULL
WHERE municipality_code = $1 AND entitlement_id = $2 AND invalidated_at IS NULL
RETURNING letter_id
"""
# What the print vendor needs, for valid letters not yet exported. FOR UPDATE: two exports at once
# cannot both read the same PINs (the second waits, then finds them exported).
TO_EXPORT = """
SELECT l.letter_id, l.kind, l.access_code, l.pin_enc, e.entitlement_id, e.household_no, e.amount_yen, e.members_counted,
       r.family_name, r.given_name, r.family_kana, r.given_kana, r.address, p.decline_deadline
FROM letters l
JOIN entitlements e ON e.municipality_code = l.municipality_code AND e.entitlement_id = l.entitlement_id
JOIN programs p ON p.municipality_code = e.municipality_code AND p.program_id = e.program_id
JOIN residents r ON r.municipality_code = e.municipality_code AND r.snapshot_id = e.snapshot_id
                 AND r.resident_code = e.head_resident_code
WHERE l.municipality_code = $1 AND e.program_id = $2 AND l.exported_at IS NULL AND l.invalidated_at IS NULL
ORDER BY l.letter_id
FOR UPDATE OF l
"""
MARK_EXPORTED = """
UPDATE letters SET exported_at = now(), pin_enc = NULL
WHERE municipality_code = $1 AND letter_id = ANY($2::bigint[]) AND exported_at IS NULL
"""
PENDING_PINS = """
SELECT l.access_code, l.pin_enc, l.kind, e.household_no, e.amount_yen
FROM letters l JOIN entitlements e ON e.municipality_code = l.municipality_code AND e.entitlement_id = l.entitlement_id
WHERE l.municipality_code = $1 AND e.program_id = $2 AND l.exported_at IS NULL AND l.invalidated_at IS NULL
ORDER BY l.letter_id LIMIT $3
"""

EXPORT_HEADER = [
    "確認書番号",
    "暗証番号",
    "種別",
    "住所",
    "世帯主氏名",
    "世帯主氏名カナ",
    "支給額",
    "対象人数",
    "辞退期限",
    "世帯番号",
]
KIND_LABEL = {"confirmation": "確認書", "push_notice": "支給のお知らせ"}


@dataclass(frozen=True)
class IssuedLetter:
    entitlement_id: int
    access_code: str
    pin: str
    kind: str


async def _insert(conn, cipher: FieldCipher, code: str, todo: list[tuple[int, str]]) -> list[IssuedLetter]:
    key = pin_key(cipher)
    issued: list[IssuedLetter] = []
    for _attempt in range(5):
        if not todo:
            break
        batch = [IssuedLetter(ent, new_access_code(), new_pin(), kind) for ent, kind in todo]
        done = {
            r["entitlement_id"]
            for r in await conn.fetch(
                INSERT_LETTERS,
                code,
                [b.entitlement_id for b in batch],
                [b.kind for b in batch],
                [b.access_code for b in batch],
                [pin_hash(key, b.access_code, b.pin) for b in batch],
                [cipher.encrypt("letters", "pin", b.access_code, b.pin) for b in batch],
            )
        }
        issued += [b for b in batch if b.entitlement_id in done]
        todo = [(b.entitlement_id, b.kind) for b in batch if b.entitlement_id not in done]
    if todo:
        raise RegistryError("確認書番号を採番できませんでした。もう一度実行してください。")
    return issued


async def issue_letters(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, program_id: int, actor: str
) -> list[IssuedLetter]:
    """Issue a letter for every open entitlement of the program that has none (inside tenant_transaction)."""
    program = await get_program(conn, code, program_id, lock=True)
    if program["payment_mode"] == "application":
        raise RegistryError("申請型の給付には確認書を発行しません。")
    rows = await conn.fetch(CANDIDATES, code, program_id, program["payment_mode"])
    issued = await _insert(conn, cipher, code, [(r["entitlement_id"], r["kind"]) for r in rows])
    await record_event(
        conn,
        code,
        actor,
        "letters.issue",
        {
            "program_id": program_id,
            "confirmation": sum(1 for i in issued if i.kind == "confirmation"),
            "push_notice": sum(1 for i in issued if i.kind == "push_notice"),
        },
    )
    return issued


async def reissue_letter(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, entitlement_id: int, actor: str
) -> IssuedLetter:
    """Invalidate the entitlement's valid letter and issue a new one, in one transaction."""
    row = await conn.fetchrow(ENTITLEMENT_FOR_REISSUE, code, entitlement_id)
    if row is None:
        raise EntitlementNotFound(f"受給資格 {entitlement_id} はありません。")
    program = await get_program(conn, code, row["program_id"], lock=True)
    if row["status"] != "open":
        raise RegistryError("申請済み・辞退済み・取消済みの受給資格には確認書を再発行できません。")
    if program["payment_mode"] == "application":
        raise RegistryError("申請型の給付には確認書を発行しません。")
    old = await conn.fetch(INVALIDATE, code, entitlement_id)
    kind = row["last_kind"] or "confirmation"
    [letter] = await _insert(conn, cipher, code, [(entitlement_id, kind)])
    await record_event(
        conn,
        code,
        actor,
        "letters.reissue",
        {
            "entitlement_id": entitlement_id,
            "invalidated_letter_ids": [r["letter_id"] for r in old],
        },
    )
    return letter


async def export_letters(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, program_id: int, actor: str
) -> list[list[str]]:
    """Rows of the print file (EXPORT_HEADER) for letters not exported yet, and mark them exported.

    Call inside tenant_transaction and write the file before the transaction commits: if writing
    fails, the rollback keeps the PINs for the next attempt; once committed they are gone.
    """
    await get_program(conn, code, program_id)
    rows = await conn.fetch(TO_EXPORT, code, program_id)
    lines = [
        [
            format_access_code(r["access_code"]),
            cipher.decrypt_str("letters", "pin", r["access_code"], r["pin_enc"]),
            KIND_LABEL[r["kind"]],
            r["address"],
            f"{r['family_name']} {r['given_name']}",
            f"{r['family_kana']} {r['given_kana']}",
            str(r["amount_yen"]),
            str(r["members_counted"]),
            r["decline_deadline"].isoformat() if r["kind"] == "push_notice" and r["decline_deadline"] else "",
            r["household_no"],
        ]
        for r in rows
    ]
    if rows:
        await conn.execute(MARK_EXPORTED, code, [r["letter_id"] for r in rows])
    await record_event(conn, code, actor, "letters.export", {"program_id": program_id, "letters": len(rows)})
    return lines


def export_csv(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    """The print file for rows of `export_letters`: EXPORT_HEADER then the rows, CRLF, UTF-8 with a BOM (so
    Excel takes it for UTF-8) or "cp932". People open it in a spreadsheet and its addresses and names come
    from the registry extract, so text cells are neutralised against formulas (app/csvsafe.py)."""
    if encoding not in ("utf-8", "cp932"):
        raise ValueError("encoding は utf-8 か cp932 を指定してください")
    buf = io.StringIO()
    writer = csvsafe.writer(buf, lineterminator="\r\n")
    writer.writerow(EXPORT_HEADER)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8-sig" if encoding == "utf-8" else "cp932")


async def pending_pins(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, program_id: int, limit: int
) -> list[dict]:
    """Codes and PINs of letters not yet printed (the demo prints a few so a person can sign in)."""
    return [
        dict(
            access_code=format_access_code(r["access_code"]),
            kind=r["kind"],
            household_no=r["household_no"],
            amount_yen=r["amount_yen"],
            pin=cipher.decrypt_str("letters", "pin", r["access_code"], r["pin_enc"]),
        )
        for r in await conn.fetch(PENDING_PINS, code, program_id, limit)
    ]

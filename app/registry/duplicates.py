"""Cross-municipality duplicates (issue 16, point 2): one person entitled in two municipalities under the same
national benefit, found before either pays, without either seeing the other's residents.

* A national benefit is run by each municipality as its own program; `programs.national_scheme` (e.g.
  'R6-TEIGAKU', set by `kyufu programs scheme`) says which programs are the same benefit. Matching is only
  within a scheme.
* For every person an entitlement of such a program counts (the household's members on 基準日 within the
  program's ages, as eligibility counts them), the municipality contributes two keyed hashes, HMAC-SHA256
  under the platform key KYUFU_DUPLICATE_KEY: of the 住民票コード (it follows a person across moves) and of
  the normalised kana name + birth date (`normalise_kana`: for a registry that issued a new code). The scheme
  is part of every hash, so one person's hashes in two schemes are unrelated. Nothing else leaves the
  municipality: no name, no code, no date, no household.
* `contribute` (after each eligibility run, `kyufu programs eligibility`, and on demand) replaces the
  program's hashes in the platform table through kyufu_duplicates_contribute (migration 0021), which opens a
  case for each pair of entitlements of two municipalities sharing a hash and returns counts only.
* Each municipality sees its side of a case (`duplicate_cases`): its own entitlement, the other
  municipality's name and the case reference (D-XXXX-XXXX-XXXX, random), whether the other side has
  answered; never the other side's data. A reviewer answers for the own side (`resolve`): 'pay' (当団体で
  支給する) or 'not_pay' (当団体では支給しない, with a reason); the second answer closes the case.
* Payment waits: an entitlement with an open case, or whose side answered 'not_pay', is in the view
  `duplicate_holds`; drafts skip it (payouts/payments.py) and the database refuses its payment.
* Keys: duplicate_match.keys holds each key's id (`key_id`, a fingerprint) and version; only the current
  key's hashes are accepted and hashes are compared only within a version. `rotate_key` (owner) retires the
  current key and deletes its hashes, then `rehash` contributes every scheme program of every municipality
  again under the new one; cases found before stay (one case per pair, whatever the key).

Inputs of the hashes (codes, names, birth dates) are never logged or put in an error message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import asyncpg

from app import audit
from app.db import fetch_always
from app.errors import Conflict, InvalidInput, NotFound
from app.principals import Staff
from app.registry.errors import ProgramNotFound, RegistryError
from app.registry.events import record_event
from app.registry.programs import get_program
from app.tenancy.municipalities import list_municipalities
from app.tenancy.transaction import tenant_transaction

KIND_LABELS = {"resident_code": "住民票コード", "name_birth": "氏名カナ・生年月日"}
RESOLUTION_LABELS = {"pay": "当団体で支給する", "not_pay": "当団体では支給しない"}
ENTITLEMENT_LABELS = {
    "open": "未申請",
    "claimed": "申請あり",
    "declined": "辞退",
    "withdrawn": "取消",
    "paid": "支払済",
}
SCHEME = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,39}$")
REFERENCE = re.compile(r"^D-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$")


class DuplicateKeyNotCurrent(RegistryError):
    """KYUFU_DUPLICATE_KEY is not the platform's current duplicate key: it was rotated (restart with the new
    one) or this process was given another key. Hashes under any other key would never match."""


# The people each entitlement of the program counts (eligibility's rules: in the household on 基準日, born
# by then, within min/max age), with what their hashes are made of. The household on 基準日 is found by
# 世帯番号 or, for a move between households after it, 前世帯番号: two indexed joins (residents_household,
# residents_prev_household), so the console's one-entitlement form reads a few rows, not the snapshot.
_MEMBERS = """
WITH p AS MATERIALIZED (
    SELECT base_date, max_age,
           (base_date + 1 - make_interval(years => coalesce(min_age, 0)))::date AS born_by_min_age,
           (base_date + 1 - make_interval(years => max_age + 1))::date AS born_after_max_age
    FROM programs WHERE municipality_code = $1 AND program_id = $2
), e AS (
    SELECT entitlement_id, snapshot_id, household_no FROM entitlements
    WHERE municipality_code = $1 AND program_id = $2 AND status NOT IN ('withdrawn', 'declined') {only}
), m AS (
    SELECT e.entitlement_id, r.resident_code, r.family_name, r.given_name, r.family_kana, r.given_kana,
           r.birth_date, r.moved_in_on, r.removed_on
    FROM e CROSS JOIN p
    JOIN residents r ON r.municipality_code = $1 AND r.snapshot_id = e.snapshot_id AND r.household_no = e.household_no
    WHERE r.household_changed_on IS NULL OR r.household_changed_on <= p.base_date
    UNION ALL
    SELECT e.entitlement_id, r.resident_code, r.family_name, r.given_name, r.family_kana, r.given_kana,
           r.birth_date, r.moved_in_on, r.removed_on
    FROM e CROSS JOIN p
    JOIN residents r ON r.municipality_code = $1 AND r.snapshot_id = e.snapshot_id
                    AND r.prev_household_no = e.household_no
    WHERE r.household_changed_on > p.base_date
)
SELECT m.entitlement_id, m.resident_code, m.family_name, m.given_name, m.family_kana, m.given_kana, m.birth_date
FROM m CROSS JOIN p
WHERE m.birth_date <= p.base_date AND m.birth_date <= p.born_by_min_age
  AND (p.max_age IS NULL OR m.birth_date > p.born_after_max_age)
  AND (m.moved_in_on IS NULL OR m.moved_in_on <= p.base_date)
  AND (m.removed_on IS NULL OR m.removed_on > p.base_date)
ORDER BY m.entitlement_id, m.resident_code
"""
MEMBERS = _MEMBERS.format(only="")
ENTITLEMENT_MEMBERS = _MEMBERS.format(only="AND entitlement_id = $3")
CONTRIBUTE = "SELECT stored, matched, opened FROM kyufu_duplicates_contribute($1, $2, $3, $4, $5)"
SET_SCHEME = """
UPDATE programs SET national_scheme = $3 WHERE municipality_code = $1 AND program_id = $2 RETURNING program_id
"""
SCHEME_PROGRAMS = """
SELECT program_id FROM programs WHERE municipality_code = $1 AND national_scheme IS NOT NULL ORDER BY program_id
"""
# Owner only (the app role has no privilege on duplicate_match): rotation.
CURRENT_KEY = "SELECT version, key_id FROM duplicate_match.keys WHERE retired_at IS NULL FOR UPDATE"
KEY_USED_BEFORE = "SELECT version FROM duplicate_match.keys WHERE key_id = $1"
RETIRE_KEY = "UPDATE duplicate_match.keys SET retired_at = now() WHERE retired_at IS NULL"
ADD_KEY = """
INSERT INTO duplicate_match.keys (version, key_id)
SELECT coalesce(max(version), 0) + 1, $1 FROM duplicate_match.keys
RETURNING version
"""
DROP_RETIRED_HASHES = """
DELETE FROM duplicate_match.hashes h USING duplicate_match.keys k
WHERE k.version = h.key_version AND k.retired_at IS NOT NULL
"""

CASE_COLUMNS = """
d.reference, d.scheme, d.matched_on, d.opened_at, d.closed_at, d.program_id, d.entitlement_id, d.resolution,
d.comment, d.resolved_at, u.login AS resolved_by_login, d.other_answered, m.name AS other_municipality,
pr.name AS program_name, e.household_no, e.status AS entitlement_status, e.amount_yen,
(SELECT y.status FROM payments y WHERE y.municipality_code = d.municipality_code
 AND y.entitlement_id = d.entitlement_id ORDER BY y.payment_id DESC LIMIT 1) AS payment_status
"""
CASE_FROM = """
FROM duplicate_cases d
JOIN municipalities m ON m.code = d.other_municipality_code
JOIN entitlements e ON e.municipality_code = d.municipality_code AND e.entitlement_id = d.entitlement_id
JOIN programs pr ON pr.municipality_code = d.municipality_code AND pr.program_id = d.program_id
LEFT JOIN staff_users u ON u.municipality_code = d.municipality_code AND u.staff_id = d.resolved_by
"""
# Open cases first, newest first; a list, not an archive.
CASES = f"""
SELECT {CASE_COLUMNS} {CASE_FROM}
WHERE d.municipality_code = $1
ORDER BY d.closed_at IS NULL DESC, d.opened_at DESC, d.reference
LIMIT 200
"""
CASE = f"SELECT {CASE_COLUMNS}, d.matched_digests {CASE_FROM} WHERE d.municipality_code = $1 AND d.reference = $2"
OPEN_COUNT = "SELECT count(*) FROM duplicate_cases WHERE municipality_code = $1 AND closed_at IS NULL"
HELD_COUNT = "SELECT count(DISTINCT entitlement_id) FROM duplicate_holds WHERE municipality_code = $1"
RESOLVE = "SELECT kyufu_duplicate_resolve($1, $2, $3, $4)"


@dataclass(frozen=True)
class Contribution:
    """What one program's contribution did: people counted, hashes stored, pairs of entitlements sharing a
    hash with another municipality, and how many of those are new cases."""

    program_id: int
    scheme: str | None
    people: int
    stored: int
    matched: int
    opened: int

    def details(self) -> dict[str, Any]:
        """For the audit log: ids and counts."""
        return {
            "program_id": self.program_id,
            "scheme": self.scheme,
            "people": self.people,
            "hashes": self.stored,
            "matched": self.matched,
            "opened": self.opened,
        }

    def describe(self) -> str:
        if self.scheme is None:
            return f"program {self.program_id}: no national scheme; its duplicate hashes were removed"
        return (
            f"program {self.program_id} ({self.scheme}): {self.stored} hashes of {self.people} people contributed; "
            f"{self.matched} entitlement pairs shared with other municipalities, {self.opened} new cases"
        )


def key_id(key: bytes) -> str:
    """A fingerprint naming a duplicate key (stored with its version; the key itself never is)."""
    return hashlib.sha256(b"kyufu-duplicate-key-id" + key).hexdigest()[:16]


# Small kana read as their full-size letters, and ヂ/ヅ as ジ/ズ: one name written in two ways (the 2020
# re-keying found both in registries) gives one hash.
_FOLD = str.maketrans("ァィゥェォッャュョヮヵヶヂヅ", "アイウエオツヤユヨワカケジズ")
_DROP = str.maketrans("", "", " 　・")


def normalise_kana(family_kana: str, given_kana: str) -> str | None:
    """The name as compared: NFKC (half-width and decomposed kana composed), hiragana as katakana, small
    kana full-size, ヂ/ヅ as ジ/ズ, without spaces or middle dots; None when nothing is left."""
    text = unicodedata.normalize("NFKC", family_kana + given_kana).translate(_DROP)
    text = "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in text).translate(_FOLD)
    return text or None


def digest(key: bytes, kind: str, scheme: str, value: str) -> bytes:
    """HMAC-SHA256 under the platform key, of the kind, the scheme and the value."""
    return hmac.digest(key, f"kyufu-duplicate|v1|{kind}|{scheme}|{value}".encode(), "sha256")


def person_digests(
    key: bytes, scheme: str, resident_code: str, family_kana: str, given_kana: str, birth_date: dt.date
) -> list[tuple[str, bytes]]:
    """(kind, hash) of one person: by 住民票コード, and by name + birth date when the name has any kana."""
    out = [("resident_code", digest(key, "resident_code", scheme, resident_code))]
    name = normalise_kana(family_kana, given_kana)
    if name is not None:
        out.append(("name_birth", digest(key, "name_birth", scheme, f"{name}|{birth_date.isoformat()}")))
    return out


def normalise_scheme(text: str | None) -> str | None:
    """A scheme code as stored (upper case, no spaces), or None for none; RegistryError when malformed."""
    value = unicodedata.normalize("NFKC", text or "").strip().upper()
    if not value:
        return None
    if not SCHEME.match(value):
        raise RegistryError(
            "全国事業コードは英大文字・数字・ハイフン（-）・下線（_）で40文字以内です（例: R6-TEIGAKU）。"
        )
    return value


async def set_scheme(conn: asyncpg.Connection, code: str, program_id: int, scheme: str | None) -> None:
    """Say which national benefit the program is (None: none). Inside tenant_transaction; contribute after."""
    try:
        if await conn.fetchval(SET_SCHEME, code, program_id, normalise_scheme(scheme)) is None:
            raise ProgramNotFound(f"給付 {program_id} はこの自治体にありません。")
    except asyncpg.UniqueViolationError:
        raise RegistryError("この自治体には、同じ全国事業コードの給付が既にあります。") from None


async def contribute(conn: asyncpg.Connection, key: bytes, code: str, program_id: int) -> Contribution:
    """Replace the program's hashes in the platform table and open cases for new matches (inside
    tenant_transaction(conn, code)). A program without a scheme has its hashes removed."""
    program = await get_program(conn, code, program_id)
    scheme = program["national_scheme"]
    ids: list[int] = []
    kinds: list[str] = []
    digests: list[bytes] = []
    people = 0
    if scheme is not None:
        for r in await conn.fetch(MEMBERS, code, program_id):
            people += 1
            for kind, value in person_digests(
                key, scheme, r["resident_code"], r["family_kana"], r["given_kana"], r["birth_date"]
            ):
                ids.append(r["entitlement_id"])
                kinds.append(kind)
                digests.append(value)
    try:
        row = await fetch_always(conn, CONTRIBUTE, key_id(key), program_id, ids, kinds, digests)
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name == "duplicate_key_current":
            raise DuplicateKeyNotCurrent(
                "KYUFU_DUPLICATE_KEY は現在の重複照合キーではありません（キーが更新されています）。"
                "新しいキーで起動し直してください。"
            ) from None
        raise
    return Contribution(program_id, scheme, people, row["stored"], row["matched"], row["opened"])


async def contribute_municipality(
    conn: asyncpg.Connection, key: bytes, code: str, actor: str, program_id: int | None = None
) -> list[Contribution]:
    """Contribute one program, or every program of the municipality that has a scheme, each an audit entry
    (inside tenant_transaction(conn, code))."""
    ids = [program_id] if program_id is not None else [r[0] for r in await conn.fetch(SCHEME_PROGRAMS, code)]
    results = []
    for pid in ids:
        result = await contribute(conn, key, code, pid)
        await record_event(conn, code, actor, "duplicates.contribute", result.details())
        results.append(result)
    return results


async def rehash(conn: asyncpg.Connection, key: bytes, actor: str) -> dict[str, list[Contribution]]:
    """Contribute every scheme program of every municipality under `key` (the current one): the second half
    of a rotation, and how an interrupted one is finished. One transaction per municipality (a platform
    operation, like the master key's rotation), so a failure leaves the others done; run it again."""
    done: dict[str, list[Contribution]] = {}
    for m in await list_municipalities(conn):
        async with tenant_transaction(conn, m.code):
            results = await contribute_municipality(conn, key, m.code, actor)
        if results:
            done[m.code] = results
    return done


async def rotate_key(owner: asyncpg.Connection, new_key: bytes) -> int:
    """Make `new_key` the current duplicate key: in one transaction of the owner, retire the current key
    (waiting for contributions under it to commit), register the new one and delete every hash of a retired
    key, so an old hash can never be compared with a new one. Returns the new version; `rehash` next.
    A key used before is refused."""
    new_id = key_id(new_key)
    async with owner.transaction():
        current = await owner.fetchrow(CURRENT_KEY)
        if current is not None and current["key_id"] == new_id:
            raise RegistryError("新しい重複照合キーが現在のキーと同じです。")
        if await owner.fetchval(KEY_USED_BEFORE, new_id) is not None:
            raise RegistryError("この重複照合キーは以前に使われました。新しいキーを生成してください。")
        await owner.execute(RETIRE_KEY)
        version = await owner.fetchval(ADD_KEY, new_id)
        await owner.execute(DROP_RETIRED_HASHES)
    return version


# ---- the console's side ------------------------------------------------------------------------------


def parse_reference(text: str) -> str:
    value = unicodedata.normalize("NFKC", text or "").strip().upper()
    if not REFERENCE.match(value):
        raise NotFound("その参照番号の重複の疑いはありません。")
    return value


async def cases(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    """This municipality's side of its cases (no personal data: ids, the other municipality's name)."""
    return await conn.fetch(CASES, code)


async def open_count(conn: asyncpg.Connection, code: str) -> int:
    return await conn.fetchval(OPEN_COUNT, code)


async def held_count(conn: asyncpg.Connection, code: str) -> int:
    """Entitlements whose payment waits for a case."""
    return await conn.fetchval(HELD_COUNT, code)


async def case_detail(
    conn: asyncpg.Connection, key: bytes | None, code: str, staff: Staff, reference: str
) -> dict[str, Any]:
    """One case, with the member of this municipality's household whose hash the other side shares (found
    by hashing the household's members again with `key`; none if `key` is not the one the hashes were made
    with). Showing the member is a personal-data view: an audit entry."""
    case = await conn.fetchrow(CASE, code, parse_reference(reference))
    if case is None:
        raise NotFound("その参照番号の重複の疑いはありません。")
    shared = {bytes(d) for d in case["matched_digests"]}
    members = []
    if key is not None and shared:
        for r in await conn.fetch(ENTITLEMENT_MEMBERS, code, case["program_id"], case["entitlement_id"]):
            kinds = [
                kind
                for kind, value in person_digests(
                    key, case["scheme"], r["resident_code"], r["family_kana"], r["given_kana"], r["birth_date"]
                )
                if value in shared
            ]
            if kinds:
                members.append({"member": r, "kinds": kinds})
    await audit.append(
        conn,
        code,
        staff,
        "personal_data.view",
        "duplicate_case",
        case["reference"],
        {"purpose": "duplicate", "members_shown": len(members)},
    )
    return {"case": case, "members": members}


async def resolve(
    conn: asyncpg.Connection, code: str, staff: Staff, reference: str, resolution: str, comment: str
) -> bool:
    """A reviewer's answer for this municipality's side; returns whether the case is now closed (both
    sides answered). Audited with the answer and the reviewer's comment."""
    staff.require("reviewer")
    reference = parse_reference(reference)
    if resolution not in RESOLUTION_LABELS:
        raise InvalidInput("回答（resolution）を選んでください。")
    comment = (comment or "").strip()
    if resolution == "not_pay" and not comment:
        raise InvalidInput("当団体では支給しない理由（comment）を入力してください。")
    if len(comment) > 1000:
        raise InvalidInput("コメント（comment）は1000文字以内で入力してください。")
    try:
        closed = await conn.fetchval(RESOLVE, reference, resolution, comment, staff.staff_id)
    except asyncpg.NoDataFoundError:
        raise NotFound("その参照番号の重複の疑いはありません。") from None
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name != "duplicate_cases_closed":
            raise
        raise Conflict("この重複の疑いは両方の団体が回答済みで、終了しています。") from None
    await audit.append(
        conn,
        code,
        staff,
        "duplicate.resolve",
        "duplicate_case",
        reference,
        {"resolution": resolution, "comment": comment, "closed": bool(closed)},
    )
    return bool(closed)

"""DV evacuees (配偶者等からの暴力を理由に避難している方), issue 15 point 3: the 2020 rule across two tenants.

An evacuee who has not moved their 住民票 files a 申出 (with a 保護命令 or a support centre's certificate)
with the municipality where they actually live (A). A pays the evacuee and the members who fled with them
their share; the registered municipality (B) pays its household without them. Migration 0026 holds the
design; in short:

* A's staff record the 申出 (`file_request`): the people (names, kana, birth dates, 住民票コード when known),
  the actual address and a contact, the evidence, the account. Everything personal is one ciphertext under
  A's key (dv_requests.details_enc). A pays through an entitlement of its own (entitlements.dv_reference:
  the share of each person by A's program, 基準日 and ages as eligibility counts them) and an application
  in review (reason dv_evacuee).
* To B goes only what the rule needs: keyed hashes of each person (app/registry/duplicates: the platform
  duplicate key, the program's national scheme, 住民票コード and kana + birth date), a random reference
  and how many people, through kyufu_dv_file (SECURITY DEFINER). B never learns which municipality filed,
  nor anything A recorded; A never learns B's household, entitlement, members or amounts.
* The platform matches the hashes with B's contributed duplicate hashes (now, and whenever B contributes
  again): B's matched entitlement is held at once (view dv_holds: no payment is created, none joins a batch,
  a batch already drafted with one is not approved), and A's own entitlement is held until B has excluded
  the people.
* B's reviewer opens the request (`incoming_detail`): B's own members whose hashes the request carries, found
  by hashing the household again, with each one's share by B's program. `exclude` takes them out of the
  entitlement (amount and members counted reduced; a household left with nobody is withdrawn; a 'ready'
  payment of the old amount is cancelled so the next draft pays the new amount) and answers 'excluded'.
  It refuses while a payment is in a draft (cancel the draft first: until then the hold keeps it from
  approval) and when the household was paid or its batch approved (answer 'already_paid'). 'not_found' when
  B cannot find everyone.
* Audit on both sides: A's dv.file and its personal-data views; B's dv.exclude / dv.refuse and its views.
  The 世帯主's status page (app/intake/status.py) shows the household's amount as it now is, and nothing of
  the request: no reference, no reason, no municipality.

Names, codes, birth dates and the address never go into a log line, an exception or audit details.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

import asyncpg

from app import audit
from app.crypto import DecryptionError, FieldCipher
from app.db import fetch_always
from app.errors import Conflict, InvalidInput, NotFound
from app.principals import Staff
from app.registry.duplicates import DuplicateKeyNotCurrent, digest, key_id, normalise_kana
from app.registry.receipts import receipt_key, receipt_number
from app.tenancy.codes import MunicipalityCodeError, validate_code
from payouts.accounts import account_key

EVIDENCE = {
    "protection_order": "保護命令（決定書の写し）",
    "support_certificate": "配偶者暴力相談支援センター等が発行する証明書",
}
STATES = {
    "filed": "住民票のある団体の確認待ち",
    "excluded": "除外済み（支給できます）",
    "refused": "除外されませんでした",
}
REFUSALS = {"not_found": "申出の方が住民記録に見つからない", "already_paid": "世帯に支給済み（または承認済み）"}
MAX_PERSONS = 10
REFERENCE = re.compile(r"^V-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$")
REFERENCE_FORMAT = "V-{}-{}-{}"

PROGRAM = """
SELECT program_id, name, base_date, unit, amount_yen, child_amount_yen, child_age_under, min_age, max_age,
       national_scheme
FROM programs WHERE municipality_code = $1 AND program_id = $2
"""
LATEST_RESIDENTS = """
SELECT max(snapshot_id) FROM registry_snapshots
WHERE municipality_code = $1 AND kind = 'residents' AND status = 'published'
"""
MUNICIPALITY = "SELECT name FROM municipalities WHERE code = $1"
INSERT_ENTITLEMENT = """
INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no, head_resident_code,
                          members_counted, amount_yen, rule, status, dv_reference)
VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, 'claimed', $4)
RETURNING entitlement_id
"""
RESERVE_APPLICATION = "SELECT nextval('applications_application_id_seq'::regclass)"
INSERT_APPLICATION = """
INSERT INTO applications (municipality_code, application_id, entitlement_id, receipt_no, channel, status, reason_codes,
                          bank_code, branch_code, account_type, account_number_enc, holder_kana_enc, identification)
OVERRIDING SYSTEM VALUE
VALUES ($1, $2, $3, $4, 'paper', 'needs_review', '{dv_evacuee}', $5, $6, $7, $8, $9, 'counter')
"""
ACCOUNT_KEY = (
    "INSERT INTO application_account_keys (municipality_code, application_id, account_key) VALUES ($1, $2, $3)"
)
RESERVE_REQUEST = "SELECT nextval(pg_get_serial_sequence('dv_requests', 'request_id'))"
INSERT_REQUEST = """
INSERT INTO dv_requests (municipality_code, request_id, reference, program_id, registered_municipality_code, evidence,
                         evidence_issued_on, persons, details_enc, entitlement_id, application_id, filed_by)
OVERRIDING SYSTEM VALUE
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""
FILE = "SELECT kyufu_dv_file($1, $2, $3, $4, $5, $6, $7, $8, $9)"
# A's list: its requests, with B's answer (state only) and its own application's state.
FILED = """
SELECT q.request_id, q.reference, q.program_id, pr.name AS program_name, q.registered_municipality_code,
       m.name AS registered_name, q.evidence, q.persons, q.filed_at, f.state, f.refusal, f.answered_at, f.matched,
       e.amount_yen, a.application_id, a.receipt_no, a.status AS application_status
FROM dv_requests q
JOIN programs pr ON pr.municipality_code = q.municipality_code AND pr.program_id = q.program_id
JOIN municipalities m ON m.code = q.registered_municipality_code
JOIN entitlements e ON e.municipality_code = q.municipality_code AND e.entitlement_id = q.entitlement_id
JOIN applications a ON a.municipality_code = q.municipality_code AND a.application_id = q.application_id
LEFT JOIN dv_filed f ON f.municipality_code = q.municipality_code AND f.reference = q.reference
WHERE q.municipality_code = $1
ORDER BY q.filed_at DESC, q.request_id DESC
LIMIT 200
"""
FILED_ONE = """
SELECT q.request_id, q.reference, q.details_enc, f.state FROM dv_requests q
LEFT JOIN dv_filed f ON f.municipality_code = q.municipality_code AND f.reference = q.reference
WHERE q.municipality_code = $1 AND q.reference = $2
"""
INCOMING = """
SELECT i.reference, i.scheme, i.persons, i.state, i.refusal, i.answered_at, i.filed_at, i.entitlement_ids,
       u.login AS answered_by_login
FROM dv_incoming i
LEFT JOIN staff_users u ON u.municipality_code = i.municipality_code AND u.staff_id = i.answered_by
WHERE i.municipality_code = $1
ORDER BY i.state = 'filed' DESC, i.filed_at DESC
LIMIT 200
"""
INCOMING_ONE = """
SELECT i.reference, i.scheme, i.persons, i.state, i.refusal, i.answered_at, i.filed_at, i.entitlement_ids,
       i.digest_persons, i.digests
FROM dv_incoming i WHERE i.municipality_code = $1 AND i.reference = $2
"""
OPEN_INCOMING = "SELECT count(*) FROM dv_incoming WHERE municipality_code = $1 AND state = 'filed'"
# One matched entitlement of B with its program (for the shares) and its household on 基準日 (every member,
# whatever the program's ages: an evacuee outside them is excluded with a share of 0).
ENTITLEMENT = """
SELECT e.entitlement_id, e.program_id, e.household_no, e.members_counted, e.amount_yen, e.status,
       p.name AS program_name, p.base_date, p.unit, p.amount_yen AS unit_yen, p.child_amount_yen, p.child_age_under,
       p.min_age, p.max_age, p.national_scheme
FROM entitlements e JOIN programs p ON p.municipality_code = e.municipality_code AND p.program_id = e.program_id
WHERE e.municipality_code = $1 AND e.entitlement_id = $2
"""
LOCK_ENTITLEMENTS = """
SELECT entitlement_id FROM entitlements WHERE municipality_code = $1 AND entitlement_id = ANY($2::bigint[])
ORDER BY entitlement_id FOR UPDATE
"""
MEMBERS = """
SELECT r.resident_code, r.family_name, r.given_name, r.family_kana, r.given_kana, r.birth_date, r.relationship,
       r.is_head
FROM entitlements e
JOIN programs p ON p.municipality_code = e.municipality_code AND p.program_id = e.program_id
JOIN residents r ON r.municipality_code = e.municipality_code AND r.snapshot_id = e.snapshot_id
 AND ((r.household_no = e.household_no AND (r.household_changed_on IS NULL OR r.household_changed_on <= p.base_date))
      OR (r.prev_household_no = e.household_no AND r.household_changed_on > p.base_date))
WHERE e.municipality_code = $1 AND e.entitlement_id = $2
  AND r.birth_date <= p.base_date AND (r.moved_in_on IS NULL OR r.moved_in_on <= p.base_date)
  AND (r.removed_on IS NULL OR r.removed_on > p.base_date)
ORDER BY r.is_head DESC, r.birth_date
"""
# Every payment of the entitlements that is not cancelled, with its batch's state.
PAYMENTS = """
SELECT p.payment_id, p.entitlement_id, p.status, b.status AS batch_status
FROM payments p
LEFT JOIN payout_batches b ON b.municipality_code = p.municipality_code AND b.batch_id = p.batch_id
WHERE p.municipality_code = $1 AND p.entitlement_id = ANY($2::bigint[]) AND p.status <> 'cancelled'
FOR UPDATE OF p
"""
CANCEL_READY = """
UPDATE payments SET status = 'cancelled'
WHERE municipality_code = $1 AND entitlement_id = ANY($2::bigint[]) AND status = 'ready' AND batch_id IS NULL
"""
INSERT_EXCLUSIONS = """
INSERT INTO dv_exclusions (municipality_code, reference, entitlement_id, resident_code, person, counted, share_yen,
                           applied_by)
SELECT $1, $2, u.ent, u.code, u.person, u.counted, u.share, $3
FROM unnest($4::bigint[], $5::text[], $6::smallint[], $7::boolean[], $8::bigint[])
     AS u(ent, code, person, counted, share)
"""
REDUCE = """
UPDATE entitlements
SET members_counted = CASE WHEN members_counted - $3 > 0 THEN members_counted - $3 ELSE members_counted END,
    amount_yen = CASE WHEN members_counted - $3 > 0 THEN amount_yen - $4 ELSE amount_yen END,
    status = CASE WHEN members_counted - $3 > 0 THEN status ELSE 'withdrawn' END
WHERE municipality_code = $1 AND entitlement_id = $2
"""
ANSWER = "SELECT kyufu_dv_answer($1, $2, $3)"


# ---- shares: one person's amount by a program's rule (eligibility's rule, for one person) ---------------


def _years_before(day: dt.date, years: int) -> dt.date:
    """`day` minus `years` years, as PostgreSQL's date - interval (29 February → 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def share(program: asyncpg.Record | dict, birth_date: dt.date) -> tuple[bool, int]:
    """(counted, yen) of one person under a per-person program (`unit_yen`: its amount_yen), by the cut-offs
    eligibility uses (legal age on 基準日: born on or before it, within min/max age; a child under
    child_age_under gets child_amount_yen when the program has one)."""
    base = program["base_date"]
    after = base + dt.timedelta(days=1)
    counted = birth_date <= base and birth_date <= _years_before(after, program["min_age"] or 0)
    if counted and program["max_age"] is not None:
        counted = birth_date > _years_before(after, program["max_age"] + 1)
    if not counted:
        return False, 0
    child = birth_date > _years_before(after, program["child_age_under"])
    unit = int(program["unit_yen"])
    return True, int(program["child_amount_yen"] or unit) if child else unit


# ---- A: the municipality the evacuee lives in ---------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    name: str
    kana: str
    birth_date: dt.date
    resident_code: str | None


@dataclass(frozen=True)
class RequestForm:
    program_id: int
    registered_code: str
    evidence: str
    evidence_issued_on: dt.date
    address: str
    contact: str
    persons: tuple[Person, ...]


def _kana(text: str) -> str:
    value = unicodedata.normalize("NFKC", text or "").strip()
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in value)


def _date(text: object) -> dt.date | None:
    try:
        value = dt.date.fromisoformat(str(text or "").strip())
    except ValueError:
        return None
    return value if dt.date(1900, 1, 1) <= value <= dt.date.today() else None


def parse(data: dict[str, Any]) -> RequestForm:
    """The console form (p0_* the 申出者, p1_*… the members who fled with them; an empty row is skipped) as a
    RequestForm; InvalidInput lists every problem with its field's Japanese name."""
    problems: list[str] = []
    raw = str(data.get("program_id") or "").strip()
    program_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 18 else 0
    if not program_id:
        problems.append("給付を選んでください。")
    registered = unicodedata.normalize("NFKC", str(data.get("registered_code") or "")).strip()
    try:
        validate_code(registered)
    except MunicipalityCodeError:
        problems.append("住民票のある団体の地方公共団体コード（6桁）を正しく入力してください。")
    evidence = str(data.get("evidence") or "")
    if evidence not in EVIDENCE:
        problems.append("確認した書類（保護命令または支援センター等の証明書）を選んでください。")
    issued = _date(data.get("evidence_issued_on"))
    if issued is None:
        problems.append("書類の発行日を YYYY-MM-DD 形式で入力してください。")
    address = unicodedata.normalize("NFKC", str(data.get("address") or "")).strip()
    if not address or len(address) > 200:
        problems.append("現にお住まいの住所（避難先）を200文字以内で入力してください。")
    contact = unicodedata.normalize("NFKC", str(data.get("contact") or "")).strip()
    if len(contact) > 40:
        problems.append("連絡先は40文字以内で入力してください。")
    persons: list[Person] = []
    for i in range(MAX_PERSONS):
        fields = [str(data.get(f"p{i}_{f}") or "").strip() for f in ("name", "kana", "birth_date", "resident_code")]
        if i > 0 and not any(fields):
            continue
        who = "申出者" if i == 0 else f"同伴者{i}"
        name = unicodedata.normalize("NFKC", fields[0])
        kana = _kana(fields[1])
        born = _date(fields[2])
        code = unicodedata.normalize("NFKC", fields[3]).replace("-", "").replace(" ", "") or None
        if not name or len(name) > 60:
            problems.append(f"{who}の氏名を入力してください。")
        if not kana or len(kana) > 60 or not all("ァ" <= c <= "ヺ" or c in "ー 　" for c in kana):
            problems.append(f"{who}の氏名カナは全角カタカナで入力してください。")
        if born is None:
            problems.append(f"{who}の生年月日を YYYY-MM-DD 形式で入力してください。")
        if code is not None and not (code.isascii() and code.isdigit() and len(code) == 11):
            problems.append(f"{who}の住民票コードは11桁の数字です（分からなければ空欄）。")
        persons.append(Person(name, kana, born or dt.date.min, code))
    if problems:
        raise InvalidInput(" ".join(problems))
    assert issued is not None
    return RequestForm(program_id, registered, evidence, issued, address, contact, tuple(persons))


def new_reference() -> str:
    h = secrets.token_hex(6).upper()
    return REFERENCE_FORMAT.format(h[0:4], h[4:8], h[8:12])


def request_digests(key: bytes, scheme: str, persons: tuple[Person, ...]) -> tuple[list[int], list[str], list[bytes]]:
    """(person, kind, hash) of each person, as the registries' duplicate hashes are made: 住民票コード when
    known, and the normalised kana + birth date."""
    numbers, kinds, digests = [], [], []
    for n, p in enumerate(persons):
        if p.resident_code:
            numbers.append(n)
            kinds.append("resident_code")
            digests.append(digest(key, "resident_code", scheme, p.resident_code))
        name = normalise_kana(p.kana, "")
        if name is not None:
            numbers.append(n)
            kinds.append("name_birth")
            digests.append(digest(key, "name_birth", scheme, f"{name}|{p.birth_date.isoformat()}"))
    return numbers, kinds, digests


@dataclass(frozen=True)
class Filed:
    reference: str
    receipt_no: str
    amount_yen: int
    matched: bool


async def file_request(
    conn: asyncpg.Connection,
    key: bytes,
    cipher: FieldCipher,
    code: str,
    staff: Staff,
    form: RequestForm,
    account,
) -> Filed:
    """Record a 申出 in the municipality in scope (A) and send its hashes to the registered one (inside
    tenant_transaction(conn, code)). `account` is a BankAccount (app/intake/forms.py) of the evacuee."""
    staff.require("reviewer")
    if form.registered_code == code:
        raise InvalidInput("住民票のある団体が当団体です。DV等避難者の申出は、避難先の団体で受け付けます。")
    if await conn.fetchval(MUNICIPALITY, form.registered_code) is None:
        raise InvalidInput("住民票のある団体の地方公共団体コードは、このサービスに登録されていません。")
    program = await conn.fetchrow(PROGRAM, code, form.program_id)
    if program is None:
        raise NotFound("その給付はありません。")
    if program["national_scheme"] is None:
        raise InvalidInput("この給付には全国事業コードがありません。全国事業の給付だけが他の団体と照合できます。")
    if program["unit"] != "person":
        raise InvalidInput("世帯単位の給付では、避難者の申出による按分はできません（一人当たりの給付のみ）。")
    shares = [share(dict(program) | {"unit_yen": program["amount_yen"]}, p.birth_date) for p in form.persons]
    counted = sum(1 for c, _ in shares if c)
    amount = sum(y for _, y in shares)
    if counted == 0:
        raise InvalidInput("申出の方に、基準日に給付の対象となる方がいません（生年月日を確認してください）。")
    snapshot = await conn.fetchval(LATEST_RESIDENTS, code)
    if snapshot is None:
        raise Conflict("当団体の住民基本台帳が取り込まれていません。先に取り込んでください。")
    reference = new_reference()
    ent_id = await conn.fetchval(
        INSERT_ENTITLEMENT, code, form.program_id, snapshot, reference, counted, amount, f"dv: {counted} person(s)"
    )
    app_id = await conn.fetchval(RESERVE_APPLICATION)
    receipt = receipt_number(receipt_key(cipher.key), app_id)
    await conn.execute(
        INSERT_APPLICATION,
        code,
        app_id,
        ent_id,
        receipt,
        account.bank_code,
        account.branch_code,
        account.account_type,
        cipher.encrypt("applications", "account_number", app_id, account.account_number),
        cipher.encrypt("applications", "holder_kana", app_id, account.holder_kana),
    )
    await conn.execute(
        ACCOUNT_KEY,
        code,
        app_id,
        account_key(cipher, account.bank_code, account.branch_code, account.account_type, account.account_number),
    )
    request_id = await conn.fetchval(RESERVE_REQUEST)
    details = {
        "persons": [
            {"name": p.name, "kana": p.kana, "birth_date": p.birth_date.isoformat(), "resident_code": p.resident_code}
            for p in form.persons
        ],
        "address": form.address,
        "contact": form.contact,
    }
    await conn.execute(
        INSERT_REQUEST,
        code,
        request_id,
        reference,
        form.program_id,
        form.registered_code,
        form.evidence,
        form.evidence_issued_on,
        len(form.persons),
        cipher.encrypt("dv_requests", "details", request_id, json.dumps(details, ensure_ascii=False)),
        ent_id,
        app_id,
        staff.staff_id,
    )
    numbers, kinds, digests = request_digests(key, program["national_scheme"], form.persons)
    try:
        async with conn.transaction():
            matched = await conn.fetchval(
                FILE,
                key_id(key),
                reference,
                form.program_id,
                ent_id,
                form.registered_code,
                len(form.persons),
                numbers,
                kinds,
                digests,
            )
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name == "duplicate_key_current":
            raise DuplicateKeyNotCurrent(
                "KYUFU_DUPLICATE_KEY は現在の重複照合キーではありません。新しいキーで起動し直してください。"
            ) from None
        if exc.constraint_name == "dv_requests_registered_scheme":
            raise InvalidInput(
                "住民票のある団体は、この全国事業の給付を照合できる状態にしていません（団体コードを確認してください）。"
            ) from None
        raise
    await audit.append(
        conn,
        code,
        staff,
        "dv.file",
        "dv_request",
        reference,
        {
            "program_id": form.program_id,
            "registered_municipality_code": form.registered_code,
            "evidence": form.evidence,
            "persons": len(form.persons),
            "entitlement_id": ent_id,
            "application_id": app_id,
            "matched": bool(matched),
        },
    )
    return Filed(reference, receipt, amount, bool(matched))


async def filed(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    """A's requests with B's answer: ids, codes and states only."""
    return await conn.fetch(FILED, code)


def parse_reference(text: str) -> str:
    value = unicodedata.normalize("NFKC", text or "").strip().upper()
    parts = value.split("-")
    if (
        len(parts) != 4
        or parts[0] != "V"
        or any(len(p) != 4 or not all(c in "0123456789ABCDEF" for c in p) for p in parts[1:])
    ):
        raise NotFound("その参照番号の申出はありません。")
    return value


async def filed_detail(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, staff: Staff, reference: str
) -> dict[str, Any]:
    """What A recorded, decrypted, for its reviewer: an audited personal-data view."""
    staff.require("reviewer", "admin")
    row = await conn.fetchrow(FILED_ONE, code, parse_reference(reference))
    if row is None:
        raise NotFound("その参照番号の申出はありません。")
    try:
        details = json.loads(cipher.decrypt_str("dv_requests", "details", row["request_id"], row["details_enc"]))
    except DecryptionError:
        details = None
    await audit.append(conn, code, staff, "personal_data.view", "dv_request", row["reference"], {"purpose": "dv"})
    return {"reference": row["reference"], "state": row["state"], "details": details}


# ---- B: the registered municipality -------------------------------------------------------------------------


async def incoming(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    """The requests naming this municipality: reference, how many people, state. Not who filed them."""
    return await conn.fetch(INCOMING, code)


async def open_incoming(conn: asyncpg.Connection, code: str) -> int:
    return await conn.fetchval(OPEN_INCOMING, code)


async def _matches(conn: asyncpg.Connection, key: bytes, code: str, row: asyncpg.Record) -> list[dict[str, Any]]:
    """For each matched entitlement: its members whose hashes the request carries (by person), with shares."""
    wanted: dict[bytes, int] = {bytes(d): int(n) for n, d in zip(row["digest_persons"], row["digests"])}
    out = []
    for ent_id in row["entitlement_ids"]:
        ent = await conn.fetchrow(ENTITLEMENT, code, ent_id)
        if ent is None or ent["national_scheme"] != row["scheme"]:
            continue
        found = []
        for m in await conn.fetch(MEMBERS, code, ent_id):
            name = normalise_kana(m["family_kana"], m["given_kana"])
            hashes = [digest(key, "resident_code", row["scheme"], m["resident_code"])]
            if name is not None:
                hashes.append(digest(key, "name_birth", row["scheme"], f"{name}|{m['birth_date'].isoformat()}"))
            persons = {wanted[h] for h in hashes if h in wanted}
            if len(persons) == 1:
                counted, yen = share(ent, m["birth_date"])
                found.append({"person": persons.pop(), "member": m, "counted": counted, "share_yen": yen})
        out.append({"entitlement": ent, "members": found})
    return out


async def incoming_detail(conn: asyncpg.Connection, key: bytes, code: str, staff: Staff, reference: str) -> dict:
    """One request for B's reviewer: B's own members it names, by hashing the matched households again, and
    the payments of those entitlements. A personal-data view of B's own residents: audited."""
    staff.require("reviewer", "admin")
    row = await conn.fetchrow(INCOMING_ONE, code, parse_reference(reference))
    if row is None:
        raise NotFound("その参照番号の申出はありません。")
    matches = await _matches(conn, key, code, row)
    ids = [m["entitlement"]["entitlement_id"] for m in matches]
    payments = [dict(p) for p in await conn.fetch(PAYMENTS.replace("FOR UPDATE OF p", ""), code, ids)] if ids else []
    found = {f["person"] for m in matches for f in m["members"]}
    await audit.append(
        conn,
        code,
        staff,
        "personal_data.view",
        "dv_request",
        row["reference"],
        {"purpose": "dv", "members_shown": sum(len(m["members"]) for m in matches)},
    )
    return {
        "request": row,
        "matches": matches,
        "payments": payments,
        "complete": found == set(range(row["persons"])),
    }


async def exclude(conn: asyncpg.Connection, key: bytes, code: str, staff: Staff, reference: str) -> dict[int, int]:
    """B takes every person of the request out of its entitlement(s) and answers 'excluded' (inside
    tenant_transaction). Returns {entitlement id: yen taken off}."""
    staff.require("reviewer")
    reference = parse_reference(reference)
    row = await conn.fetchrow(INCOMING_ONE, code, reference)
    if row is None:
        raise NotFound("その参照番号の申出はありません。")
    if row["state"] != "filed":
        raise Conflict("この申出には既に回答しています。")
    ids = list(row["entitlement_ids"])
    if ids:
        # A draft freezing a payment of these households at this moment either went first (we see it in a
        # batch) or waits for these row locks; so does a second reviewer excluding the same request, who then
        # reads the answer the first one committed (below) instead of writing the exclusions twice.
        await conn.execute(LOCK_ENTITLEMENTS, code, ids)
        row = await fetch_always(conn, INCOMING_ONE, code, reference)  # requests are never deleted
        if row["state"] != "filed":
            raise Conflict("この申出には既に回答しています。")
    matches = await _matches(conn, key, code, row)
    found = [(m["entitlement"], f) for m in matches for f in m["members"]]
    persons = [f["person"] for _, f in found]
    if sorted(persons) != list(range(row["persons"])):
        raise Conflict(
            "申出のすべての方を、当団体の住民記録で一人ずつ特定できません。確認のうえ「住民記録に見つからない」と回答してください。"
        )
    for m in matches:
        ent = m["entitlement"]
        counted = sum(1 for f in m["members"] if f["counted"])
        left = ent["amount_yen"] - sum(f["share_yen"] for f in m["members"])
        if m["members"] and (ent["unit"] != "person" or (ent["members_counted"] > counted and left <= 0)):
            # A household-unit benefit has no per-person share to take off (docs/proxy-and-dv.md, not done).
            raise Conflict("この世帯の給付は一人当たりの額で按分できません。担当者間で確認してください。")
    for p in await conn.fetch(PAYMENTS, code, ids):
        if p["status"] in ("released", "paid", "returned") or p["batch_status"] in ("approved", "released"):
            raise Conflict(
                "この世帯には既に支払（承認済みの起案を含む）があるため除外できません。「支給済み」と回答してください。"
            )
        if p["status"] == "in_batch":
            raise Conflict(
                "この世帯の支払が承認前の起案に含まれています。起案を取り消してから除外してください（取り消すまで承認はできません）。"
            )
    await conn.execute(CANCEL_READY, code, ids)
    await conn.execute(
        INSERT_EXCLUSIONS,
        code,
        reference,
        staff.staff_id,
        [e["entitlement_id"] for e, _ in found],
        [f["member"]["resident_code"] for _, f in found],
        [f["person"] for _, f in found],
        [f["counted"] for _, f in found],
        [f["share_yen"] for _, f in found],
    )
    taken: dict[int, int] = {}
    for m in matches:
        ent = m["entitlement"]
        if not m["members"]:
            continue
        members = sum(1 for f in m["members"] if f["counted"])
        yen = sum(f["share_yen"] for f in m["members"])
        await conn.execute(REDUCE, code, ent["entitlement_id"], members, yen)
        taken[ent["entitlement_id"]] = yen
    await conn.execute(ANSWER, reference, "excluded", staff.staff_id)
    await audit.append(
        conn,
        code,
        staff,
        "dv.exclude",
        "dv_request",
        reference,
        {"entitlements": sorted(taken), "persons": row["persons"], "share_yen": sum(taken.values())},
    )
    return taken


async def refuse(conn: asyncpg.Connection, code: str, staff: Staff, reference: str, outcome: str) -> None:
    """B answers that it cannot exclude: 'not_found' or 'already_paid'. A's entitlement stays held."""
    staff.require("reviewer")
    if outcome not in REFUSALS:
        raise InvalidInput("回答（outcome）を選んでください。")
    reference = parse_reference(reference)
    try:
        async with conn.transaction():
            await conn.execute(ANSWER, reference, outcome, staff.staff_id)
    except asyncpg.NoDataFoundError:
        raise NotFound("その参照番号の申出はありません。") from None
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name != "dv_requests_answered":
            raise
        raise Conflict("この申出には既に回答しています。") from None
    await audit.append(conn, code, staff, "dv.refuse", "dv_request", reference, {"outcome": outcome})

"""Paper intake keyed twice (ベリファイ入力): boxes of returned 申請書, two clerks' entries, the comparison, the
third clerk's decision, 不備 and the 不備返戻 letters. No HTTP here: the console (app/staff/web/paper.py) and
`kyufu demo e2e` call these functions.

The path of one form:

1. A box arrives (`receive_box`): 箱番号, 受付日 and the number of forms counted into it. One paper_forms
   row per form (通番 1..n) is made with it, so every physical form has a place and the box a count to
   reconcile against (`boxes`, `box`).
2. A clerk with the 入力 role keys it (`key_entry`, entry 1), then a different clerk keys it again (entry 2;
   the database refuses the same person twice: paper_entries_different_clerks). Neither sees the other's
   entry nor the registry's data: they type what the paper says.
3. Entry 2 is compared with entry 1 field by field (`differences`). A match is decided at once; a mismatch
   (or a form that agrees that only some members want the benefit) waits for a third clerk, a reviewer,
   who sees both entries (`resolution_view`, an audited personal-data view) and keys the decision
   (`resolve`, entry 3; again someone who keyed neither).
4. Deciding (`_decide`): missing attachments or illegible items make a 不備 record (a 不備返戻 letter is
   exported later: `export_deficiency_letters`); otherwise the entry is submitted through the one
   once-only claim path (app/intake/claims.py, channel 'paper') in the same transaction. A household that
   already applied (online, or on another paper form) comes back as a duplicate: the form is 'duplicate'
   with that application, and the clerk is shown its receipt number and channel.

Everything a request writes is in its one transaction: a refused entry writes nothing.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from app import audit, csvsafe
from app.crypto import DecryptionError, FieldCipher
from app.errors import Conflict, InvalidInput, NotFound
from app.intake.claims import submit_application
from app.intake.forms import BankAccount, FormInvalid, parse_bank
from app.intake.signin import municipality_keys
from app.principals import Staff
from app.registry.letters import InvalidAccessCode, format_access_code, normalise_access_code
from payouts.accounts import HOLDER_MAX_WIDTH
from payouts.kana import ZenginKanaError, normalise

KEYERS = ("keyer",)
RESOLVERS = ("reviewer",)
RECEIVERS = ("keyer", "reviewer")
VIEWERS = ("keyer", "reviewer", "admin")
LETTER_EXPORTERS = ("reviewer", "admin")
MAX_FORMS_PER_BOX = 2000  # paper_boxes CHECK

STATE_LABELS = {
    "received": "未入力",
    "keyed_once": "1回目入力済",
    "to_resolve": "裁定待ち",
    "submitted": "受付済",
    "duplicate": "申請済の世帯（重複）",
    "closed": "辞退・取下げ済",
    "deficient": "不備",
}
RESOLVE_REASONS = {
    "mismatch": "2人の入力が一致しない",
    "members_partial": "受給を希望しない世帯員がいる（世帯全員分でのみ支給できるため確認が必要）",
}
DEFICIENCY_LABELS = {
    "id_document_missing": "本人確認書類の写しが添付されていません",
    "account_document_missing": "振込先口座を確認できる書類の写しが添付されていません",
    "identifier_illegible": "確認書番号（世帯番号）が記入されていないか読み取れません",
    "members_illegible": "受給を希望する方の記入がないか読み取れません",
    "account_illegible": "振込先口座の記入がないか読み取れません",
    "holder_illegible": "口座名義（カナ）の記入がないか読み取れません",
    "members_partial": "受給を希望しない方がいます（世帯全員分でのご申請をご確認ください）",
}
ILLEGIBLE = ("identifier", "members", "account", "holder")
ILLEGIBLE_LABELS = {
    "identifier": "確認書番号・世帯番号",
    "members": "受給を希望する世帯員",
    "account": "振込先口座",
    "holder": "口座名義（カナ）",
}
# The compared fields, in the order of the paper form, with the names the clerk sees.
FIELD_LABELS = {
    "identifier": "確認書番号・世帯番号",
    "members": "受給を希望する世帯員",
    "bank_code": "金融機関コード",
    "branch_code": "支店コード",
    "account_type": "預金種目",
    "account_number": "口座番号",
    "holder_kana": "口座名義（カナ）",
    "id_document": "本人確認書類",
    "account_document": "口座確認書類",
    "illegible": "判読不能・記入なしの項目",
}

# ---- SQL --------------------------------------------------------------------------------------------

PROGRAM = "SELECT program_id, name, payment_mode FROM programs WHERE municipality_code = $1 AND program_id = $2"
PROGRAMS = """
SELECT program_id, name, payment_mode FROM programs
WHERE municipality_code = $1 AND payment_mode IN ('letter', 'application') ORDER BY program_id
"""
INSERT_BOX = """
INSERT INTO paper_boxes (municipality_code, program_id, box_no, received_on, form_count, received_by)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (municipality_code, box_no) DO NOTHING
RETURNING box_id
"""
# One row per physical form, 通番 1..n, made with the box.
INSERT_FORMS = """
INSERT INTO paper_forms (municipality_code, box_id, seq) SELECT $1, $2, s FROM generate_series(1, $3) AS s
"""
# A form found in the box after it was counted: the count grows by one and the form takes the next 通番
# (the row lock on the box keeps two additions at once from taking the same number).
ADD_FORM = """
WITH box AS (
    UPDATE paper_boxes SET form_count = form_count + 1
    WHERE municipality_code = $1 AND box_id = $2 AND form_count < 2000
    RETURNING box_id, form_count
)
INSERT INTO paper_forms (municipality_code, box_id, seq) SELECT $1, box_id, form_count FROM box
RETURNING seq
"""
BOXES = """
SELECT b.box_id, b.box_no, b.received_on, b.form_count, b.received_at, p.name AS program_name,
       count(f.form_id) AS forms,
       count(*) FILTER (WHERE f.state = 'received') AS received,
       count(*) FILTER (WHERE f.state = 'keyed_once') AS keyed_once,
       count(*) FILTER (WHERE f.state = 'to_resolve') AS to_resolve,
       count(*) FILTER (WHERE f.state = 'submitted') AS submitted,
       count(*) FILTER (WHERE f.state = 'duplicate') AS duplicate,
       count(*) FILTER (WHERE f.state = 'closed') AS closed,
       count(*) FILTER (WHERE f.state = 'deficient') AS deficient
FROM paper_boxes b
JOIN programs p ON p.municipality_code = b.municipality_code AND p.program_id = b.program_id
LEFT JOIN paper_forms f ON f.municipality_code = b.municipality_code AND f.box_id = b.box_id
WHERE b.municipality_code = $1
GROUP BY b.municipality_code, b.box_id, p.name
ORDER BY b.received_on DESC, b.box_no
"""
BOX = """
SELECT b.box_id, b.box_no, b.received_on, b.form_count, b.received_at, b.program_id, p.name AS program_name,
       p.payment_mode
FROM paper_boxes b JOIN programs p ON p.municipality_code = b.municipality_code AND p.program_id = b.program_id
WHERE b.municipality_code = $1 AND b.box_id = $2
"""
# The forms of a box with who keyed them and, for a decided form, its application (its receipt number and
# channel: for a duplicate, the channel the household used first).
BOX_FORMS = """
SELECT f.form_id, f.seq, f.state, f.resolve_reason, f.decided_at, f.application_id,
       a.receipt_no, a.channel AS application_channel, d.codes AS deficiency_codes,
       (SELECT array_agg(u.login ORDER BY e.entry_no) FROM paper_entries e
        JOIN staff_users u ON u.municipality_code = e.municipality_code AND u.staff_id = e.keyed_by
        WHERE e.municipality_code = f.municipality_code AND e.form_id = f.form_id) AS keyed_by
FROM paper_forms f
LEFT JOIN applications a ON a.municipality_code = f.municipality_code AND a.application_id = f.application_id
LEFT JOIN paper_deficiencies d ON d.municipality_code = f.municipality_code AND d.form_id = f.form_id
WHERE f.municipality_code = $1 AND f.box_id = $2
ORDER BY f.seq
"""
BOX_EXISTS = "SELECT 1 FROM paper_boxes WHERE municipality_code = $1 AND box_id = $2"
# The next form of the box this clerk can key: not decided, not waiting for a decision, and not keyed by
# them already.
NEXT_FORM = """
SELECT f.form_id FROM paper_forms f
WHERE f.municipality_code = $1 AND f.box_id = $2 AND f.state IN ('received', 'keyed_once')
  AND NOT EXISTS (SELECT 1 FROM paper_entries e WHERE e.municipality_code = f.municipality_code
                  AND e.form_id = f.form_id AND e.keyed_by = $3)
ORDER BY f.seq LIMIT 1
"""
# FOR UPDATE OF f: two clerks saving entry 2 of one form at once are serialised here; the second sees the
# first's entry (and the form's new state) and is refused instead of both being compared with entry 1.
FORM = """
SELECT f.form_id, f.box_id, f.seq, f.state, f.resolve_reason, f.entitlement_id, f.application_id, f.decided_at,
       b.box_no, b.program_id, p.payment_mode, p.name AS program_name
FROM paper_forms f
JOIN paper_boxes b ON b.municipality_code = f.municipality_code AND b.box_id = f.box_id
JOIN programs p ON p.municipality_code = b.municipality_code AND p.program_id = b.program_id
WHERE f.municipality_code = $1 AND f.form_id = $2
"""
LOCK_FORM = FORM + "FOR UPDATE OF f"
ENTRIES = """
SELECT e.entry_no, e.keyed_by, u.login, e.keyed_at, e.access_code, e.household_no, e.entitlement_id, e.members,
       e.bank_code, e.branch_code, e.account_type, e.account_number_enc, e.holder_kana_enc,
       e.id_document, e.account_document, e.illegible
FROM paper_entries e JOIN staff_users u ON u.municipality_code = e.municipality_code AND u.staff_id = e.keyed_by
WHERE e.municipality_code = $1 AND e.form_id = $2
ORDER BY e.entry_no
"""
INSERT_ENTRY = """
INSERT INTO paper_entries (municipality_code, form_id, entry_no, keyed_by, access_code, household_no, entitlement_id,
    members, bank_code, branch_code, account_type, account_number_enc, holder_kana_enc, id_document,
    account_document, illegible)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
"""
SET_STATE = """
UPDATE paper_forms SET state = $3, resolve_reason = coalesce($4, resolve_reason), entitlement_id = $5,
       application_id = $6, decided_entry = $7, decided_at = CASE WHEN $7::smallint IS NULL THEN NULL ELSE now() END
WHERE municipality_code = $1 AND form_id = $2
"""
BY_ACCESS_CODE = """
SELECT e.entitlement_id, e.members_counted FROM letters l
JOIN entitlements e ON e.municipality_code = l.municipality_code AND e.entitlement_id = l.entitlement_id
WHERE l.municipality_code = $1 AND l.access_code = $2 AND e.program_id = $3
"""
BY_HOUSEHOLD = """
SELECT entitlement_id, members_counted FROM entitlements
WHERE municipality_code = $1 AND program_id = $2 AND household_no = $3
"""
MEMBERS_COUNTED = "SELECT members_counted FROM entitlements WHERE municipality_code = $1 AND entitlement_id = $2"
INSERT_DEFICIENCY = """
INSERT INTO paper_deficiencies (municipality_code, form_id, entitlement_id, codes, recorded_by)
VALUES ($1, $2, $3, $4, $5)
"""
OUTCOME = """
SELECT f.form_id, f.seq, f.state, f.resolve_reason, b.box_no, a.receipt_no, a.channel AS application_channel,
       d.codes AS deficiency_codes
FROM paper_forms f
JOIN paper_boxes b ON b.municipality_code = f.municipality_code AND b.box_id = f.box_id
LEFT JOIN applications a ON a.municipality_code = f.municipality_code AND a.application_id = f.application_id
LEFT JOIN paper_deficiencies d ON d.municipality_code = f.municipality_code AND d.form_id = f.form_id
WHERE f.municipality_code = $1 AND f.form_id = $2
"""
DEFICIENCIES = """
SELECT d.form_id, d.codes, d.recorded_at, d.letter_exported_at, d.entitlement_id, b.box_no, f.seq, b.received_on,
       e.household_no
FROM paper_deficiencies d
JOIN paper_forms f ON f.municipality_code = d.municipality_code AND f.form_id = d.form_id
JOIN paper_boxes b ON b.municipality_code = f.municipality_code AND b.box_id = f.box_id
LEFT JOIN entitlements e ON e.municipality_code = d.municipality_code AND e.entitlement_id = d.entitlement_id
WHERE d.municipality_code = $1
ORDER BY d.letter_exported_at DESC NULLS FIRST, b.box_no, f.seq
LIMIT 500
"""
# The 不備返戻 letters not yet printed, with where to send them (the head of household on the registry).
# FOR UPDATE OF d: two exports at once cannot both print the same letters.
TO_EXPORT = """
SELECT d.form_id, d.codes, b.box_no, f.seq, b.received_on, e.household_no, p.name AS program_name,
       r.family_name, r.given_name, r.address
FROM paper_deficiencies d
JOIN paper_forms f ON f.municipality_code = d.municipality_code AND f.form_id = d.form_id
JOIN paper_boxes b ON b.municipality_code = f.municipality_code AND b.box_id = f.box_id
JOIN programs p ON p.municipality_code = b.municipality_code AND p.program_id = b.program_id
JOIN entitlements e ON e.municipality_code = d.municipality_code AND e.entitlement_id = d.entitlement_id
JOIN residents r ON r.municipality_code = e.municipality_code AND r.snapshot_id = e.snapshot_id
                 AND r.resident_code = e.head_resident_code
WHERE d.municipality_code = $1 AND d.letter_exported_at IS NULL
ORDER BY b.box_no, f.seq
FOR UPDATE OF d
"""
MARK_EXPORTED = """
UPDATE paper_deficiencies SET letter_exported_at = now()
WHERE municipality_code = $1 AND form_id = ANY($2::bigint[]) AND letter_exported_at IS NULL
"""
EXPORT_HEADER = ["箱番号", "通番", "受付日", "給付事業", "世帯番号", "宛名", "住所", "不備の内容"]


class EntryInvalid(InvalidInput):
    """What a clerk keyed cannot be saved; `errors` maps each form field to its Japanese message (the
    message lists them all). Nothing was written."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("入力内容を確認してください: " + " ".join(errors.values()), field_errors=errors)


# ---- boxes ------------------------------------------------------------------------------------------

_BOX_NO = re.compile(r"[0-9A-Z][0-9A-Z-]{0,19}")


async def programs(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    """Programs a paper 申請書 can be returned for (確認書型 and 申請型; プッシュ型 needs no application)."""
    return await conn.fetch(PROGRAMS, code)


async def receive_box(
    conn: asyncpg.Connection,
    code: str,
    staff: Staff,
    program_id: object,
    box_no: str,
    received_on: dt.date,
    form_count: object,
) -> int:
    """Record a box of returned forms and one form per 通番; returns the box id."""
    staff.require(*RECEIVERS)
    errors: dict[str, str] = {}
    box_no = unicodedata.normalize("NFKC", box_no or "").strip().upper()
    if not _BOX_NO.fullmatch(box_no):
        errors["box_no"] = "箱番号は英数字とハイフン20文字以内で入力してください。"
    count = _digits(form_count)
    if count is None or not 1 <= count <= MAX_FORMS_PER_BOX:
        errors["form_count"] = f"枚数は1〜{MAX_FORMS_PER_BOX}の半角数字で入力してください。"
    pid = _digits(program_id)
    program = await conn.fetchrow(PROGRAM, code, pid) if pid is not None else None
    if program is None or program["payment_mode"] not in ("letter", "application"):
        errors["program_id"] = "給付事業を選んでください。"
    if errors:
        raise EntryInvalid(errors)
    assert count is not None and pid is not None
    box_id = await conn.fetchval(INSERT_BOX, code, pid, box_no, received_on, count, staff.staff_id)
    if box_id is None:
        raise Conflict("その箱番号は既に受け付けています。箱番号を確かめてください。")
    await conn.execute(INSERT_FORMS, code, box_id, count)
    await audit.append(
        conn,
        code,
        staff,
        "paper.box_receive",
        "paper_box",
        box_id,
        {"box_no": box_no, "program_id": pid, "forms": count, "received_on": received_on.isoformat()},
    )
    return box_id


async def add_form(conn: asyncpg.Connection, code: str, staff: Staff, box_id: int) -> int:
    """A form found in the box beyond its count: the box's count grows by one; returns the form's 通番."""
    staff.require(*RECEIVERS)
    if await conn.fetchval(BOX_EXISTS, code, box_id) is None:
        raise NotFound()
    seq = await conn.fetchval(ADD_FORM, code, box_id)
    if seq is None:
        raise Conflict(f"1箱の申請書は{MAX_FORMS_PER_BOX}枚までです。別の箱として受け付けてください。")
    await audit.append(conn, code, staff, "paper.box_add_form", "paper_box", box_id, {"seq": seq})
    return seq


def _digits(value: object) -> int | None:
    text = unicodedata.normalize("NFKC", str(value or "")).strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


async def boxes(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    """Every box with its count and its forms by state (the reconciliation: the states add up to the count)."""
    return await conn.fetch(BOXES, code)


async def box(conn: asyncpg.Connection, code: str, box_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(BOX, code, box_id)
    if row is None:
        raise NotFound()
    forms = await conn.fetch(BOX_FORMS, code, box_id)
    counts: dict[str, int] = {s: 0 for s in STATE_LABELS}
    for f in forms:
        counts[f["state"]] += 1
    return {"box": row, "forms": forms, "counts": counts}


async def next_form(conn: asyncpg.Connection, code: str, staff: Staff, box_id: int) -> int | None:
    """The next form (by 通番) of the box that this clerk can key, or None."""
    staff.require(*KEYERS)
    if await conn.fetchval(BOX_EXISTS, code, box_id) is None:
        raise NotFound()
    return await conn.fetchval(NEXT_FORM, code, box_id, staff.staff_id)


# ---- entries ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One clerk's reading of a form, validated. Illegible items are None and named in `illegible`."""

    access_code: str | None
    household_no: str | None
    entitlement_id: int | None
    members: tuple[int, ...] | None
    account: BankAccount | None  # the bank part; its holder_kana is a placeholder when the holder is illegible
    holder_kana: str | None
    id_document: bool
    account_document: bool
    illegible: frozenset[str]

    def compared(self) -> dict[str, object]:
        """The values two entries must agree on, by FIELD_LABELS name."""
        a = self.account
        return {
            "identifier": (self.access_code, self.household_no, self.entitlement_id),
            "members": self.members,
            "bank_code": a.bank_code if a else None,
            "branch_code": a.branch_code if a else None,
            "account_type": a.account_type if a else None,
            "account_number": a.account_number if a else None,
            "holder_kana": self.holder_kana,
            "id_document": self.id_document,
            "account_document": self.account_document,
            "illegible": tuple(sorted(self.illegible)),
        }

    def deficiencies(self) -> list[str]:
        """The 不備 codes of this reading: attachments missing, then the illegible items, in form order."""
        codes = [] if self.id_document else ["id_document_missing"]
        codes += [] if self.account_document else ["account_document_missing"]
        return codes + [f"{item}_illegible" for item in ILLEGIBLE if item in self.illegible]


def differences(a: Entry, b: Entry) -> list[str]:
    """The fields (FIELD_LABELS names, in form order) on which two entries differ."""
    ca, cb = a.compared(), b.compared()
    return [name for name in FIELD_LABELS if ca[name] != cb[name]]


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


def _checked(data: Mapping[str, Any], name: str) -> bool:
    return _text(data, name) in ("1", "on", "yes")


def _illegible(data: Mapping[str, Any]) -> frozenset[str]:
    getlist = getattr(data, "getlist", None)
    raw = getlist("illegible") if getlist else data.get("illegible") or []
    if isinstance(raw, str):
        raw = [raw]
    return frozenset(v for v in raw if v in ILLEGIBLE)


_SEPARATORS = re.compile(r"[\s,、，・.．/／]+")


def parse_members(text: str, counted: int | None) -> tuple[int, ...]:
    """Member numbers as keyed: "123" (one digit per member) or separated ("1,2,10"); sorted, each once.
    Raises ValueError with the clerk's message."""
    text = unicodedata.normalize("NFKC", text or "").strip()
    if not text:
        raise ValueError(
            "受給を希望する世帯員の番号を入力してください（記入がなければ「判読不能・記入なし」に印を付けます）。"
        )
    parts = [p for p in _SEPARATORS.split(text) if p] if _SEPARATORS.search(text) else list(text)
    if not all(p.isascii() and p.isdigit() and len(p) <= 2 for p in parts):
        raise ValueError("受給を希望する世帯員は、申請書の記載順の番号（例: 123 または 1,2,3）で入力してください。")
    numbers = sorted({int(p) for p in parts})
    limit = counted or 99
    if numbers[0] < 1 or numbers[-1] > limit:
        raise ValueError(f"受給を希望する世帯員の番号は1〜{limit}です（この世帯の対象者は{limit}人です）。")
    return tuple(numbers)


async def _identify(
    conn: asyncpg.Connection, code: str, form: asyncpg.Record, text: str
) -> tuple[str | None, str | None, int, int]:
    """(access code, household no, entitlement id, members counted) for what was keyed as the household."""
    if form["payment_mode"] == "letter":
        try:
            access_code = normalise_access_code(text)
        except InvalidAccessCode as exc:
            raise ValueError(str(exc)) from None
        row = await conn.fetchrow(BY_ACCESS_CODE, code, access_code, form["program_id"])
        if row is None:
            raise ValueError("この確認書番号は、この箱の給付事業の確認書にありません。番号を確かめてください。")
        return access_code, None, row["entitlement_id"], row["members_counted"]
    household_no = unicodedata.normalize("NFKC", text or "").strip()
    if not household_no or len(household_no) > 40 or not household_no.isprintable():
        # (a NUL would make PostgreSQL refuse the statement: a 500 instead of this message)
        raise ValueError("世帯番号を入力してください（40文字以内）。")
    row = await conn.fetchrow(BY_HOUSEHOLD, code, form["program_id"], household_no)
    if row is None:
        raise ValueError("この世帯番号は、この箱の給付事業の対象世帯にありません。番号を確かめてください。")
    return None, household_no, row["entitlement_id"], row["members_counted"]


# The bank fields of the entry form, as app/intake/forms.py names them.
BANK_FIELDS = ("bank_code", "branch_code", "account_type", "account_number", "yucho_kigou", "yucho_bangou")
_PLACEHOLDER_HOLDER = "ｱ"


async def parse_entry(conn: asyncpg.Connection, code: str, form: asyncpg.Record, data: Mapping[str, Any]) -> Entry:
    """Validate one keyed form (every field's error at once, as EntryInvalid). Items marked illegible are
    not read."""
    errors: dict[str, str] = {}
    illegible = _illegible(data)
    access_code = household_no = entitlement_id = counted = None
    if "identifier" not in illegible:
        try:
            access_code, household_no, entitlement_id, counted = await _identify(
                conn, code, form, _text(data, "identifier")
            )
        except ValueError as exc:
            errors["identifier"] = str(exc)
    members = None
    if "members" not in illegible:
        try:
            members = parse_members(_text(data, "members"), counted)
        except ValueError as exc:
            errors["members"] = str(exc)
    holder = None
    if "holder" not in illegible:
        try:
            holder = normalise(_text(data, "holder_kana"), field="party", max_width=HOLDER_MAX_WIDTH).value
        except ZenginKanaError as exc:
            errors["holder_kana"] = "口座名義（カナ）: " + str(exc)
    account = None
    if "account" not in illegible:
        bank = {name: _text(data, name) for name in BANK_FIELDS}
        bank["account_type"] = bank["account_type"].strip() or "1"  # blank: 普通, the form's first box
        try:
            account = parse_bank(bank | {"holder_kana": holder or _PLACEHOLDER_HOLDER})
        except FormInvalid as exc:
            for e in exc.errors:
                if e.field != "holder_kana":
                    errors.setdefault(e.field, e.message)
    if errors:
        raise EntryInvalid(errors)
    return Entry(
        access_code,
        household_no,
        entitlement_id,
        members,
        account,
        holder,
        _checked(data, "id_document"),
        _checked(data, "account_document"),
        illegible,
    )


def _aad(form_id: int, entry_no: int) -> str:
    return f"{form_id}:{entry_no}"


async def _save_entry(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, staff: Staff, form_id: int, entry_no: int, e: Entry
) -> None:
    a, key = e.account, _aad(form_id, entry_no)
    try:
        await conn.execute(
            INSERT_ENTRY,
            code,
            form_id,
            entry_no,
            staff.staff_id,
            e.access_code,
            e.household_no,
            e.entitlement_id,
            list(e.members) if e.members is not None else None,
            a.bank_code if a else None,
            a.branch_code if a else None,
            a.account_type if a else None,
            cipher.encrypt("paper_entries", "account_number", key, a.account_number) if a else None,
            cipher.encrypt("paper_entries", "holder_kana", key, e.holder_kana) if e.holder_kana is not None else None,
            e.id_document,
            e.account_document,
            sorted(e.illegible),
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "paper_entries_different_clerks":
            raise Conflict("この申請書はあなたが既に入力しています。別の職員が入力してください。") from None
        raise Conflict("この申請書は他の職員が同時に入力しました。一覧から状態を確かめてください。") from None


def _stored_entry(cipher: FieldCipher, code: str, form_id: int, row: asyncpg.Record) -> Entry:
    """An entry as saved, decrypted, comparable with a fresh one."""
    key = _aad(form_id, row["entry_no"])
    try:
        number = (
            cipher.decrypt_str("paper_entries", "account_number", key, row["account_number_enc"])
            if row["account_number_enc"] is not None
            else None
        )
        holder = (
            cipher.decrypt_str("paper_entries", "holder_kana", key, row["holder_kana_enc"])
            if row["holder_kana_enc"] is not None
            else None
        )
    except DecryptionError:
        # Said without the values; the form goes to a third clerk, who keys it from the paper.
        raise Conflict(
            f"申請書（{form_id}）の{row['entry_no']}回目の入力を復号できません。運用担当に連絡してください。"
        ) from None
    account = None
    if row["bank_code"] is not None:
        account = BankAccount(
            row["bank_code"], row["branch_code"], row["account_type"], number or "", _PLACEHOLDER_HOLDER, "", ""
        )
    return Entry(
        row["access_code"],
        row["household_no"],
        row["entitlement_id"],
        tuple(row["members"]) if row["members"] is not None else None,
        account,
        holder,
        row["id_document"],
        row["account_document"],
        frozenset(row["illegible"]),
    )


@dataclass(frozen=True)
class Keyed:
    """What saving an entry did to its form: the new state, and what a match decided."""

    form_id: int
    box_id: int
    entry_no: int
    state: str
    differences: tuple[str, ...] = ()
    application_id: int | None = None


async def entry_page(conn: asyncpg.Connection, code: str, staff: Staff, form_id: int) -> dict[str, Any]:
    """The form a keyer is about to key: its place, and which entry theirs will be. Refused if it is not
    theirs to key."""
    staff.require(*KEYERS)
    form = await conn.fetchrow(FORM, code, form_id)
    if form is None:
        raise NotFound()
    entries = await conn.fetch(ENTRIES, code, form_id)
    _check_keyable(form, entries, staff)
    return {"paper_form": form, "entry_no": len(entries) + 1}


def _check_keyable(form: asyncpg.Record, entries: list[asyncpg.Record], staff: Staff) -> None:
    if any(e["keyed_by"] == staff.staff_id for e in entries):
        raise Conflict("この申請書はあなたが既に入力しています。2回目は別の職員が入力します（ベリファイ入力）。")
    if form["state"] not in ("received", "keyed_once"):
        raise Conflict(f"この申請書は既に2回入力されています（状態: {STATE_LABELS[form['state']]}）。")


async def key_entry(
    conn: asyncpg.Connection, settings, code: str, staff: Staff, form_id: int, data: Mapping[str, Any]
) -> Keyed:
    """Save a keyer's entry of a form. The first entry waits for a second clerk; the second is compared
    with it and, when they agree, decided (submitted through the claim path, or 不備) in this
    transaction; when they differ the form waits for a third clerk."""
    staff.require(*KEYERS)
    form = await conn.fetchrow(LOCK_FORM, code, form_id)
    if form is None:
        raise NotFound()
    entries = await conn.fetch(ENTRIES, code, form_id)
    _check_keyable(form, entries, staff)
    entry = await parse_entry(conn, code, form, data)
    cipher = (await municipality_keys(conn, settings.master_key_bytes, code)).cipher
    entry_no = len(entries) + 1
    await _save_entry(conn, cipher, code, staff, form_id, entry_no, entry)
    await audit.append(
        conn, code, staff, "paper.entry", "paper_form", form_id, {"entry_no": entry_no, "box_no": form["box_no"]}
    )
    if entry_no == 1:
        await conn.execute(SET_STATE, code, form_id, "keyed_once", None, None, None, None)
        return Keyed(form_id, form["box_id"], 1, "keyed_once")
    first = _stored_entry(cipher, code, form_id, entries[0])
    diff = differences(first, entry)
    if diff:
        await conn.execute(SET_STATE, code, form_id, "to_resolve", "mismatch", None, None, None)
        await audit.append(conn, code, staff, "paper.mismatch", "paper_form", form_id, {"fields": diff})
        return Keyed(form_id, form["box_id"], 2, "to_resolve", tuple(diff))
    state, app_id = await _decide(conn, settings, code, staff, form, entry, 2)
    return Keyed(form_id, form["box_id"], 2, state, (), app_id)


async def _decide(
    conn: asyncpg.Connection, settings, code: str, staff: Staff, form: asyncpg.Record, entry: Entry, entry_no: int
) -> tuple[str, int | None]:
    """Act on an entry both clerks (or the third) agree on; returns (state, application id)."""
    form_id, ent = form["form_id"], entry.entitlement_id
    codes = entry.deficiencies()
    if not codes and entry.members is not None and ent is not None:
        counted = await conn.fetchval(MEMBERS_COUNTED, code, ent)
        if entry.members != tuple(range(1, counted + 1)):
            if entry_no == 2:
                # kyufu pays an entitlement whole: a reviewer asks the household before anything is submitted.
                await conn.execute(SET_STATE, code, form_id, "to_resolve", "members_partial", ent, None, None)
                await audit.append(
                    conn, code, staff, "paper.mismatch", "paper_form", form_id, {"reason": "members_partial"}
                )
                return "to_resolve", None
            codes = ["members_partial"]
    if codes:
        await conn.execute(INSERT_DEFICIENCY, code, form_id, ent, codes, staff.staff_id)
        await conn.execute(SET_STATE, code, form_id, "deficient", None, ent, None, entry_no)
        await audit.append(conn, code, staff, "paper.deficient", "paper_form", form_id, {"codes": codes})
        return "deficient", None
    assert ent is not None and entry.account is not None and entry.holder_kana is not None
    account = BankAccount(**{**entry.account.to_session(), "holder_kana": entry.holder_kana})
    outcome = await submit_application(conn, settings, code, ent, account, "paper")
    state = {"created": "submitted", "duplicate": "duplicate", "closed": "closed"}.get(outcome.kind)
    if state is None:  # no idempotency key on this path, so nothing else can come back
        raise RuntimeError(f"unexpected claim outcome {outcome.kind}")
    await conn.execute(SET_STATE, code, form_id, state, None, ent, outcome.application_id, entry_no)
    await audit.append(
        conn,
        code,
        staff,
        "paper.submit" if state == "submitted" else f"paper.{state}",
        "paper_form",
        form_id,
        {"application_id": outcome.application_id, "entitlement_id": ent},
    )
    return state, outcome.application_id


# ---- the third clerk --------------------------------------------------------------------------------


def _shown(e: Entry) -> dict[str, str]:
    """An entry's values as the resolver reads them (Japanese, one string per field)."""
    a = e.account
    ident = format_access_code(e.access_code) if e.access_code else (e.household_no or "")
    return {
        "identifier": ident if "identifier" not in e.illegible else "（判読不能・記入なし）",
        "members": ",".join(map(str, e.members)) if e.members is not None else "（判読不能・記入なし）",
        "bank_code": f"{a.bank_code}" if a else "（判読不能・記入なし）",
        "branch_code": a.branch_code if a else "",
        "account_type": str(a.account_type) if a else "",
        "account_number": a.account_number if a else "",
        "holder_kana": e.holder_kana if e.holder_kana is not None else "（判読不能・記入なし）",
        "id_document": "添付あり" if e.id_document else "添付なし",
        "account_document": "添付あり" if e.account_document else "添付なし",
        "illegible": "・".join(ILLEGIBLE_LABELS[i] for i in ILLEGIBLE if i in e.illegible) or "なし",
    }


def _prefill(a: Entry, b: Entry, same: set[str]) -> dict[str, str]:
    """The resolver's form, filled where both entries agree (they key only what differs)."""
    out: dict[str, str] = {}
    shown = _shown(a)
    if "identifier" in same and "identifier" not in a.illegible:
        out["identifier"] = shown["identifier"]
    if "members" in same and a.members is not None:
        out["members"] = shown["members"]
    for name in ("bank_code", "branch_code", "account_type", "account_number"):
        if name in same and a.account is not None:
            out[name] = shown[name]
    if "holder_kana" in same and a.holder_kana is not None:
        out["holder_kana"] = a.holder_kana
    for name in ("id_document", "account_document"):
        if name in same and getattr(a, name):
            out[name] = "1"
    return out


async def resolution_view(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, staff: Staff, form_id: int
) -> dict[str, Any]:
    """Both entries of a form waiting for a decision, decrypted, with the fields that differ; recorded as a
    personal-data view. Only for a reviewer who keyed neither entry."""
    staff.require(*RESOLVERS)
    form = await conn.fetchrow(FORM, code, form_id)
    if form is None:
        raise NotFound()
    if form["state"] != "to_resolve":
        raise Conflict(f"この申請書は裁定待ちではありません（状態: {STATE_LABELS[form['state']]}）。")
    rows = await conn.fetch(ENTRIES, code, form_id)
    if any(r["keyed_by"] == staff.staff_id for r in rows):
        raise Conflict("この申請書を入力した職員は裁定できません。入力していない審査担当が裁定します。")
    first, second = (_stored_entry(cipher, code, form_id, r) for r in rows[:2])
    diff = differences(first, second)
    await audit.append(conn, code, staff, "personal_data.view", "paper_form", form_id, {"purpose": "paper_resolve"})
    return {
        "paper_form": form,
        "entries": [(rows[0]["login"], _shown(first)), (rows[1]["login"], _shown(second))],
        "differences": diff,
        "prefill": _prefill(first, second, set(FIELD_LABELS) - set(diff)),
    }


async def resolve(
    conn: asyncpg.Connection, settings, code: str, staff: Staff, form_id: int, data: Mapping[str, Any]
) -> Keyed:
    """The third clerk's decision: what the paper says, keyed as entry 3 and decided as a match would be."""
    staff.require(*RESOLVERS)
    form = await conn.fetchrow(LOCK_FORM, code, form_id)
    if form is None:
        raise NotFound()
    if form["state"] != "to_resolve":
        raise Conflict(f"この申請書は裁定待ちではありません（状態: {STATE_LABELS[form['state']]}）。")
    entry = await parse_entry(conn, code, form, data)
    cipher = (await municipality_keys(conn, settings.master_key_bytes, code)).cipher
    await _save_entry(conn, cipher, code, staff, form_id, 3, entry)
    await audit.append(conn, code, staff, "paper.resolve", "paper_form", form_id, {"box_no": form["box_no"]})
    state, app_id = await _decide(conn, settings, code, staff, form, entry, 3)
    return Keyed(form_id, form["box_id"], 3, state, (), app_id)


async def outcome(conn: asyncpg.Connection, code: str, form_id: int) -> asyncpg.Record | None:
    """A form's state and, once decided, its application's receipt number and channel (for the clerk)."""
    return await conn.fetchrow(OUTCOME, code, form_id)


# ---- 不備返戻 ----------------------------------------------------------------------------------------


async def deficiencies(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    return await conn.fetch(DEFICIENCIES, code)


async def export_deficiency_letters(conn: asyncpg.Connection, code: str, staff: Staff) -> list[list[str]]:
    """Rows of the 不備返戻 print file (EXPORT_HEADER) for the deficient forms whose household is known and
    whose letter has not been printed, marked printed. Write the file before the transaction commits (as
    app/registry/letters.py's export): a failed write rolls the marks back."""
    staff.require(*LETTER_EXPORTERS)
    rows = await conn.fetch(TO_EXPORT, code)
    lines = [
        [
            r["box_no"],
            str(r["seq"]),
            r["received_on"].isoformat(),
            r["program_name"],
            r["household_no"],
            f"{r['family_name']} {r['given_name']}",
            r["address"],
            "／".join(DEFICIENCY_LABELS[c] for c in r["codes"]),
        ]
        for r in rows
    ]
    if rows:
        await conn.execute(MARK_EXPORTED, code, [r["form_id"] for r in rows])
    await audit.append(conn, code, staff, "paper.letters_export", "paper_deficiency", "", {"letters": len(rows)})
    return lines


def export_csv(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    """The 不備返戻 print file: header and rows, CRLF, UTF-8 with a BOM or cp932, formula-safe (its names and
    addresses come from the registry extract; app/csvsafe.py)."""
    if encoding not in ("utf-8", "cp932"):
        raise InvalidInput("文字コードは utf-8 か cp932 を選んでください。")
    buf = io.StringIO()
    writer = csvsafe.writer(buf, lineterminator="\r\n")
    writer.writerow(EXPORT_HEADER)
    writer.writerows(rows)
    try:
        return buf.getvalue().encode("utf-8-sig" if encoding == "utf-8" else "cp932")
    except UnicodeEncodeError:
        # Raised inside the export's transaction: the letters stay unprinted for a utf-8 export.
        raise InvalidInput("cp932 で表せない文字（外字など）があります。utf-8 で出力してください。") from None

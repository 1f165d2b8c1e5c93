"""代理申請: someone applies for the 世帯主 at the counter, and staff key it in (issue 15, point 2).

Who may be a proxy (the 2020 rules): a member of the household (世帯員), a legal representative (法定代理人:
a parent of a minor head, a 成年後見人) or a person who cares for the 世帯主 day to day (平素から身の回りの
世話をしている方: a relative, a care worker). The channel is the console only: a proxy is identified by a
person looking at their ID and the documents that make them a proxy, which the resident site cannot do
(its letter sign-in identifies the household, not who is at the keyboard).

What staff record (`record`): the household (給付 + 世帯番号, as printed on the 申請書), the proxy's
relationship, name, kana and birth date (a household member is found in the registry by kana + birth date,
so the proxy is a known person), which documents were seen (REQUIRED says which each relationship needs),
whose account is paid and the account itself. The application goes through the same once-only claim path
as every channel (app/intake/claims.py: a household that already applied online or on paper gets the
first receipt back, and the attempt is recorded), with is_proxy and identification 'counter'; the proxy
row is written in the same transaction (migration 0026: application_proxies, the proxy's name encrypted
under the municipality's key, bound to the application).

Where the money goes: the 世帯主's account, or the proxy's own only when the program allows it
(programs.proxy_account_allowed; the trigger application_proxies_account_allowed refuses it otherwise).
Verification then checks the account's holder against the payee (the head, or the proxy: payouts/holder.py)
and always adds the reason 'proxy', so a reviewer decides (CHECK applications_proxy_reviewed).

Names and birth dates are personal data: they never go into a log line, an exception or the audit details
(which carry ids, codes and the relationship).
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from dataclasses import dataclass
from typing import Any

import asyncpg

from app import audit
from app.crypto import DecryptionError, FieldCipher
from app.errors import Conflict, InvalidInput, NotFound
from app.intake.claims import Outcome, submit_application
from app.intake.forms import BankAccount, FormInvalid, parse_bank
from app.principals import Staff

RELATIONSHIPS = {
    "household_member": "世帯員",
    "legal_representative": "法定代理人",
    "caregiver": "平素から世帯主の身の回りの世話をしている方",
}
EVIDENCE = {
    "proxy_identity": "代理人の本人確認書類",
    "delegation": "委任状（申請書の委任欄）",
    "legal_representation": "法定代理人であることの証明書類（戸籍謄本・登記事項証明書等）",
    "care_confirmation": "平素から世話をしていることの確認書類（介護サービスの契約書、民生委員の確認書等）",
    "account_document": "口座確認書類（通帳・キャッシュカードの写し）",
}
REQUIRED = {
    "household_member": ("proxy_identity", "delegation", "account_document"),
    "legal_representative": ("proxy_identity", "legal_representation", "account_document"),
    "caregiver": ("proxy_identity", "delegation", "care_confirmation", "account_document"),
}
PAYEES = {"head": "世帯主の口座", "proxy": "代理人の口座"}
NAME_MAX = 60

ENTITLEMENT = """
SELECT e.entitlement_id, e.snapshot_id, e.household_no, e.head_resident_code, e.status, e.dv_reference,
       p.proxy_account_allowed, p.name AS program_name
FROM entitlements e JOIN programs p ON p.municipality_code = e.municipality_code AND p.program_id = e.program_id
WHERE e.municipality_code = $1 AND e.program_id = $2 AND e.household_no = $3
"""
# The household's members in the entitlement's snapshot (as on 基準日: 前世帯番号 for a move after it).
MEMBERS = """
SELECT r.resident_code, r.family_kana, r.given_kana, r.birth_date
FROM entitlements e
JOIN programs p ON p.municipality_code = e.municipality_code AND p.program_id = e.program_id
JOIN residents r ON r.municipality_code = e.municipality_code AND r.snapshot_id = e.snapshot_id
 AND ((r.household_no = e.household_no AND (r.household_changed_on IS NULL OR r.household_changed_on <= p.base_date))
      OR (r.prev_household_no = e.household_no AND r.household_changed_on > p.base_date))
WHERE e.municipality_code = $1 AND e.entitlement_id = $2
"""
INSERT_PROXY = """
INSERT INTO application_proxies (municipality_code, application_id, relationship, proxy_resident_code, proxy_enc,
                                 evidence, pay_to_proxy, recorded_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
PROXY = """
SELECT x.application_id, x.relationship, x.proxy_resident_code, x.proxy_enc, x.evidence, x.pay_to_proxy,
       x.recorded_at, u.login AS recorded_by_login
FROM application_proxies x
LEFT JOIN staff_users u ON u.municipality_code = x.municipality_code AND u.staff_id = x.recorded_by
WHERE x.municipality_code = $1 AND x.application_id = $2
"""
# The console's list: proxy applications, newest first, ids and codes only.
RECENT = """
SELECT x.application_id, a.receipt_no, a.status, x.relationship, x.pay_to_proxy, x.recorded_at,
       e.household_no, pr.name AS program_name
FROM application_proxies x
JOIN applications a ON a.municipality_code = x.municipality_code AND a.application_id = x.application_id
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
JOIN programs pr ON pr.municipality_code = e.municipality_code AND pr.program_id = e.program_id
WHERE x.municipality_code = $1
ORDER BY x.recorded_at DESC, x.application_id DESC
LIMIT 100
"""
PROGRAMS = """
SELECT program_id, name, proxy_account_allowed FROM programs WHERE municipality_code = $1 ORDER BY program_id
"""
SET_ALLOWED = """
UPDATE programs SET proxy_account_allowed = $3 WHERE municipality_code = $1 AND program_id = $2 RETURNING program_id
"""


@dataclass(frozen=True)
class ProxyForm:
    """What staff typed, checked: `parse` raises InvalidInput naming every wrong field at once."""

    program_id: int
    household_no: str
    relationship: str
    name: str
    kana: str
    birth_date: dt.date
    evidence: tuple[str, ...]
    pay_to_proxy: bool


def _kana(text: str) -> str:
    """Kana as compared with the registry: NFKC, katakana, no spaces."""
    value = unicodedata.normalize("NFKC", text or "").replace(" ", "").replace("　", "")
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in value)


def parse(data: dict[str, Any]) -> ProxyForm:
    """The console form's fields (strings; `evidence` a list) as a ProxyForm; InvalidInput lists every
    problem, each naming its field in Japanese."""
    problems: list[str] = []
    program_raw = str(data.get("program_id") or "").strip()
    program_id = int(program_raw) if program_raw.isascii() and program_raw.isdigit() and len(program_raw) < 18 else 0
    if not program_id:
        problems.append("給付を選んでください。")
    household_no = unicodedata.normalize("NFKC", str(data.get("household_no") or "")).strip()
    if not household_no or len(household_no) > 40:
        problems.append("世帯番号（申請書に印字された番号）を入力してください。")
    relationship = str(data.get("relationship") or "")
    if relationship not in RELATIONSHIPS:
        problems.append("代理人と世帯主の関係を選んでください。")
    name = unicodedata.normalize("NFKC", str(data.get("proxy_name") or "")).strip()
    if not name or len(name) > NAME_MAX:
        problems.append(f"代理人の氏名を{NAME_MAX}文字以内で入力してください。")
    kana = _kana(str(data.get("proxy_kana") or ""))
    if not kana or len(kana) > NAME_MAX or not all("ァ" <= c <= "ヺ" or c == "ー" for c in kana):
        problems.append("代理人の氏名カナは全角カタカナで入力してください。")
    birth_date = dt.date.min
    try:
        birth_date = dt.date.fromisoformat(str(data.get("proxy_birth_date") or "").strip())
        if not dt.date(1900, 1, 1) <= birth_date <= dt.date.today():
            raise ValueError
    except ValueError:
        problems.append("代理人の生年月日を YYYY-MM-DD 形式で入力してください。")
    raw_evidence = data.get("evidence") or []
    evidence = tuple(e for e in EVIDENCE if e in set(raw_evidence))
    if relationship in REQUIRED:
        missing = [EVIDENCE[e] for e in REQUIRED[relationship] if e not in evidence]
        if missing:
            problems.append("確認した書類が足りません: " + "、".join(missing) + "。")
    payee = str(data.get("payee") or "")
    if payee not in PAYEES:
        problems.append("振込先（世帯主の口座か代理人の口座か）を選んでください。")
    if problems:
        raise InvalidInput(" ".join(problems))
    return ProxyForm(program_id, household_no, relationship, name, kana, birth_date, evidence, payee == "proxy")


_BANK_FIELDS = ("bank_code", "branch_code", "account_type", "account_number", "holder_kana")


def account(data: dict[str, Any]) -> BankAccount:
    """The account typed on the console form, by the rules of every channel (app/intake/forms.py);
    InvalidInput with each field's message (never the value)."""
    fields = {k: str(data.get(k) or "").strip() for k in _BANK_FIELDS}
    if not fields["account_type"].isdigit():
        fields["account_type"] = "1"
    try:
        return parse_bank(fields | {"account_type": int(fields["account_type"])})
    except FormInvalid as exc:
        raise InvalidInput(" ".join(e.message for e in exc.errors)) from None


@dataclass(frozen=True)
class Recorded:
    """The claim's outcome ('created', or 'duplicate' with the first application's receipt)."""

    outcome: Outcome
    application_id: int | None


async def programs(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    return await conn.fetch(PROGRAMS, code)


async def set_account_allowed(
    conn: asyncpg.Connection, code: str, staff: Staff, program_id: int, allowed: bool
) -> None:
    """The program setting: may a proxy be paid into their own account? An admin's decision, audited."""
    staff.require("admin")
    if await conn.fetchval(SET_ALLOWED, code, program_id, allowed) is None:
        raise NotFound("その給付はありません。")
    await audit.append(
        conn, code, staff, "program.proxy_account", "program", program_id, {"proxy_account_allowed": allowed}
    )


async def record(
    conn: asyncpg.Connection,
    settings,
    cipher: FieldCipher,
    code: str,
    staff: Staff,
    form: ProxyForm,
    account: BankAccount,
) -> Recorded:
    """Key a proxy's application (inside tenant_transaction(conn, code)); dispatch the verification job
    after commit (or leave it to the sweeper). A duplicate (the household already applied) is returned,
    not raised: the attempt stays recorded and the clerk is shown the first receipt."""
    staff.require("reviewer", "admin")
    ent = await conn.fetchrow(ENTITLEMENT, code, form.program_id, form.household_no)
    if ent is None or ent["dv_reference"] is not None:
        raise NotFound("この給付に、その世帯番号の受給権はありません。")
    if form.pay_to_proxy and not ent["proxy_account_allowed"]:
        raise InvalidInput(
            "この給付では代理人の口座への振込は認められていません。世帯主の口座を入力してください（振込先）。"
        )
    proxy_code = None
    if form.relationship == "household_member":
        found = [
            m
            for m in await conn.fetch(MEMBERS, code, ent["entitlement_id"])
            if _kana(m["family_kana"] + m["given_kana"]) == form.kana and m["birth_date"] == form.birth_date
        ]
        if len(found) != 1:
            raise InvalidInput(
                "代理人（世帯員）が、この世帯の住民記録に見つかりません。氏名カナと生年月日を確認してください。"
            )
        proxy_code = found[0]["resident_code"]
        if proxy_code == ent["head_resident_code"]:
            raise InvalidInput("世帯主ご本人の申請は代理申請ではありません（代理人と世帯主の関係）。")
    outcome = await submit_application(
        conn,
        settings,
        code,
        ent["entitlement_id"],
        account,
        "paper",
        applicant_resident_code=proxy_code,
        is_proxy=True,
        identification="counter",
    )
    if outcome.kind == "closed":
        raise Conflict("この世帯の給付は辞退または取り下げ済みのため、申請できません。")
    if outcome.kind != "created":
        return Recorded(outcome, None)
    app_id = outcome.application_id
    assert app_id is not None
    sealed = cipher.encrypt(
        "application_proxies",
        "proxy",
        app_id,
        json.dumps({"name": form.name, "kana": form.kana, "birth_date": form.birth_date.isoformat()}),
    )
    await conn.execute(
        INSERT_PROXY,
        code,
        app_id,
        form.relationship,
        proxy_code,
        sealed,
        list(form.evidence),
        form.pay_to_proxy,
        staff.staff_id,
    )
    await audit.append(
        conn,
        code,
        staff,
        "proxy.record",
        "application",
        app_id,
        {"relationship": form.relationship, "evidence": list(form.evidence), "pay_to_proxy": form.pay_to_proxy},
    )
    return Recorded(outcome, app_id)


def open_proxy(cipher: FieldCipher, row: asyncpg.Record) -> dict[str, str] | None:
    """The proxy's name, kana and birth date, or None when they do not decrypt."""
    try:
        return json.loads(cipher.decrypt_str("application_proxies", "proxy", row["application_id"], row["proxy_enc"]))
    except DecryptionError:
        return None


async def proxy_of(conn: asyncpg.Connection, cipher: FieldCipher, code: str, application_id: int) -> dict | None:
    """The proxy of an application, for the review screen (whose caller audits the view), or None."""
    row = await conn.fetchrow(PROXY, code, application_id)
    if row is None:
        return None
    return dict(row) | {"person": open_proxy(cipher, row)}


async def recent(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    return await conn.fetch(RECENT, code)

"""The bank settings form of /staff/admin/bank: form text → StoredBankSettings, with one Japanese message
per wrong field, and the names (never the values) of the fields a save changed, for the audit entry.

The rules themselves are payouts': zengin.BankSettings validates the header fields and
sealing.parse_recipients the age keys. This module only turns a form into their arguments and reports
every wrong field at once instead of the first one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from payouts import sealing, zengin
from payouts.settings_store import StoredBankSettings

# Form field → label, in screen order. `age_recipients` is one key per line; `transfer_designation`
# travels as "space" because browsers and form parsers are free to trim a lone " ".
LABELS = {
    "requester_code": "依頼人コード",
    "requester_name_kana": "依頼人名（半角カナ）",
    "bank_code": "仕向銀行番号",
    "bank_name_kana": "仕向銀行名（半角カナ）",
    "branch_code": "仕向支店番号",
    "branch_name_kana": "仕向支店名（半角カナ）",
    "account_type": "預金種目",
    "account_number": "口座番号",
    "separator": "レコード区切り",
    "clearing_house_fill": "手形交換所番号の埋め方",
    "transfer_designation": "振込指定区分",
    "reference_field": "支払番号の記録先",
    "allow_wo": "受取人名に「ｦ」を許可",
    "age_recipients": "暗号化の受取人（age 公開鍵）",
    "min_business_days_ahead": "起案の期限（振込指定日の何営業日前）",
}
MAX_RECIPIENTS = 10  # municipality_bank_settings CHECK (cardinality BETWEEN 1 AND 10)
MAX_DAYS_AHEAD = 30  # CHECK (min_business_days_ahead BETWEEN 0 AND 30)
SPACE = "space"

# A valid header: each field is checked alone against it, so every wrong field gets its own message
# (BankSettings stops at the first).
_VALID: dict[str, Any] = dict(
    requester_code="0",
    requester_name_kana="ｱ",
    bank_code="0000",
    branch_code="000",
    account_type=1,
    account_number="0",
    separator="crlf",
)
_BANK_FIELDS = tuple(f.name for f in fields(zengin.BankSettings))


@dataclass
class FormResult:
    """`settings` when every field is valid; otherwise `errors` (field → message). `values` re-fills the form."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    settings: StoredBankSettings | None = None


def form_values(stored: StoredBankSettings | None) -> dict[str, str]:
    """The form's text for stored settings (blank fields and the format's defaults if there are none)."""
    bank = stored.bank if stored else None
    values: dict[str, str] = {}
    for name in _BANK_FIELDS:
        value: Any = getattr(bank, name) if bank else _default(name)
        if name == "transfer_designation" and value == " ":
            value = SPACE
        values[name] = ("1" if value else "") if name == "allow_wo" else ("" if value is None else str(value))
    values["age_recipients"] = "\n".join(stored.age_recipients) if stored else ""
    values["min_business_days_ahead"] = str(stored.min_business_days_ahead) if stored else "2"
    return values


def _default(name: str) -> object:
    default = zengin.BankSettings.__dataclass_fields__[name].default
    return None if default is dataclasses.MISSING else default


def parse(form: Mapping[str, Any], *, updated_by: int) -> FormResult:
    """Check every field of a submitted form; never raises for bad input."""
    raw = {name: form.get(name) for name in LABELS}
    text = {name: value if isinstance(value, str) else "" for name, value in raw.items()}
    values = {name: (v if name == "age_recipients" else v.strip()) for name, v in text.items()}
    values["allow_wo"] = "1" if values["allow_wo"] else ""
    result = FormResult(values)

    args: dict[str, Any] = {name: values[name] for name in _BANK_FIELDS if name != "allow_wo"}
    args["allow_wo"] = bool(values["allow_wo"])
    if args["transfer_designation"] == SPACE:
        args["transfer_designation"] = " "
    account_type = values["account_type"]
    # An int for BankSettings to check; anything else stays text so it reports its own message.
    if account_type.isascii() and account_type.isdigit() and len(account_type) <= 2:
        args["account_type"] = int(account_type)
    for name in _BANK_FIELDS:
        try:
            zengin.BankSettings(**(_VALID | {name: args[name]}))
        except zengin.InvalidBankSettings as exc:
            result.errors[exc.field] = str(exc)

    recipients = [line.strip() for line in values["age_recipients"].splitlines() if line.strip()]
    try:
        sealing.parse_recipients(recipients)
        if len(recipients) > MAX_RECIPIENTS:
            result.errors["age_recipients"] = f"暗号化の受取人は{MAX_RECIPIENTS}件までです。"
        elif len(set(recipients)) != len(recipients):
            result.errors["age_recipients"] = "同じ公開鍵が2回以上書かれています。"
    except sealing.SealingError as exc:
        result.errors["age_recipients"] = str(exc)

    days = values["min_business_days_ahead"]
    if not (days.isascii() and days.isdigit() and len(days) <= 2 and int(days) <= MAX_DAYS_AHEAD):
        result.errors["min_business_days_ahead"] = f"起案の期限は0〜{MAX_DAYS_AHEAD}の半角数字で入力してください。"

    if not result.errors:
        bank = zengin.BankSettings(**args)  # every field passed alone; together they cannot conflict
        result.settings = StoredBankSettings(bank, tuple(recipients), int(days), updated_by)
    return result


def changed_fields(old: StoredBankSettings | None, new: StoredBankSettings) -> list[str]:
    """Names of the fields whose value differs (all of them for a first save), in screen order."""
    if old is None:
        return list(LABELS)
    out = [name for name in _BANK_FIELDS if getattr(old.bank, name) != getattr(new.bank, name)]
    if old.age_recipients != new.age_recipients:
        out.append("age_recipients")
    if old.min_business_days_ahead != new.min_business_days_ahead:
        out.append("min_business_days_ahead")
    return [name for name in LABELS if name in out]


__all__ = ["FormResult", "LABELS", "changed_fields", "form_values", "parse"]

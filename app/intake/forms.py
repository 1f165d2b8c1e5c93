"""What a resident sends, validated: pydantic for shapes, then the bank data and Zengin kana for meaning.

Every refusal is a `FieldError` list with a machine-readable location and type and a Japanese message
that names the field; the API returns the list with 422, the pages show each message at its field.
Messages never repeat the value (it may be an account number or a name).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.intake import banks
from payouts import accounts
from payouts.accounts import HOLDER_MAX_WIDTH, AccountInvalid
from payouts.kana import ZenginKanaError, normalise

# Zengin 総合振込 受取人名 is 30 single-byte characters.

LABELS = {
    "municipality_code": "地方公共団体コード",
    "access_code": "確認書番号",
    "pin": "暗証番号",
    "bank": "口座情報",
    "bank_code": "金融機関コード",
    "bank_query": "金融機関",
    "branch_code": "支店コード",
    "branch_query": "支店",
    "account_type": "預金種目",
    "account_number": "口座番号",
    "yucho_kigou": "記号（ゆうちょ銀行）",
    "yucho_bangou": "番号（ゆうちょ銀行）",
    "holder_kana": "口座名義（カナ）",
    "Idempotency-Key": "Idempotency-Key ヘッダー",
}

_GENERIC = {
    "missing": "{label}を入力してください。",
    "string_type": "{label}は文字列で入力してください。",
    "int_type": "{label}は数値で指定してください。",
    "int_parsing": "{label}は数値で指定してください。",
    "literal_error": "{label}の値が正しくありません。",
    "extra_forbidden": "{label}という項目は受け付けていません。",
    "string_too_long": "{label}が長すぎます。",
    "string_too_short": "{label}を入力してください。",
    "model_type": "{label}の形式が正しくありません。",
    "dict_type": "{label}の形式が正しくありません。",
    "json_invalid": "JSONとして読み取れません。",
}


@dataclass(frozen=True)
class FieldError:
    loc: tuple[str, ...]
    type: str
    message: str

    @property
    def field(self) -> str:
        return self.loc[-1] if self.loc else ""

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "type": self.type, "message": self.message}


class FormInvalid(Exception):
    """Input failed validation; `errors` says where and why (in Japanese)."""

    def __init__(self, errors: list[FieldError]):
        super().__init__(f"{len(errors)} invalid field(s): " + ", ".join(".".join(e.loc) for e in errors))
        self.errors = errors


def _label(loc: tuple) -> str:
    for part in reversed(loc):
        if isinstance(part, str) and part in LABELS:
            return LABELS[part]
    return "入力項目"


def translate(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = prefix + tuple(str(p) for p in err["loc"])
        kind = err["type"]
        if kind.startswith("kyufu_"):
            message = err["msg"]
        else:
            message = _GENERIC.get(kind, "{label}の入力内容を確認してください。").format(label=_label(loc))
        out.append(FieldError(loc, kind, message))
    return out


def _custom(kind: str, message: str):
    from pydantic_core import PydanticCustomError

    return PydanticCustomError("kyufu_" + kind, message)


def _account_rule(check, value):
    """payouts.accounts' rule for one field (the same for every way an account enters kyufu), as a
    pydantic error of this form."""
    try:
        return check(value)
    except AccountInvalid as exc:
        raise _custom(exc.field, exc.message) from None


class BankDetails(BaseModel):
    """A bank account as typed: by code (bank_code + branch_code) or, for ゆうちょ, 記号・番号."""

    model_config = ConfigDict(extra="forbid", str_max_length=200)

    bank_code: str = Field(description="4-digit 金融機関コード (9900 = ゆうちょ銀行)")
    branch_code: str | None = Field(None, description="3-digit 支店コード (not needed with yucho_kigou)")
    account_type: int = Field(1, description="預金種目: 1 普通, 2 当座, 4 貯蓄, 9 その他")
    account_number: str | None = Field(None, description="口座番号, up to 7 digits (zero-padded)")
    yucho_kigou: str | None = Field(None, description="ゆうちょ銀行 記号 (5 digits)")
    yucho_bangou: str | None = Field(None, description="ゆうちょ銀行 番号 (up to 8 digits)")
    holder_kana: str = Field(description="口座名義 in katakana; normalised to Zengin half-width kana")

    @field_validator("bank_code")
    @classmethod
    def _bank_code(cls, v: str) -> str:
        v = _account_rule(accounts.check_bank_code, v)
        if banks.bank(v) is None:
            raise _custom("unknown_bank", "金融機関コードに該当する金融機関がありません。")
        return v

    @field_validator("branch_code")
    @classmethod
    def _branch_code(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        return _account_rule(accounts.check_branch_code, v)

    @field_validator("account_type")
    @classmethod
    def _account_type(cls, v: int) -> int:
        return _account_rule(accounts.check_account_type, v)

    @field_validator("account_number")
    @classmethod
    def _account_number(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        return _account_rule(accounts.check_account_number, v)


@dataclass(frozen=True)
class BankAccount:
    """A resolved account, ready to store: codes exist, the number has 7 digits, the name is Zengin kana."""

    bank_code: str
    branch_code: str
    account_type: int
    account_number: str
    holder_kana: str
    bank_name: str
    branch_name: str
    kana_changes: tuple[str, ...] = ()
    kana_material: bool = False
    from_yucho: bool = False

    def to_session(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_session(cls, data: dict[str, Any]) -> BankAccount:
        data = dict(data)
        data["kana_changes"] = tuple(data.get("kana_changes", ()))
        return cls(**data)


def resolve(details: BankDetails, prefix: tuple[str, ...] = ()) -> BankAccount:
    """Cross-field checks: branch exists, ゆうちょ conversion, holder kana. Raises FormInvalid."""
    errors: list[FieldError] = []
    bank_code, branch_code, account_type, number = (
        details.bank_code,
        details.branch_code,
        details.account_type,
        details.account_number,
    )
    from_yucho = False
    if bank_code == banks.YUCHO and (details.yucho_kigou or details.yucho_bangou):
        try:
            branch_code, account_type, number = banks.yucho_to_zengin(
                details.yucho_kigou or "", details.yucho_bangou or ""
            )
            from_yucho = True
        except banks.YuchoError as exc:
            field = "yucho_kigou" if "記号" in str(exc) else "yucho_bangou"
            errors.append(FieldError(prefix + (field,), "kyufu_yucho", str(exc)))
    else:
        if branch_code is None:
            errors.append(FieldError(prefix + ("branch_code",), "missing", "支店コードを入力してください。"))
        if number is None:
            errors.append(FieldError(prefix + ("account_number",), "missing", "口座番号を入力してください。"))
    if branch_code is not None and banks.branch(bank_code, branch_code) is None and not errors:
        errors.append(
            FieldError(
                prefix + ("branch_code",),
                "kyufu_unknown_branch",
                "支店コードに該当する支店がありません。金融機関と支店をご確認ください。",
            )
        )
    kana = None
    try:
        kana = normalise(details.holder_kana, field="party", max_width=HOLDER_MAX_WIDTH)
    except ZenginKanaError as exc:
        errors.append(FieldError(prefix + ("holder_kana",), f"kyufu_kana_{exc.reason}", str(exc)))
    if errors:
        raise FormInvalid(errors)
    assert kana is not None and branch_code is not None and number is not None
    b, br = banks.bank(bank_code), banks.branch(bank_code, branch_code)
    return BankAccount(
        bank_code,
        branch_code,
        account_type,
        number,
        kana.value,
        b.name if b else "",
        br.name if br else "",
        tuple(kana.changes),
        kana.material,
        from_yucho,
    )


# The order of the bank form's fields: errors are listed in it, so the summary reads like the form.
_BANK_ORDER = ("bank_code", "branch_code", "account_type", "account_number", "yucho_kigou", "yucho_bangou")


def parse_bank(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> BankAccount:
    """Every error at once: when a field fails its own shape (an empty or unknown bank), the checks that
    `resolve` would make on the other fields (branch, number, holder) are still made, so an empty form
    lists all of them rather than revealing one per submit."""
    try:
        details = BankDetails.model_validate(data)
    except ValidationError as exc:
        errors = translate(exc, prefix)
        errors += _other_missing(data, {e.loc for e in errors}, prefix)
        errors.sort(key=lambda e: _BANK_ORDER.index(e.field) if e.field in _BANK_ORDER else len(_BANK_ORDER))
        raise FormInvalid(errors) from None
    return resolve(details, prefix)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _other_missing(data: dict[str, Any], failed: set[tuple[str, ...]], prefix: tuple[str, ...]) -> list[FieldError]:
    """resolve()'s presence and kana checks for the fields whose shape passed, on the raw data (the bank
    itself failed, so its branch cannot be looked up)."""
    errors = []
    yucho = data.get("bank_code") == banks.YUCHO and not (
        _blank(data.get("yucho_kigou")) and _blank(data.get("yucho_bangou"))
    )
    if not yucho:
        for field, message in (
            ("branch_code", "支店コードを入力してください。"),
            ("account_number", "口座番号を入力してください。"),
        ):
            if prefix + (field,) not in failed and _blank(data.get(field)):
                errors.append(FieldError(prefix + (field,), "missing", message))
    holder = data.get("holder_kana")
    if prefix + ("holder_kana",) not in failed and isinstance(holder, str):
        try:
            normalise(holder, field="party", max_width=HOLDER_MAX_WIDTH)
        except ZenginKanaError as exc:
            errors.append(FieldError(prefix + ("holder_kana",), f"kyufu_kana_{exc.reason}", str(exc)))
    return errors


CHANGE_LABELS = {
    # payouts.kana change codes → what the resident is told changed.
    "small_kana": "小さい「ャ・ュ・ョ・ッ」などは、銀行の規則で大きい文字になります。",
    "long_vowel": "長音「ー」は「-」になります。",
    "wi_we": "「ヰ・ヱ」は「イ・エ」になります。",
    "va_row": "「ヴァ」などの小さい文字は大きい文字になります（例: ｳﾞｱ）。",
    "middle_dot": "中点「・」はスペースになります。",
    "dash": "ダッシュ・ハイフンの類は「-」になります。",
}


def describe_changes(changes: tuple[str, ...]) -> list[str]:
    return [CHANGE_LABELS.get(c, "銀行の規則に合わせて一部の文字を置き換えました。") for c in changes]


def _printable(text: str) -> str:
    # Control/format/unassigned characters (category C*) can never be part of a code or PIN, and a NUL
    # would make PostgreSQL refuse the whole statement: in the API's batched submit, the transaction of
    # every request grouped with it (tests/hostile/test_schemathesis.py found it).
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))


def normalise_access_code(text: str) -> str:
    """確認書番号 as stored: NFKC, upper-case, without spaces, hyphens or control characters."""
    return _printable(unicodedata.normalize("NFKC", text)).upper().replace(" ", "").replace("-", "").strip()[:64]


def normalise_pin(text: str) -> str:
    return _printable(unicodedata.normalize("NFKC", text)).strip()[:32]

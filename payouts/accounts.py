"""The payee's bank account: one value type and one set of rules for every place an account enters kyufu
(the resident's form and API, the 公金受取口座 import, a corrected account after a return) and for the
Zengin writer that finally pays it.

Before this module each place checked accounts its own way and they disagreed (the resident form took
預金種目 1/2/4, the registry and reconciliation 1/2/4/9; the registry wanted exactly seven digits, the
others up to seven). The rules are the Zengin 総合振込 data record's (payouts/zengin.py, §1.6): bank code 4
digits, branch 3, 預金種目 one of PAYEE_ACCOUNT_TYPES, account number up to 7 digits (stored zero-padded to
7), holder name converted to Zengin half-width kana of at most 30 columns.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.crypto import FieldCipher
from app.errors import InvalidInput
from payouts.kana import ZenginKanaError, to_zengin_kana
from payouts.zengin import PAYEE_ACCOUNT_TYPES

ACCOUNT_TYPE_LABELS = {1: "普通", 2: "当座", 4: "貯蓄", 9: "その他"}
assert set(ACCOUNT_TYPE_LABELS) == PAYEE_ACCOUNT_TYPES
HOLDER_MAX_WIDTH = 30

# Field -> its Japanese name, for messages that name the field.
FIELD_NAMES = {
    "bank_code": "金融機関コード",
    "branch_code": "支店コード",
    "account_type": "預金種目",
    "account_number": "口座番号",
    "holder_kana": "口座名義",
}


class AccountInvalid(InvalidInput):
    """One field of an account is not acceptable; `field` names it, `message` says why in Japanese."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def digits(value: object) -> str:
    """Full-width digits and hyphens/spaces as people type them → ASCII digits only."""
    text = unicodedata.normalize("NFKC", str(value if value is not None else "")).strip()
    return "".join(ch for ch in text if ch not in "-‐−ー－ ")


@dataclass(frozen=True)
class PayeeAccount:
    bank_code: str
    branch_code: str
    account_type: int
    account_number: str  # 7 digits
    holder_kana: str  # Zengin half-width kana

    @classmethod
    def parse(
        cls, bank_code: object, branch_code: object, account_type: object, account_number: object, holder_kana: object
    ) -> PayeeAccount:
        """Check and normalise; raises AccountInvalid naming the first bad field."""
        return cls(
            check_bank_code(bank_code),
            check_branch_code(branch_code),
            check_account_type(account_type),
            check_account_number(account_number),
            check_holder_kana(holder_kana),
        )


def check_bank_code(value: object) -> str:
    v = digits(value)
    if not (len(v) == 4 and v.isascii() and v.isdigit()):
        raise AccountInvalid("bank_code", "金融機関コードは4桁の数字で入力してください。")
    return v


def check_branch_code(value: object) -> str:
    v = digits(value)
    if not (len(v) == 3 and v.isascii() and v.isdigit()):
        raise AccountInvalid("branch_code", "支店コードは3桁の数字で入力してください。")
    return v


def check_account_type(value: object) -> int:
    text = digits(value)
    if not (len(text) == 1 and text.isascii() and text.isdigit()) or int(text) not in PAYEE_ACCOUNT_TYPES:
        raise AccountInvalid("account_type", "預金種目は普通・当座・貯蓄・その他から選んでください。")
    return int(text)


def check_account_number(value: object) -> str:
    v = digits(value)
    if not (1 <= len(v) <= 7 and v.isascii() and v.isdigit()):
        raise AccountInvalid("account_number", "口座番号は7桁以内の数字で入力してください。")
    return v.zfill(7)


def check_holder_kana(value: object) -> str:
    try:
        return to_zengin_kana(str(value if value is not None else ""), max_width=HOLDER_MAX_WIDTH)
    except ZenginKanaError as exc:
        raise AccountInvalid("holder_kana", f"口座名義: {exc}") from None


@lru_cache(maxsize=64)
def _account_hmac_key(data_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kyufu-account-key").derive(data_key)


def account_key(cipher: FieldCipher, bank: str, branch: str, account_type: int, number: str) -> bytes:
    """Keyed fingerprint of an account: equal for equal accounts of one municipality, useless elsewhere.

    Verification compares applications' accounts with it (application_account_keys: an account given by two
    households goes to review), and a batch's payments carry it (payments.account_key: the database counts
    payments per account in a batch, migration 0018) — the database never sees an account number."""
    msg = f"{bank}|{branch}|{int(account_type)}|{number}".encode()
    return hmac.new(_account_hmac_key(cipher.key), msg, hashlib.sha256).digest()

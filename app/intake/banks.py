"""Banks and branches from the `zengin-code` data, and ゆうちょ銀行 記号・番号 conversion.

The data (about 1,100 banks and 30,000 branches) is loaded once at import by the package; search is a
linear scan over a prepared list, well under a millisecond for type-ahead.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import jaconv
import zengin_code

YUCHO = "9900"
ACCOUNT_TYPES = {1: "普通", 2: "当座", 4: "貯蓄", 9: "その他"}


@dataclass(frozen=True)
class Bank:
    code: str
    name: str
    kana: str


@dataclass(frozen=True)
class Branch:
    code: str
    name: str
    kana: str


def _fold(text: str) -> str:
    """Fold for matching: NFKC, katakana→hiragana, small kana as large (Zengin kana has none), no
    spaces, lower-case."""
    s = unicodedata.normalize("NFKC", text).replace(" ", "").replace("　", "").lower()
    return jaconv.kata2hira(s).translate(_SMALL)


_SMALL = str.maketrans("ぁぃぅぇぉっゃゅょゎー", "あいうえおつやゆよわ-")


_BANKS = {code: Bank(code, b.name, b.kana) for code, b in zengin_code.Bank.all.items()}
_BANK_INDEX = [(b, _fold(b.name), _fold(b.kana), _fold(zengin_code.Bank.all[b.code].hira)) for b in _BANKS.values()]
_BRANCH_INDEX: dict[str, list[tuple[Branch, str, str]]] = {}


def _branches(bank_code: str) -> list[tuple[Branch, str, str]]:
    if bank_code not in _BRANCH_INDEX:
        raw = zengin_code.Bank.all[bank_code].branches
        _BRANCH_INDEX[bank_code] = [
            (Branch(c, br.name, br.kana), _fold(br.name), _fold(br.kana)) for c, br in raw.items()
        ]
    return _BRANCH_INDEX[bank_code]


def bank(code: str) -> Bank | None:
    return _BANKS.get(code)


def branch(bank_code: str, branch_code: str) -> Branch | None:
    if bank_code not in _BANKS:
        return None
    b = zengin_code.Bank.all[bank_code].branches.get(branch_code)
    return Branch(branch_code, b.name, b.kana) if b else None


# The data names banks as their passbooks abbreviate them (みずほ, 城南信金, 東京都信連), residents type the
# full name (みずほ銀行, 城南信用金庫): the query's full form is also tried in the data's short form.
_SHORT_FORMS = (
    ("銀行", ""),
    ("信用金庫", "信金"),
    ("信用組合", "信組"),
    ("労働金庫", "労金"),
    ("信用農業協同組合連合会", "信連"),
    ("農業協同組合", "農協"),
    ("漁業協同組合連合会", "漁連"),
    ("漁業協同組合", "漁協"),
)


def _query_forms(query: str) -> list[str]:
    """The folded query, and its short form if it names a kind of institution in full."""
    q = _fold(query)
    forms = [q]
    for full, short in _SHORT_FORMS:
        folded = _fold(full)
        if folded in q:
            forms.append(q.replace(folded, _fold(short) if short else ""))
            break
    if q.startswith("ja") and len(q) > 2:  # JA○○ is the 農協 ○○ (the data: ○○農協)
        forms.append(q[2:])
    return [f for f in dict.fromkeys(forms) if f]


def search_banks(query: str, limit: int = 20) -> list[Bank]:
    """Banks whose code starts with the query, or whose name/kana contains it (prefix matches first);
    "みずほ銀行" and "城南信用金庫" find みずほ and 城南信金."""
    forms = _query_forms(query)
    if not forms:
        return []
    if forms[0].isdigit():
        return [b for b in _BANKS.values() if b.code.startswith(forms[0])][:limit]
    prefix, contains = [], []
    for b, name, kana, hira in _BANK_INDEX:
        if any(name.startswith(q) or kana.startswith(q) or hira.startswith(q) for q in forms):
            prefix.append(b)
        elif any(q in name or q in kana for q in forms):
            contains.append(b)
    return (prefix + contains)[:limit]


def search_branches(bank_code: str, query: str, limit: int = 20) -> list[Branch]:
    if bank_code not in _BANKS:
        return []
    q = _fold(query)
    if not q:
        return [br for br, _, _ in _branches(bank_code)][:limit]
    if q.isdigit():
        return [br for br, _, _ in _branches(bank_code) if br.code.startswith(q)][:limit]
    prefix, contains = [], []
    for br, name, kana in _branches(bank_code):
        if name.startswith(q) or kana.startswith(q):
            prefix.append(br)
        elif q in name or q in kana:
            contains.append(br)
    return (prefix + contains)[:limit]


class YuchoError(ValueError):
    """A ゆうちょ 記号・番号 that cannot be converted; the message is Japanese and names the field."""


def yucho_to_zengin(kigou: str, bangou: str) -> tuple[str, int, str]:
    """ゆうちょ銀行 記号・番号 → (店番, 預金種目, 口座番号) as other banks' transfers need them.

    通常貯金 (記号 1xxx0, 番号 ending in 1, up to 8 digits): 店番 = 記号 2-3桁目 + "8", 普通,
    口座番号 = 番号 without its last digit, zero-padded to 7.
    振替口座 (記号 0xxxx): 店番 = 記号 2-3桁目 + "9", 当座, 口座番号 = 番号 zero-padded to 7.
    """
    k = unicodedata.normalize("NFKC", kigou).strip().replace("-", "")
    n = unicodedata.normalize("NFKC", bangou).strip().replace("-", "")
    if len(k) != 5 or not k.isdigit():
        raise YuchoError("記号は5桁の数字で入力してください。")
    if not n.isdigit():
        raise YuchoError("番号は数字で入力してください。")
    if k[0] == "1":
        if not 2 <= len(n) <= 8 or n[-1] != "1":
            raise YuchoError("番号は最大8桁で、末尾が「1」の数字です。通帳の表紙をご確認ください。")
        return k[1:3] + "8", 1, n[:-1].zfill(7)
    if k[0] == "0":
        if not 1 <= len(n) <= 7:
            raise YuchoError("振替口座の番号は最大7桁の数字です。")
        return k[1:3] + "9", 2, n.zfill(7)
    raise YuchoError("記号は「1」または「0」で始まる5桁の数字です。")

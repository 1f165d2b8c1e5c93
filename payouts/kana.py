"""Zengin half-width kana: turn what a resident typed into bytes a bank accepts.

The pipeline is the one in docs/zengin.md §6, step for step:

1. NFKC (composes カ+U+3099 into ガ, folds full-width ASCII and spaces; it also widens
   half-width kana, which is why step 4 exists),
2. ``jaconv.hira2kata``,
3. a substitution table (small kana, ー, ヰヱ, ヷヸヹヺ, ・, dashes),
4. ``jaconv.z2h(kana=True, ascii=True, digit=True)``,
5. upper-case (ASCII only, see ``_ASCII_UPPER``),
6. a whitelist per field class (§2.1), including where ﾞ/ﾟ may stand (§2.2),
7. ``encode('cp932')`` with one byte per character (§2.4).

Step 8 (fitting the length) is ``fit``. Errors carry a reason code and the index of the
offending input character, never the input itself: names are personal data.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import jaconv

__all__ = [
    "FieldClass",
    "KanaResult",
    "MATERIAL_CHANGES",
    "ZenginKanaError",
    "fit",
    "is_zengin_kana",
    "normalise",
    "to_zengin_kana",
]

FieldClass = Literal["party", "bank", "salary"]

# Inputs longer than this are refused before any work: no name field is wider than 40
# bytes, and the position search below is quadratic in the input length.
MAX_INPUT_CHARS = 200

VOICED = "ﾞ"  # U+FF9E, byte 0xDE
SEMI_VOICED = "ﾟ"  # U+FF9F, byte 0xDF

# §2.2: ﾞ may follow the か/さ/た/は rows and ｳ (ヴ); ﾟ only the は row.
_KANA = r"[ｱ-ﾝ]|(?<=[ｶ-ﾄﾊ-ﾎｳ])ﾞ|(?<=[ﾊ-ﾎ])ﾟ"
# A space only between two non-space characters: values are stripped and collapsed, so
# a C field padded with spaces can be read back exactly (rstrip) — see zengin.parse.
_SPACE = r"(?<=[^ ]) (?=[^ ])"
_EXTRA = {
    "party": r"A-Z0-9().\-",  # §2.1 振込依頼人名 / 受取人名 in 21/91
    "bank": r"A-Z0-9\-",  # §2.1 銀行名, 支店名
    "salary": r"0-9",  # §2.1 給与/賞与 (11/12): no Latin, no symbols
}
_LABEL = {
    "party": "口座名義（カナ）",
    "bank": "金融機関名・支店名（カナ）",
    "salary": "口座名義（カナ）",
}
_SYMBOLS_ALLOWED = {
    "party": "使える記号は「(」「)」「-」「.」とスペースだけです。",
    "bank": "使える記号は「-」とスペースだけです。",
    "salary": "記号は使えません（スペースは使えます）。",
}


def _whitelist(field: str, allow_wo: bool) -> re.Pattern[str]:
    extra = _EXTRA[field] + ("ｦ" if allow_wo else "")
    return re.compile(f"(?:{_KANA}|[{extra}]|{_SPACE})+")


_WHITELISTS = {(f, wo): _whitelist(f, wo) for f in _EXTRA for wo in (False, True)}

_KANA_CHARS = "".join(map(chr, range(ord("ｱ"), ord("ﾝ") + 1))) + VOICED + SEMI_VOICED
_EXTRA_CHARS = {
    "party": "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789().- ",
    "bank": "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789- ",
    "salary": "0123456789 ",
}
_CHARSETS = {(f, wo): _KANA_CHARS + _EXTRA_CHARS[f] + ("ｦ" if wo else "") for f in _EXTRA for wo in (False, True)}
_BAD_VOICING = re.compile(r"(?<![ｶ-ﾄﾊ-ﾎｳ])ﾞ|(?<![ﾊ-ﾎ])ﾟ")

# Step 3. Each entry: source -> (replacement, change code). Applied after hira2kata, so
# hiragana never reaches it, and after NFKC, so half-width forms arrive full-width.
_SUBSTITUTIONS: dict[str, tuple[str, str]] = {}
for _src, _dst in zip(
    "ァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ",
    "アイウエオツヤユヨワカケクシストヌハヒフヘホムラリルレロ",
):
    _SUBSTITUTIONS[_src] = (_dst, "small_kana")
_SUBSTITUTIONS["ー"] = ("-", "long_vowel")  # §2.2: never ｰ (0xB0), always 0x2D
for _src in "‐‒–—―−":  # U+2010, 2012-2015, 2212 (U+2011 and U+FF0D are folded by NFKC)
    _SUBSTITUTIONS[_src] = ("-", "dash")
_SUBSTITUTIONS["ヰ"] = ("イ", "wi_we")
_SUBSTITUTIONS["ヱ"] = ("エ", "wi_we")
for _src, _dst in zip("ヷヸヹヺ", "バビベボ"):
    _SUBSTITUTIONS[_src] = (_dst, "va_row")
for _src in "・·":  # 京葉銀行 asks for a space instead of ・ (§2.1)
    _SUBSTITUTIONS[_src] = (" ", "middle_dot")

# Changes that alter how the name reads: log them for staff review (§6, last paragraph).
MATERIAL_CHANGES = frozenset({"small_kana", "long_vowel", "wi_we", "va_row", "middle_dot"})
_CHANGE_ORDER = ("small_kana", "long_vowel", "wi_we", "va_row", "middle_dot", "dash")

# str.upper() would also turn 'ı' into 'I' or 'ß' into 'SS' and so make a foreign letter
# pass the whitelist silently; only ASCII letters are upper-cased.
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SPACES = re.compile(" {2,}")


class ZenginKanaError(ValueError):
    """A name cannot be written in Zengin kana.

    ``str(e)`` is a Japanese message for a resident or clerk. It never contains the input;
    ``position`` is the index of the first input character that cannot be written (0 for
    'empty') and ``reason`` is one of: 'empty', 'too_long', 'kanji', 'wo', 'latin',
    'unsupported_symbol', 'unsupported_char', 'invalid_voicing'.
    """

    def __init__(self, reason: str, position: int, field: str = "party", max_width: int | None = None):
        self.reason = reason
        self.position = position
        self.field = field
        super().__init__(_message(reason, field, max_width))


def _message(reason: str, field: str, max_width: int | None) -> str:
    label = _LABEL.get(field, "カナ")
    if reason == "empty":
        return f"{label}が入力されていません。カタカナで入力してください。"
    if reason == "too_long":
        return (
            f"{label}が長すぎます。半角{max_width}文字以内になるように入力してください"
            "（濁点・半濁点も1文字と数えます）。"
        )
    if reason == "kanji":
        return f"{label}に使用できない文字が含まれています。漢字は使えません。カタカナで入力してください。"
    if reason == "wo":
        return f"{label}に「ヲ」は使用できません。通帳の口座名義をご確認のうえ、窓口にお問い合わせください。"
    if reason == "latin":
        return f"{label}に英字は使用できません。カタカナで入力してください。"
    if reason == "unsupported_symbol":
        return f"{label}に使用できない記号が含まれています。{_SYMBOLS_ALLOWED.get(field, '')}"
    if reason == "invalid_voicing":
        return f"{label}の濁点（゛）・半濁点（゜）の位置が正しくありません。カタカナで入力し直してください。"
    return f"{label}に使用できない文字が含まれています。カタカナ・英大文字・数字で入力してください。"


@dataclass(frozen=True, slots=True)
class KanaResult:
    """A normalised name. ``material`` is True when a substitution changed how it reads."""

    value: str
    material: bool
    changes: tuple[str, ...]


class _Reject(Exception):
    """Internal: the pipeline failed; the caller works out the input position."""

    def __init__(self, reason: str):
        self.reason = reason


def _is_kanji(c: str) -> bool:
    o = ord(c)
    return (
        0x3400 <= o <= 0x4DBF
        or 0x4E00 <= o <= 0x9FFF
        or 0xF900 <= o <= 0xFAFF
        or 0x20000 <= o <= 0x3FFFF
        or c in "々〆〇〻"
    )


def _classify(value: str, field: str, allow_wo: bool) -> str:
    """Reason code for the first character of ``value`` that the whitelist refuses."""
    allowed = _WHITELISTS[(field, allow_wo)]
    for i, c in enumerate(value):
        # Test the character in context, so the lookbehinds for ﾞ/ﾟ see its neighbour.
        if allowed.match(value, i, i + 1):
            continue
        if c == " ":  # unreachable after collapsing; kept so the loop never misreports
            continue
        if _is_kanji(c):
            return "kanji"
        if c == "ｦ":
            return "wo"
        if c in (VOICED, SEMI_VOICED, "\u3099", "\u309a"):
            return "invalid_voicing"
        if "A" <= c <= "Z":
            return "latin"
        if c.isascii() or unicodedata.category(c)[0] in "PSZ":
            return "unsupported_symbol"
        return "unsupported_char"
    return "unsupported_char"


def _run(text: str, field: str, allow_wo: bool, final: bool) -> tuple[str, tuple[str, ...]]:
    s = unicodedata.normalize("NFKC", text)
    s = jaconv.hira2kata(s)
    found: set[str] = set()
    if any(c in _SUBSTITUTIONS for c in s):
        out = []
        for c in s:
            sub = _SUBSTITUTIONS.get(c)
            if sub is None:
                out.append(c)
            else:
                out.append(sub[0])
                found.add(sub[1])
        s = "".join(out)
    s = jaconv.z2h(s, kana=True, ascii=True, digit=True)
    s = s.translate(_ASCII_UPPER)
    s = _SPACES.sub(" ", s).strip(" ")
    if not s:
        if final:
            raise _Reject("empty")
        return s, ()
    if not _WHITELISTS[(field, allow_wo)].fullmatch(s):
        raise _Reject(_classify(s, field, allow_wo))
    # §2.4: validate, then check one byte per character. The whitelist already implies it;
    # this is the belt to its braces, and it is cheap.
    try:
        encoded = s.encode("cp932")
    except UnicodeEncodeError:
        raise _Reject("unsupported_char") from None
    if len(encoded) != len(s):
        raise _Reject("unsupported_char")
    return s, tuple(code for code in _CHANGE_ORDER if code in found)


def _first_bad_position(text: str, field: str, allow_wo: bool, max_width: int | None) -> int:
    """Index of the first input character whose prefix can no longer be written.

    NFKC composes across characters (カ + U+3099), so positions in the output do not map
    back to the input; re-running the pipeline on growing prefixes does. Inputs are capped
    at MAX_INPUT_CHARS, so the quadratic cost is bounded.
    """
    for i in range(len(text)):
        try:
            value, _ = _run(text[: i + 1], field, allow_wo, final=False)
        except _Reject:
            return i
        if max_width is not None and len(value) > max_width:
            return i
    return max(len(text) - 1, 0)


def normalise(
    text: str,
    *,
    field: FieldClass = "party",
    allow_wo: bool = False,
    max_width: int | None = None,
) -> KanaResult:
    """Run the §6 pipeline on ``text`` for a field class ('party', 'bank' or 'salary').

    ``allow_wo`` lets ｦ through (a revised 付録1 permits it in some banks, §2.1; the
    conservative default refuses it). ``max_width`` refuses a result longer than that many
    single-byte characters with reason 'too_long' (use ``fit`` to cut instead).
    Raises ZenginKanaError.
    """
    if field not in _EXTRA:
        raise ValueError(f"unknown field class: {field!r}")
    if not isinstance(text, str):
        raise TypeError("text must be str")
    if len(text) > MAX_INPUT_CHARS:
        raise ZenginKanaError("too_long", MAX_INPUT_CHARS, field, max_width or MAX_INPUT_CHARS)
    try:
        value, changes = _run(text, field, allow_wo, final=True)
    except _Reject as e:
        position = 0 if e.reason == "empty" else _first_bad_position(text, field, allow_wo, None)
        raise ZenginKanaError(e.reason, position, field) from None
    if max_width is not None and len(value) > max_width:
        position = _first_bad_position(text, field, allow_wo, max_width)
        raise ZenginKanaError("too_long", position, field, max_width)
    return KanaResult(value, any(c in MATERIAL_CHANGES for c in changes), changes)


def to_zengin_kana(
    text: str,
    *,
    field: FieldClass = "party",
    allow_wo: bool = False,
    max_width: int | None = None,
) -> str:
    """``normalise(...).value``: the Zengin half-width kana for ``text``."""
    return normalise(text, field=field, allow_wo=allow_wo, max_width=max_width).value


def is_zengin_kana(value: str, *, field: FieldClass = "party", allow_wo: bool = False) -> bool:
    """True if ``value`` is already a normalised, non-empty Zengin value of that class.

    Normalised means: only whitelisted characters, ﾞ/ﾟ only after a base that takes them,
    no leading, trailing or double spaces. This is what ``normalise`` returns.

    Same answer as the whitelist regex (a test proves it), but about twice as fast: it runs
    once per payment when a payout file is written.
    """
    if type(value) is not str or not value:
        return False
    # strip(chars) removes every allowed character from both ends: anything left is not
    # allowed. It is about four times faster than frozenset.issuperset(value).
    if value.strip(_CHARSETS[(field, allow_wo)]):
        return False
    if value[0] == " " or value[-1] == " " or "  " in value:
        return False
    if (VOICED in value or SEMI_VOICED in value) and _BAD_VOICING.search(value):
        return False
    return True


def fit(value: str, width: int) -> tuple[str, bool]:
    """Cut a normalised value to at most ``width`` single-byte characters.

    Never splits a kana from its ﾞ/ﾟ: a cut that would do so drops the whole pair (ガ cut
    to カ would silently change the name, §2.2). Trailing spaces left by the cut are
    removed so the result is still normalised. The result may be empty when ``width`` is
    tiny; callers must treat that as an error. Returns (cut, was_cut).
    """
    if width < 1:
        raise ValueError("width must be at least 1")
    if len(value) <= width:
        return value, False
    cut = value[:width]
    if value[width] in (VOICED, SEMI_VOICED):
        cut = cut[:-1]
    return cut.rstrip(" "), True

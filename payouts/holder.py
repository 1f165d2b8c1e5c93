"""The account-holder check: is the account's holder (口座名義カナ) the payee the registry names?

The 公金受取口座 review of 2023 found 748 accounts registered to the wrong person and about 130,000 to a
family member: the state held kanji names, and a kanji name cannot be matched with the kana on an
account. kyufu holds the registry's kana (住民基本台帳の氏カナ・名カナ), so every account that will be
paid is compared with its payee's kana, here, by one rule (docs/registry.md, "The account-holder check"):

Both names are first written in Zengin kana by the same pipeline (payouts/kana.py, with ｦ allowed), so
these differences are gone before anything is compared:

* full-width / half-width, hiragana / katakana, a combining mark (カ+゛) / a precomposed one (ガ);
* small kana / large kana (ャ ｬ ﾔ, ッ ｯ ﾂ: passbooks print large kana), ヮヵヶ → ﾜｶｹ;
* ヰ → ｲ, ヱ → ｴ, ヷヸヹヺ → ﾊﾞﾋﾞﾍﾞﾎﾞ, ・ (between names) → a space; ー and dashes → ``-``.

Then the comparison tolerates exactly three more differences:

1. **spaces**, anywhere (with or without the one between family and given name; banks differ);
2. **ヲ / オ**: ｦ is read as ｵ (Zengin's conservative character set has no ｦ, so a registry カヲル is
   ｶｵﾙ at most banks);
3. **how a long vowel is written**: ``-`` (ー), or the vowel kana that lengthens the mora before it —
   ｱ after an a-row kana, ｲ after i-row, ｳ after u-row, ｴ or ｲ after e-row, ｵ or ｳ after o-row — are
   one long vowel. So ｵｵﾉ = ｵ-ﾉ = ｵｳﾉ, ﾕｳｺ = ﾕ-ｺ, ｹｲｺ = ｹ-ｺ. A voiced or semi-voiced mark does not
   change the row (ｺﾞ- = ｺﾞｳ). Spaces are removed first, so the rule also applies across the space
   between family and given name.

Everything else is a different name, and goes to staff review:

* a **missing** long vowel (ｵﾉ ≠ ｵｵﾉ: 小野 and 大野; ﾕｷ ≠ ﾕｳｷ);
* a voiced or semi-voiced mark (ﾀﾞ ≠ ﾀ, ﾊﾟ ≠ ﾊ ≠ ﾊﾞ), ヴ and ブ/ビ (ｳﾞ ≠ ﾌﾞ), ヂ/ジ and ヅ/ズ;
* any other kana, a different order, a missing or extra kana: no edit distance, no "nearly the same".
  Two members of one household differ by a name or two; a "nearly" would pay one into the other's
  account, which is the very error the check exists for.

旧姓 (a former family name still on the account) is not tolerated: the registry extracts kyufu imports
carry no former-name column, so a married name against a maiden-name account is a mismatch that a
reviewer resolves with both names on the screen.

Names are personal data: nothing here logs, and reasons are codes, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from payouts.kana import ZenginKanaError, to_zengin_kana

__all__ = [
    "HOLDER_FLAGS",
    "Match",
    "batch_checks",
    "holder_check",
    "holder_key",
    "holder_matches",
    "name_key",
    "registry_key",
]

# Reason codes of verification that are about the account's holder (app/registry/verify.py writes the
# first three; holder_name_mismatch is the console's older code for kana_mismatch, still labelled there).
HOLDER_FLAGS = ("kana_mismatch", "holder_is_member_not_applicant", "registry_kana_invalid", "holder_name_mismatch")

# The vowel of each large half-width kana (after the Zengin pipeline there are no small ones); ﾝ has none.
_ROWS = {
    "a": "ｱｶｻﾀﾅﾊﾏﾔﾗﾜ",
    "i": "ｲｷｼﾁﾆﾋﾐﾘ",
    "u": "ｳｸｽﾂﾇﾌﾑﾕﾙ",
    "e": "ｴｹｾﾃﾈﾍﾒﾚ",
    "o": "ｵｺｿﾄﾉﾎﾓﾖﾛ",
}
_VOWEL = {kana: vowel for vowel, row in _ROWS.items() for kana in row}
# The vowel kana that lengthen a mora of each vowel (ｴｲ and ｵｳ are how Japanese writes long e and o).
_LENGTHENS = {"a": "ｱ", "i": "ｲ", "u": "ｳ", "e": "ｴｲ", "o": "ｵｳ"}
_MARKS = "ﾞﾟ"
LONG = "-"

Rule = Literal["same", "spaces", "wo", "long_vowel", "different", "holder_unwritable", "registry_unwritable"]


@dataclass(frozen=True, slots=True)
class Match:
    """The outcome of comparing one holder name with one registry name.

    ``rule`` is the last tolerance the two needed ('same': equal Zengin kana; 'spaces'; 'wo'; 'long_vowel')
    or why they do not match ('different'; 'holder_unwritable' / 'registry_unwritable': a name that cannot
    be written in Zengin kana, which never matches anything)."""

    matched: bool
    rule: Rule


def _zengin(name: str) -> str | None:
    try:
        return to_zengin_kana(name, allow_wo=True)
    except ZenginKanaError:
        return None


def _long_vowels(s: str) -> str:
    """Write every long vowel as ``-``: a vowel kana that lengthens the mora before it becomes ``-``."""
    out = []
    vowel: str | None = None  # the vowel of the mora just written (None after ﾝ, a letter, a digit...)
    for c in s:
        if c in _MARKS:
            out.append(c)  # ｶﾞ is still an a-row mora
        elif c == LONG:
            out.append(c)  # a long vowel keeps the mora's vowel (ｵ-- is ｵｵｵ)
        elif vowel is not None and c in _LENGTHENS[vowel]:
            out.append(LONG)
        else:
            out.append(c)
            vowel = _VOWEL.get(c)
    return "".join(out)


def name_key(zengin: str) -> str:
    """The comparison key of a name already in Zengin kana: two names match when their keys are equal."""
    return _long_vowels(zengin.replace(" ", "").replace("ｦ", "ｵ"))


def holder_key(holder_kana: str) -> str | None:
    """Key of an account's holder name (Zengin kana as stored, or as typed); None if it is not writable."""
    zengin = _zengin(holder_kana)
    return None if zengin is None else name_key(zengin)


def registry_key(family_kana: str, given_kana: str) -> str | None:
    """Key of a resident's registry name (full-width 氏カナ and 名カナ); None if it cannot be written in
    Zengin kana (verification's registry_kana_invalid)."""
    zengin = _zengin(f"{family_kana} {given_kana}")
    return None if zengin is None else name_key(zengin)


def holder_matches(holder_kana: str, registry_kana: str) -> Match:
    """Compare an account holder's name with a registry name (each as written: Zengin or full-width kana,
    family and given name separated by a space or not), by the rule in the module docstring."""
    h, r = _zengin(holder_kana), _zengin(registry_kana)
    if h is None:
        return Match(False, "holder_unwritable")
    if r is None:
        return Match(False, "registry_unwritable")
    if h == r:
        return Match(True, "same")
    h, r = h.replace(" ", ""), r.replace(" ", "")
    if h == r:
        return Match(True, "spaces")
    h, r = h.replace("ｦ", "ｵ"), r.replace("ｦ", "ｵ")
    if h == r:
        return Match(True, "wo")
    if _long_vowels(h) == _long_vowels(r):
        return Match(True, "long_vowel")
    return Match(False, "different")


def holder_check(holder: str | None, applicant: str, members: Mapping[str, str | None]) -> str | None:
    """Verification's reason code for an account, or None when its holder is the applicant.

    ``holder`` is the holder's key (``holder_key``), ``members`` maps each household member's 住民票コード
    to their key (``registry_key``; None when unwritable) and ``applicant`` is the payee's code (the
    applicant, or the head for a letter or a プッシュ型 payout). Reasons:

    * registry_kana_invalid — the applicant's registry kana cannot be written in Zengin kana;
    * holder_is_member_not_applicant — the holder is another member of the household (the 公金受取口座
      family-member case: e.g. the head's benefit into the spouse's or a child's account);
    * kana_mismatch — the holder is nobody in the household (or the applicant is outside it).
    """
    expected = members.get(applicant)
    if applicant in members and expected is None:
        return "registry_kana_invalid"
    if holder is not None and holder == expected:
        return None
    if holder is not None and any(key == holder for code, key in members.items() if code != applicant):
        return "holder_is_member_not_applicant"
    return "kana_mismatch"


# ---- what a batch's payments went through (the approval page) ----------------------------------------------
# Recorded on the batch when its preparation ends (migration 0020, kyufu_batch_holder_checks): a million
# payments are grouped once, not at each view of the page.
BATCH_CHECKS = """
SELECT h.outcome, h.reason, u.login AS decided_by_login, h.payments
FROM payout_batches b
CROSS JOIN LATERAL jsonb_to_recordset(b.holder_checks)
     AS h(outcome text, reason text, decided_by bigint, payments bigint)
LEFT JOIN staff_users u ON u.municipality_code = b.municipality_code AND u.staff_id = h.decided_by
WHERE b.municipality_code = $1 AND b.batch_id = $2 AND b.holder_checks IS NOT NULL
ORDER BY h.outcome, h.reason, u.login
"""
RECORDED = "SELECT holder_checks IS NOT NULL FROM payout_batches WHERE municipality_code = $1 AND batch_id = $2"
OUTCOMES = ("passed", "reviewed", "overridden", "reissued", "unchecked")


async def batch_checks(conn: asyncpg.Connection, code: str, batch_id: int) -> dict[str, Any] | None:
    """How the batch's payments went through the account-holder check, for the approval page: payments per
    outcome (passed, reviewed, overridden, reissued, unchecked: migration 0020 says what each means), the
    overridden ones per flag and per reviewer (login, payments). None when the batch has no record (still
    being prepared, or prepared before the record existed). Counts and staff logins only."""
    if not await conn.fetchval(RECORDED, code, batch_id):
        return None
    counts = dict.fromkeys(OUTCOMES, 0)
    by_flag: dict[str, int] = {}
    by_reviewer: dict[str, int] = {}
    for row in await conn.fetch(BATCH_CHECKS, code, batch_id):
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + row["payments"]
        if row["outcome"] == "overridden":
            by_flag[row["reason"]] = by_flag.get(row["reason"], 0) + row["payments"]
            who = row["decided_by_login"] or "（不明）"
            by_reviewer[who] = by_reviewer.get(who, 0) + row["payments"]
    return {
        "counts": counts,
        "overridden_by_flag": sorted(by_flag.items(), key=lambda kv: HOLDER_FLAGS.index(kv[0])),
        "overridden_by": sorted(by_reviewer.items(), key=lambda kv: (-kv[1], kv[0])),
    }

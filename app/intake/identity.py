"""Identification without a letter (申請型): kana name + birth date + address, matched against the registry.

A resident of a 申請型 program who has no 確認書 types 氏名（カナ）, 生年月日 and 住所. `identify` finds the
members of the program's entitled households, as they were on 基準日 in each entitlement's snapshot (the
same in-scope rule as eligibility: born, moved in on or before 基準日, not removed on or before it), whose
kana and birth date are equal and whose address is equal after `normalise_address`. Exactly one such
member binds the session to that household's entitlement; the application then records the member as
applicant and identification 'registry_match', and verification always sends it to review.

Zero or several matches: one answer (`Refused` with the tries left), after the same queries. Failures are
counted per identity (HMAC of municipality, kana and birth date under a key derived from the
municipality's data key; nothing typed is stored) and 5 lock it for 30 minutes, like a letter's code; a
locked identity answers `Refused` with the lock's end. The count and the lock say nothing about whether
the person exists: an identity nobody has is counted and locked the same way (docs/security.md).

Address rule (applied to what the resident typed and to the registry's address alike, so only
consistency matters): NFKC (full-width digits and letters become ASCII, half-width kana full-width),
control characters and every kind of space removed, lower case; a leading prefecture (東京都, 北海道,
京都府/大阪府, ○○県) and then the municipality's own name (after an optional ○○郡) removed; 大字 removed;
kanji numerals directly before 丁目/番地/番/号 become digits; 丁目, 番地, 番, 号 (and 号室) after a number,
の/ノ/之 between numbers, and every dash or hyphen variant (ー only after a digit) become '-'; repeated '-'
collapse and a trailing '-' is dropped. So 「東京都千代田区九段南一丁目２番地３号」, 「九段南1-2-3」 and
「九段南 1ー2ー3」 are equal.
Building names (方書) must be typed as registered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import asyncpg
import jaconv
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.intake.forms import FieldError, FormInvalid
from app.intake.signin import LOCK_MINUTES, MAX_FAILURES, Keys, Refused

IDENTIFY_FAILED_MESSAGE = (
    "入力された内容では、給付金の対象となる方を確認できませんでした。"
    "氏名（カナ）・生年月日・住所を住民票のとおりに入力してください。"
    "5回続けて確認できないと、30分間ご利用いただけなくなります。"
    "確認できない場合は、窓口にお問い合わせください。"
)


def identify_failed_message(remaining: int | None) -> str:
    """The no-match message, with the tries left before the lock when known (telling it reveals nothing:
    the count is kept for identities nobody has too)."""
    if remaining is None:
        return IDENTIFY_FAILED_MESSAGE
    return IDENTIFY_FAILED_MESSAGE.replace(f"{MAX_FAILURES}回続けて確認できないと", f"あと{remaining}回確認できないと")


# The 申請型 program, or nothing (a letter or push program does not offer identification without a letter).
APPLICATION_PROGRAM = """
SELECT program_id, name, base_date FROM programs
WHERE municipality_code = $1 AND program_id = $2 AND payment_mode = 'application'
"""
APPLICATION_PROGRAMS = """
SELECT program_id, name FROM programs WHERE municipality_code = $1 AND payment_mode = 'application' ORDER BY program_id
"""
# Members of the program's entitled households on 基準日 with this birth date and kana, in the snapshot of
# their household's entitlement (an entitlement moved to a newer snapshot is matched there). The household
# on 基準日 is 前世帯番号 when the 世帯変更日 is after it (eligibility's rule). ・ is ignored in kana on both
# sides; residents_birth_date (0010) makes this a few index probes.
CANDIDATES = """
SELECT e.entitlement_id, r.resident_code, r.address
FROM programs p
JOIN residents r ON r.municipality_code = p.municipality_code AND r.birth_date = $3
JOIN entitlements e ON e.municipality_code = p.municipality_code AND e.program_id = p.program_id
     AND e.snapshot_id = r.snapshot_id
     AND e.household_no = CASE WHEN r.household_changed_on > p.base_date THEN r.prev_household_no
                               ELSE r.household_no END
WHERE p.municipality_code = $1 AND p.program_id = $2 AND p.payment_mode = 'application'
  AND e.status <> 'withdrawn'
  AND r.birth_date <= p.base_date
  AND (r.moved_in_on IS NULL OR r.moved_in_on <= p.base_date)
  AND (r.removed_on IS NULL OR r.removed_on > p.base_date)
  AND translate(r.family_kana, 'ァィゥェォッャュョヮヵヶ・', 'アイウエオツヤユヨワカケ') = $4
  AND translate(r.given_kana, 'ァィゥェォッャュョヮヵヶ・', 'アイウエオツヤユヨワカケ') = $5
"""
# Concurrent attempts on one identity are serialised by this lock (held to commit): without it, five
# parallel guesses would each read the count from before the others' failures and all be checked.
LOCK_IDENTITY = "SELECT pg_advisory_xact_lock($1::bigint)"
LOCKOUT = """
SELECT failed_attempts, (locked_until IS NOT NULL AND locked_until > now()) AS locked, locked_until
FROM intake_identity_lockouts WHERE municipality_code = $1 AND identity_key = $2
"""
# The fifth failure locks the identity and starts a new count (so after the lock expires, five more
# failures lock it again); attempts while locked are not counted (they fail anyway).
RECORD_FAILURE = """
INSERT INTO intake_identity_lockouts AS l (municipality_code, identity_key, failed_attempts, locked_until)
VALUES ($1, $2, 1, NULL)
ON CONFLICT (municipality_code, identity_key) DO UPDATE
SET failed_attempts = CASE WHEN l.failed_attempts + 1 >= $3 THEN 0 ELSE l.failed_attempts + 1 END,
    locked_until = CASE WHEN l.failed_attempts + 1 >= $3 THEN now() + make_interval(mins => $4)
                        ELSE l.locked_until END,
    updated_at = now()
RETURNING failed_attempts, locked_until > now() AS locked, locked_until
"""
# A success forgets earlier failures (only reached when not locked).
RESET = "DELETE FROM intake_identity_lockouts WHERE municipality_code = $1 AND identity_key = $2"


@dataclass(frozen=True)
class Identity:
    """What the resident typed, normalised. Personal data: never logged, never in a message."""

    family_kana: str
    given_kana: str
    birth_date: dt.date
    address: str

    def __repr__(self) -> str:  # a traceback or a debug print must not show it
        return "Identity(<redacted>)"


@dataclass(frozen=True)
class Identified:
    entitlement_id: int
    resident_code: str


# ---- normalisation -------------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")
_KATAKANA = re.compile(r"[ァ-ヺー]+")


def _printable(text: str) -> str:
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))


# Small kana as large: a passbook or a bank's records write リョウヘイ as ﾘﾖｳﾍｲ (Zengin kana has no small kana),
# and a resident copies what they see. CANDIDATES folds the registry's kana the same way (translate(), whose
# last `from` character, ・, has no counterpart and is removed).
_SMALL_AS_LARGE = str.maketrans("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ")


def normalise_kana(text: str) -> str:
    """Full-width katakana without spaces or ・, small kana as large: NFKC (half-width kana widened, ｶﾞ
    composed), hiragana to katakana. The registry holds ァ-ヺ, ー and ・ (app/registry/imports.py)."""
    s = _SPACES.sub("", _printable(unicodedata.normalize("NFKC", text)))
    return jaconv.hira2kata(s).replace("・", "").translate(_SMALL_AS_LARGE)


# Place names write the genitive particle as ヶ, ケ, が or ガ (五味ヶ谷, 五味ケ谷, 霞が関, 霞ヶ関) and the
# registry and the resident rarely agree: between two kanji they are one character here.
_GA_BETWEEN_KANJI = re.compile(r"(?<=[\u4e00-\u9fff])[ヶケヵがガ](?=[\u4e00-\u9fff])")
# A municipality's display name may carry a note in brackets (the demo's 千代田区（デモ）); an address never does.
_NAME_NOTE = re.compile(r"[(（][^)）]*[)）]$")
_PREFECTURE = re.compile(r"^(?:東京都|北海道|京都府|大阪府|[^都道府県]{2,3}県)")
_KANJI_DIGITS = {"〇": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_KANJI_NUMBER = re.compile(r"([〇一二三四五六七八九十百千]+)(?=丁目|番地|番|号)")
_UNITS = re.compile(r"(?<=\d)(?:丁目|番地|番|号室|号)")
_BETWEEN_NUMBERS = re.compile(r"(?<=\d)[のノ之](?=\d)")
_DASHES = re.compile(r"[\u2010-\u2015\u2212\u2500\u2501\uff0d\ufe63\ufe58-]")
_DASH_AFTER_DIGIT = re.compile(r"(?<=\d)ー")


def _kanji_to_int(text: str) -> int:
    """一, 十二, 二十三, 百五, 千二百 ... and digit-by-digit forms like 一〇二."""
    if all(c in _KANJI_DIGITS for c in text):
        return int("".join(str(_KANJI_DIGITS[c]) for c in text))
    total, current = 0, 0
    for c in text:
        if c in _KANJI_DIGITS:
            current = _KANJI_DIGITS[c]
        else:
            unit = {"十": 10, "百": 100, "千": 1000}[c]
            total += (current or 1) * unit
            current = 0
    return total + current


def normalise_address(text: str, municipality_name: str = "") -> str:
    """The comparable form of an address (module docstring: the rule)."""
    s = _SPACES.sub("", _printable(unicodedata.normalize("NFKC", text))).casefold()
    s = _GA_BETWEEN_KANJI.sub("ケ", s)
    s = _PREFECTURE.sub("", s, count=1)
    name = _NAME_NOTE.sub("", _SPACES.sub("", unicodedata.normalize("NFKC", municipality_name))).casefold()
    name = _GA_BETWEEN_KANJI.sub("ケ", name)
    if name:
        # A town or village may be written with its county first (○○郡○○町).
        s = re.sub(r"^(?:[^\d郡]{1,6}郡)?" + re.escape(name), "", s, count=1)
    s = s.replace("大字", "")
    s = _KANJI_NUMBER.sub(lambda m: str(_kanji_to_int(m.group(1))), s)
    s = _DASH_AFTER_DIGIT.sub("-", s)
    s = _UNITS.sub("-", s)
    s = _BETWEEN_NUMBERS.sub("-", s)
    s = _DASHES.sub("-", s)
    s = re.sub(r"-{2,}", "-", s)
    return s.rstrip("-")


# ---- the form ------------------------------------------------------------------------------------

FIELDS = ("family_kana", "given_kana", "birth_year", "birth_month", "birth_day", "address")
_MAX_NAME = 50
_MAX_ADDRESS = 200


def _int_field(value: str) -> int | None:
    v = _printable(unicodedata.normalize("NFKC", value)).strip()
    return int(v) if v.isdigit() and len(v) <= 4 else None


def parse_identity(form: dict[str, str], municipality_name: str, today: dt.date) -> Identity:
    """Validate the shape of what was typed (not whether it matches). Raises FormInvalid with messages
    that name the field and never repeat the value."""
    errors: list[FieldError] = []
    names = {}
    for field, label in (("family_kana", "氏（カナ）"), ("given_kana", "名（カナ）")):
        raw = form.get(field, "")
        kana = normalise_kana(raw)
        if not kana:
            errors.append(FieldError((field,), "missing", f"{label}を入力してください。"))
        elif len(kana) > _MAX_NAME:
            errors.append(FieldError((field,), "string_too_long", f"{label}が長すぎます。"))
        elif not _KATAKANA.fullmatch(kana):
            errors.append(
                FieldError(
                    (field,),
                    "kyufu_not_kana",
                    f"{label}はカタカナまたはひらがなで入力してください（漢字・英字は使えません）。",
                )
            )
        names[field] = kana
    y, mth, d = (_int_field(form.get(f, "")) for f in ("birth_year", "birth_month", "birth_day"))
    birth = None
    if y is None or mth is None or d is None:
        errors.append(FieldError(("birth_year",), "missing", "生年月日（西暦の年・月・日）を数字で入力してください。"))
    else:
        try:
            birth = dt.date(y, mth, d)
        except ValueError:
            errors.append(FieldError(("birth_year",), "kyufu_date", "生年月日が正しい日付ではありません。"))
        else:
            if birth > today or birth.year < 1880:
                errors.append(FieldError(("birth_year",), "kyufu_date", "生年月日が正しい日付ではありません。"))
    raw_address = form.get("address", "")
    address = normalise_address(raw_address, municipality_name)
    if not address:
        errors.append(FieldError(("address",), "missing", "住所を入力してください。"))
    elif len(raw_address) > _MAX_ADDRESS:
        errors.append(FieldError(("address",), "string_too_long", "住所が長すぎます。"))
    if errors:
        raise FormInvalid(errors)
    assert birth is not None
    return Identity(names["family_kana"], names["given_kana"], birth, address)


# ---- matching and lockout ------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _identity_hmac_key(data_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kyufu-identity-lockout").derive(data_key)


def identity_key(keys: Keys, code: str, identity: Identity) -> bytes:
    """Keyed hash of (municipality, kana name, birth date): the lockout's key. Not the address, so
    guessing addresses for one person counts against that person's five."""
    msg = f"{code}|{identity.family_kana}|{identity.given_kana}|{identity.birth_date.isoformat()}".encode()
    return hmac.new(_identity_hmac_key(keys.cipher.key), msg, hashlib.sha256).digest()


async def application_programs(conn: asyncpg.Connection, code: str) -> list[dict]:
    """The municipality's 申請型 programs: the ones that offer identification without a letter."""
    return [dict(r) for r in await conn.fetch(APPLICATION_PROGRAMS, code)]


async def application_program(conn: asyncpg.Connection, code: str, program_id: int) -> dict | None:
    row = await conn.fetchrow(APPLICATION_PROGRAM, code, program_id)
    return dict(row) if row else None


async def identify(
    conn: asyncpg.Connection, keys: Keys, code: str, program_id: int, identity: Identity, municipality_name: str
) -> Identified | Refused:
    """The one entitled household member this identity names, or Refused; records failures.

    Call inside tenant_transaction(conn, code) (not read-only: failures are written)."""
    key = identity_key(keys, code, identity)
    await conn.execute(LOCK_IDENTITY, int.from_bytes(key[:8], "big", signed=True))
    lockout = await conn.fetchrow(LOCKOUT, code, key)
    rows = await conn.fetch(
        CANDIDATES, code, program_id, identity.birth_date, identity.family_kana, identity.given_kana
    )
    typed = identity.address.encode()
    matches = set()
    for row in rows:
        # Every candidate is compared, in constant time: how far a guess got is not visible in the timing.
        if hmac.compare_digest(normalise_address(row["address"], municipality_name).encode(), typed):
            matches.add((row["entitlement_id"], row["resident_code"]))
    locked = lockout is not None and (lockout["locked"] or lockout["failed_attempts"] >= MAX_FAILURES)
    if locked:
        assert lockout is not None
        return Refused(locked_until=lockout["locked_until"] if lockout["locked"] else None)
    if len(matches) != 1:
        after = await conn.fetchrow(RECORD_FAILURE, code, key, MAX_FAILURES, LOCK_MINUTES)
        assert after is not None  # an upsert with RETURNING always returns its row
        if after["locked"]:
            return Refused(locked_until=after["locked_until"])
        return Refused(remaining=MAX_FAILURES - after["failed_attempts"])
    if lockout is not None:
        await conn.execute(RESET, code, key)
    entitlement_id, resident_code = matches.pop()
    return Identified(entitlement_id, resident_code)

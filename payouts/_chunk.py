"""The per-row hot loop of the payout stage, run in worker processes (or inline for small batches).

Input: a slice of `COPY (SELECT <STAGE_COLUMNS>) TO STDOUT` text output, whole rows only. Output: the
cp932 bytes of the Zengin data records for those rows, their count and total, and every problem found.

Two paths give the same bytes:
* the fast path decrypts, then checks the whole chunk with a handful of C-level operations (joined
  strings matched once per chunk, not once per row) and formats with zengin's own record format;
* if any check fails, the reference path builds `zengin.Payment` objects and runs
  `zengin.validate_payment` on each, so the report lists every bad payment and every reason.
tests/payouts/test_pipeline.py proves the fast path equals `zengin.generate` byte for byte.

Nothing here logs or raises with a name or an account number in it.
"""

from __future__ import annotations

import re
from itertools import repeat
from operator import itemgetter, methodcaller
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from payouts import zengin
from payouts.kana import _BAD_VOICING, _CHARSETS

# The columns the stage reads, in this order (the bench's floor COPYs exactly these).
STAGE_COLUMNS = "payment_id, bank_code, branch_code, account_type, account_number_enc, holder_kana_enc, amount_yen"

_FORMAT_VERSION = 1
_HEADER = 5  # app.crypto: version byte + 4-byte key version
_NONCE_END = _HEADER + 12
_SEP = "\x00"  # joins a chunk's values for one-shot checks; never allowed in any field


class ChunkJob(NamedTuple):
    """Everything a worker needs for one chunk (pickled per task: the key is 32 bytes)."""

    key: bytes
    key_version: int
    municipality_code: str
    record_format: str  # zengin._data_format(settings)
    separator: str  # '\r\n' or ''
    allow_wo: bool
    data: bytes


class ChunkResult(NamedTuple):
    records: bytes  # empty if problems
    count: int
    total_yen: int
    last_payment_id: int
    problems: list  # zengin.Problem


_DECRYPT_MESSAGE = {
    "account_number": "口座番号（暗号化）を復号できません（鍵または行の不一致・改ざん）。",
    "holder_kana": "受取人名（暗号化）を復号できません（鍵または行の不一致・改ざん）。",
}
_ciphers: dict[bytes, AESGCM] = {}


def _cipher(key: bytes) -> AESGCM:
    """One AESGCM object per key per process (building it costs about as much as a decryption)."""
    aead = _ciphers.get(key)
    if aead is None:
        if len(_ciphers) > 16:  # a long-lived worker serving many municipalities
            _ciphers.clear()
        aead = _ciphers[key] = AESGCM(key)
    return aead


def _checks(allow_wo: bool) -> tuple[re.Pattern, re.Pattern]:
    charset = _CHARSETS[("party", allow_wo)].replace(" ", "")
    bad_char = re.compile("[^" + re.escape(charset) + " " + _SEP + "]")
    # Leading, trailing or double spaces in any value (the separator bounds each value).
    bad_space = re.compile(f"(?:^|{_SEP}) | (?:{_SEP}|$)|  ")
    return bad_char, bad_space


_CHECKS = {wo: _checks(wo) for wo in (False, True)}
_SEVEN_DIGITS = re.compile(f"[0-9]{{7}}(?:{_SEP}[0-9]{{7}})*")
_BANKS = re.compile(f"[0-9]{{4}}(?:{_SEP}[0-9]{{4}})*")
_BRANCHES = re.compile(f"[0-9]{{3}}(?:{_SEP}[0-9]{{3}})*")


def render_chunk(job: ChunkJob) -> ChunkResult:
    """Rows → records. The common path has no Python loop per row: columns are cut out of the chunk
    with slicing, and every per-row step is a C-level `map` (hex decoding, slicing, decryption,
    formatting). A Python loop runs only to find which rows failed, after a failure."""
    aead = _cipher(job.key)
    header = bytes([_FORMAT_VERSION]) + job.key_version.to_bytes(4, "big")
    prefix = job.municipality_code + "|payments|"
    aad_account = (prefix + "account_number|").encode()
    aad_holder = (prefix + "holder_kana|").encode()

    # Text COPY: 7 tab-separated fields a row, bytea as \\x<hex> (the only place a backslash can be).
    fields = job.data.decode("ascii").replace("\\\\x", "").replace("\n", "\t").split("\t")
    if fields[-1] == "":
        fields.pop()
    if len(fields) % 7:
        raise ValueError("COPY の行の形式が想定と違います（列数）。")
    pids, banks, branches = fields[0::7], fields[1::7], fields[2::7]
    types, account_hex, holder_hex, amounts = fields[3::7], fields[4::7], fields[5::7], fields[6::7]
    del fields
    count = len(pids)
    if not count:
        return ChunkResult(b"", 0, 0, 0, [])
    refs = list(map(int, pids))
    yen = list(map(int, amounts))
    kinds = list(map(int, types))
    total = sum(yen)
    last = refs[-1]

    row_keys = list(map(str.encode, pids))
    account_ct = list(map(bytes.fromhex, account_hex))
    holder_ct = list(map(bytes.fromhex, holder_hex))
    accounts = _decrypt_column(aead, header, account_ct, aad_account, row_keys, "ascii")
    names = _decrypt_column(aead, header, holder_ct, aad_holder, row_keys, "utf-8")
    if accounts is None or names is None:
        problems = []
        for field, column, aad, encoding in (
            ("account_number", account_ct, aad_account, "ascii"), ("holder_kana", holder_ct, aad_holder, "utf-8")
        ):
            for ref, ct, row in zip(refs, column, row_keys):
                if _decrypt_one(aead, header, ct, aad + row, encoding) is None:
                    problems.append(zengin.Problem(ref, field, "decrypt", _DECRYPT_MESSAGE[field]))
        return ChunkResult(b"", count, total, last, problems)

    if not _fast_checks(job.allow_wo, refs, banks, branches, kinds, accounts, names, yen):
        problems = _reference_problems(job, refs, banks, branches, kinds, accounts, names, yen)
        if problems:
            return ChunkResult(b"", count, total, last, problems)
        # Valid but not in the common shape (a 1-6 digit account number): the reference formatter.
        payments = _payments(refs, banks, branches, kinds, accounts, names, yen)
        lines_out = [job.record_format % zengin._DATA_FIELDS(p) for p in payments]
    else:
        blank, new_code = repeat(""), repeat("0")
        lines_out = list(map(job.record_format.__mod__, zip(
            banks, blank, branches, blank, kinds, accounts, names, yen, new_code, refs
        )))
    sep = job.separator
    try:
        records = (sep.join(lines_out) + sep).encode("cp932")
    except UnicodeEncodeError:  # unreachable after the checks; kept so a gap cannot shift fields
        records = b""
    if len(records) != count * (zengin.RECORD_BYTES + len(sep)):
        problems = _reference_problems(job, refs, banks, branches, kinds, accounts, names, yen)
        return ChunkResult(b"", count, total, last, problems or [
            zengin.Problem(refs[0], "holder_kana", "charset", "レコード長が120バイトになりません。")
        ])
    return ChunkResult(records, count, total, last, [])


_NONCE = itemgetter(slice(_HEADER, _NONCE_END))
_BODY = itemgetter(slice(_NONCE_END, None))
_VERSION = itemgetter(slice(0, _HEADER))


def _decrypt_column(aead, header, column, aad_prefix, row_keys, encoding) -> list[str] | None:
    """Decrypt a whole column with C-level maps; None if any value fails (the caller then finds which)."""
    if set(map(_VERSION, column)) != {header}:
        return None
    try:
        plain = list(map(aead.decrypt, map(_NONCE, column), map(_BODY, column), map(aad_prefix.__add__, row_keys)))
        return list(map(methodcaller("decode", encoding), plain))
    except (InvalidTag, UnicodeDecodeError, ValueError):
        return None


def _decrypt_one(aead, header, ct, aad, encoding) -> str | None:
    if ct[:_HEADER] != header:
        return None
    try:
        return aead.decrypt(ct[_HEADER:_NONCE_END], ct[_NONCE_END:], aad).decode(encoding)
    except (InvalidTag, UnicodeDecodeError, ValueError):
        return None


def _fast_checks(allow_wo, refs, banks, branches, kinds, accounts, names, yen) -> bool:
    """True only if every row would pass zengin.validate_payment and is already in canonical shape."""
    bad_char, bad_space = _CHECKS[allow_wo]
    joined = _SEP.join(names)
    return (
        joined.count(_SEP) == len(names) - 1  # no value contains the separator itself
        and min(map(len, names)) > 0
        and max(map(len, names)) <= 30
        and bad_char.search(joined) is None
        and bad_space.search(joined) is None
        and _BAD_VOICING.search(joined) is None
        and _SEVEN_DIGITS.fullmatch(_SEP.join(accounts)) is not None
        and _BANKS.fullmatch(_SEP.join(banks)) is not None
        and _BRANCHES.fullmatch(_SEP.join(branches)) is not None
        and set(kinds) <= zengin.PAYEE_ACCOUNT_TYPES
        and min(yen) > 0 and max(yen) <= zengin.MAX_AMOUNT_YEN
        and min(refs) > 0 and max(refs) <= zengin.MAX_REFERENCE
    )


def _payments(refs, banks, branches, kinds, accounts, names, yen) -> list[zengin.Payment]:
    return [
        zengin.Payment(reference=r, bank_code=b, branch_code=br, account_type=k, account_number=a,
                       holder_kana=n, amount_yen=y)
        for r, b, br, k, a, n, y in zip(refs, banks, branches, kinds, accounts, names, yen)
    ]


def _reference_problems(job, refs, banks, branches, kinds, accounts, names, yen, skip=frozenset()) -> list:
    problems: list = []
    for p in _payments(refs, banks, branches, kinds, accounts, names, yen):
        if p.reference not in skip:
            problems.extend(zengin.validate_payment(p, allow_wo=job.allow_wo))
    return problems

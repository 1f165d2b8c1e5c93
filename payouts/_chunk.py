"""The per-row hot loop of the payout stage, run on the pool of payouts.pipeline (threads when the C loop
is built, processes otherwise) or inline for small batches.

Input: a slice of `COPY (SELECT <STAGE_COLUMNS>) TO STDOUT` text output, whole rows only. Output: the
cp932 bytes of the Zengin data records for those rows, their count and total, and every problem found.

Three paths give the same bytes:
* payouts/_fastrender.c, when every row of the chunk is valid and in the common shape (it releases the
  GIL; it never judges a payment, it returns None and lets the paths below decide);
* the Python fast path decrypts, then checks the whole chunk with a handful of C-level operations
  (joined strings matched once per chunk, not once per row) and formats with zengin's own record format;
* if any check fails, the reference path builds `zengin.Payment` objects and runs
  `zengin.validate_payment` on each, so the report lists every bad payment and every reason.
tests/payouts/test_fastrender.py holds the C loop to the Python path byte for byte;
tests/payouts/test_pipeline.py proves the fast path equals `zengin.generate` byte for byte.

Nothing here logs or raises with a name or an account number in it.
"""

from __future__ import annotations

import re
from itertools import repeat
from operator import itemgetter
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.crypto import NONCE_BYTES, ciphertext_header, field_aad_prefix
from payouts import zengin
from payouts.kana import _CHARSETS
from payouts.payments import BANK

# The columns the stage reads, in this order (the bench's floor COPYs exactly these).
STAGE_COLUMNS = "payment_id, bank_code, branch_code, account_type, bank_enc, amount_yen"

_HEADER = len(ciphertext_header(0))  # app.crypto: version byte + 4-byte key version
_NONCE_END = _HEADER + NONCE_BYTES
_SEP = "\x00"  # joins a chunk's values for one-shot checks; never allowed in any field
_SEP_BYTES = _SEP.encode()


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
    count: int  # type: ignore[assignment]  # the field hides tuple.count(), which nothing here calls
    total_yen: int
    last_payment_id: int
    problems: list  # zengin.Problem


try:  # built by `pip install -e .` (setup.py); without it every chunk takes the Python path, slower
    from payouts import _fastrender
except ImportError:  # pragma: no cover - tests/payouts/test_fastrender.py fails if it is missing
    _fastrender = None  # type: ignore[assignment]  # an optional module: callers test for None

# Where _fastrender writes each variable field of the 120-byte data record (zengin._data_format's
# positions, 0-based): 銀行 2-5, 支店 21-23, 種目 43, 口座 44-50, 受取人名 51-80, 金額 81-90,
# 顧客コード1 / EDI情報 from 92. Everything else comes from a template rendered by the Python format.
_BANK_AT, _BRANCH_AT, _TYPE_AT, _ACCOUNT_AT, _NAME_AT, _AMOUNT_AT, _REF_AT = 1, 20, 42, 43, 50, 80, 91
_TYPES_OK = bytes(1 if 0x30 <= b <= 0x39 and b - 0x30 in zengin.PAYEE_ACCOUNT_TYPES else 0 for b in range(256))
_layouts: dict[tuple, tuple] = {}


def _c_layout(job: ChunkJob) -> tuple:
    """The per-file arguments of _fastrender.render after (data, key, header, aad): template, record
    separator, allowed name characters (ASCII table, half-width kana table), account types, EDI flag,
    field offsets. Cached per (format, separator, ｦ allowed)."""
    cache_key = (job.record_format, job.separator, job.allow_wo)
    layout = _layouts.get(cache_key)
    if layout is None:
        template = (job.record_format % ("0000", "", "000", "", 1, "0000000", "", 1, "0", 1)).encode("cp932")
        charset = _CHARSETS[("party", job.allow_wo)]
        ascii_ok = bytes(1 if chr(c) in charset else 0 for c in range(128))
        kana_ok = bytes(1 if chr(0xFF61 + i) in charset else 0 for i in range(63))
        edi = "%-20d" in job.record_format
        layout = (
            template,
            job.separator.encode("ascii"),
            ascii_ok,
            kana_ok,
            _TYPES_OK,
            edi,
            _BANK_AT,
            _BRANCH_AT,
            _TYPE_AT,
            _ACCOUNT_AT,
            _NAME_AT,
            _AMOUNT_AT,
            _REF_AT,
        )
        if len(_layouts) > 16:
            _layouts.clear()
        _layouts[cache_key] = layout
    return layout


_DECRYPT_MESSAGE = "口座情報（暗号化）を復号できません（鍵または行の不一致・改ざん）。"
_LEGACY_MESSAGE = (
    "口座情報が旧形式（0009以前）です。"
    "kyufu payouts upgrade-bank-layout --municipality <団体コード> で再暗号化してください。"
)
_ciphers: dict[bytes, AESGCM] = {}


def _cipher(key: bytes) -> AESGCM:
    """One AESGCM object per key per process (building it costs about as much as a decryption)."""
    aead = _ciphers.get(key)
    if aead is None:
        if len(_ciphers) > 16:  # a long-lived worker serving many municipalities
            _ciphers.clear()
        aead = _ciphers[key] = AESGCM(key)
    return aead


def _bad_char(allow_wo: bool) -> re.Pattern:
    charset = _CHARSETS[("party", allow_wo)].replace(" ", "")
    return re.compile("[^" + re.escape(charset) + " " + _SEP + "]")


_BAD_CHAR = {wo: _bad_char(wo) for wo in (False, True)}
# kana._BAD_VOICING (a ﾞ/ﾟ that does not follow a kana it can voice) with the mark first: the regex
# engine then jumps from mark to mark instead of testing a lookbehind at every character (7x faster,
# measured; tests/payouts/test_pipeline.py proves the two agree).
_BAD_VOICING_FAST = re.compile("[ﾞﾟ](?<![ｶ-ﾄﾊ-ﾎｳ]ﾞ)(?<![ﾊ-ﾎ]ﾟ)")
_BAD_SPACES = (_SEP + " ", " " + _SEP, "  ")  # a value's leading or trailing space, or a double space
_SEVEN_DIGITS = re.compile(f"[0-9]{{7}}(?:{_SEP}[0-9]{{7}})*")
_BANKS = re.compile(f"[0-9]{{4}}(?:{_SEP}[0-9]{{4}})*")
_BRANCHES = re.compile(f"[0-9]{{3}}(?:{_SEP}[0-9]{{3}})*")
_NAME_LENGTHS = re.compile(f"[^{_SEP}]{{1,30}}(?:{_SEP}[^{_SEP}]{{1,30}})*")


def render_chunk(job: ChunkJob) -> ChunkResult:
    """Rows → records: the C loop (payouts/_fastrender.c) when every row is valid and in the common
    shape, otherwise the Python path below, which gives the same bytes or the full problem report."""
    header = ciphertext_header(job.key_version)
    aad_bank = field_aad_prefix(job.municipality_code, "payments", BANK)  # payouts.payments.seal_bank
    if _fastrender is not None:
        fast = _fastrender.render(job.data, job.key, header, aad_bank, *_c_layout(job))
        if fast is not None:
            records, count, total, last = fast
            return ChunkResult(records, count, total, last, [])
    return _render_python(job, header, aad_bank)


def _render_python(job: ChunkJob, header: bytes, aad_bank: bytes) -> ChunkResult:
    """The reference path. It has no Python loop per row in the common case: columns are cut out of
    the chunk with slicing, and every per-row step is a C-level `map` (hex decoding, slicing,
    decryption, formatting). A Python loop runs only to find which rows failed, after a failure."""
    aead = _cipher(job.key)

    # Text COPY: 6 tab-separated fields a row, bytea as \\x<hex> (the only place a backslash can be).
    fields = job.data.decode("ascii").replace("\\\\x", "").replace("\n", "\t").split("\t")
    if fields[-1] == "":
        fields.pop()
    if len(fields) % 6:
        raise ValueError("COPY の行の形式が想定と違います（列数）。")
    pids, banks, branches, types, bank_hex, amounts = (fields[i::6] for i in range(6))
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
    # Every ciphertext must carry this format and key version: counted once in the chunk's text (a
    # bytea value there is '\\x' + hex right after a tab, and hex has no tab or backslash). A row from
    # before migration 0009 has no bank_enc (\N) and fails this count.
    decrypted = None
    if job.data.count(b"\t\\\\x" + header.hex().encode()) == count:
        decrypted = _decrypt_column(aead, bank_hex, aad_bank, row_keys)
    if decrypted is None:
        problems = [
            zengin.Problem(ref, "bank", "decrypt", _DECRYPT_MESSAGE if hex_ != "\\N" else _LEGACY_MESSAGE)
            for ref, hex_, row in zip(refs, bank_hex, row_keys)
            if _decrypt_one(aead, header, hex_, aad_bank + row) is None
        ]
        if not problems:  # every row decrypts alone: a chunk-level check misfired; never write nothing silently
            raise RuntimeError("口座情報の一括復号と行ごとの復号の結果が一致しません。")
        return ChunkResult(b"", count, total, last, problems)
    accounts_joined, accounts, names_joined, names = decrypted

    if not _fast_checks(job.allow_wo, refs, banks, branches, kinds, accounts_joined, names_joined, len(names), yen):
        problems = _reference_problems(job, refs, banks, branches, kinds, accounts, names, yen)
        if problems:
            return ChunkResult(b"", count, total, last, problems)
        # Valid but not in the common shape (a 1-6 digit account number): the reference formatter.
        payments = _payments(refs, banks, branches, kinds, accounts, names, yen)
        lines_out = [job.record_format % zengin._DATA_FIELDS(p) for p in payments]
    else:
        blank, new_code = repeat(""), repeat("0")
        lines_out = list(
            map(
                job.record_format.__mod__,
                zip(banks, blank, branches, blank, kinds, accounts, names, yen, new_code, refs),
            )
        )
    sep = job.separator
    try:
        records = (sep.join(lines_out) + sep).encode("cp932")
    except UnicodeEncodeError:  # unreachable after the checks; kept so a gap cannot shift fields
        records = b""
    if len(records) != count * (zengin.RECORD_BYTES + len(sep)):
        problems = _reference_problems(job, refs, banks, branches, kinds, accounts, names, yen)
        return ChunkResult(
            b"",
            count,
            total,
            last,
            problems or [zengin.Problem(refs[0], "holder_kana", "charset", "レコード長が120バイトになりません。")],
        )
    return ChunkResult(records, count, total, last, [])


_NONCE = itemgetter(slice(_HEADER, _NONCE_END))
_BODY = itemgetter(slice(_NONCE_END, None))
_AT_SEVEN = itemgetter(7)


def _decrypt_column(aead, bank_hex, aad_prefix, row_keys) -> tuple[str, list[str], str, list[str]] | None:
    """Decrypt a chunk's bank_enc values with C-level maps: (accounts joined by _SEP, accounts, names
    joined, names), or None if any value fails (the caller then finds which). The plaintexts (account
    NUL name) are joined as bytes and decoded and split once per chunk, not once per row, and the checks
    run on the joined text as it is."""
    try:
        column = list(map(bytes.fromhex, bank_hex))
        plain = list(map(aead.decrypt, map(_NONCE, column), map(_BODY, column), map(aad_prefix.__add__, row_keys)))
        joined = _SEP_BYTES.join(plain)
        # Pairs line up only if every plaintext has exactly one separator: here, at byte 7 of each (the
        # fast path's 7-digit account) and no other in the chunk. Otherwise split row by row.
        aligned = joined.count(_SEP_BYTES) == 2 * len(plain) - 1 and set(map(_AT_SEVEN, plain)) == {0}
        values = joined.decode("utf-8").split(_SEP) if aligned else None
    except (InvalidTag, UnicodeDecodeError, ValueError):
        return None
    except IndexError:  # a plaintext shorter than 8 bytes (a short account number): row by row
        values = None
    if values is None:
        try:
            pairs = [value.decode("utf-8").split(_SEP, 1) for value in plain]
        except UnicodeDecodeError:
            return None
        if min(map(len, pairs)) < 2:  # no separator at all: not a bank_enc plaintext
            return None
        values = [part for pair in pairs for part in pair]
    accounts, names = values[0::2], values[1::2]
    return _SEP.join(accounts), accounts, _SEP.join(names), names


def _decrypt_one(aead, header, hex_, aad) -> str | None:
    try:
        ct = bytes.fromhex(hex_)
        if ct[:_HEADER] != header:
            return None
        plain = aead.decrypt(ct[_HEADER:_NONCE_END], ct[_NONCE_END:], aad).decode("utf-8")
    except (InvalidTag, UnicodeDecodeError, ValueError):
        return None
    return plain if _SEP in plain else None  # account NUL name


def _fast_checks(allow_wo, refs, banks, branches, kinds, accounts_joined, names_joined, n, yen) -> bool:
    """True only if every row would pass zengin.validate_payment and is already in canonical shape.
    The text checks scan each chunk's joined values once (the separator bounds each value)."""
    return (
        _NAME_LENGTHS.fullmatch(names_joined) is not None  # 1-30 characters each, n values
        and names_joined.count(_SEP) == n - 1
        and _BAD_CHAR[allow_wo].search(names_joined) is None
        and not names_joined.startswith(" ")
        and not names_joined.endswith(" ")
        and not any(map(names_joined.__contains__, _BAD_SPACES))
        and _BAD_VOICING_FAST.search(names_joined) is None
        and _SEVEN_DIGITS.fullmatch(accounts_joined) is not None
        and _BANKS.fullmatch(_SEP.join(banks)) is not None
        and _BRANCHES.fullmatch(_SEP.join(branches)) is not None
        and set(kinds) <= zengin.PAYEE_ACCOUNT_TYPES
        and min(yen) > 0
        and max(yen) <= zengin.MAX_AMOUNT_YEN
        and min(refs) > 0
        and max(refs) <= zengin.MAX_REFERENCE
    )


def _payments(refs, banks, branches, kinds, accounts, names, yen) -> list[zengin.Payment]:
    return [
        zengin.Payment(
            reference=r, bank_code=b, branch_code=br, account_type=k, account_number=a, holder_kana=n, amount_yen=y
        )
        for r, b, br, k, a, n, y in zip(refs, banks, branches, kinds, accounts, names, yen)
    ]


def _reference_problems(job, refs, banks, branches, kinds, accounts, names, yen, skip=frozenset()) -> list:
    problems: list = []
    for p in _payments(refs, banks, branches, kinds, accounts, names, yen):
        if p.reference not in skip:
            problems.extend(zengin.validate_payment(p, allow_wo=job.allow_wo))
    return problems

"""payouts/_fastrender.c against the Python reference path of payouts/_chunk.py.

The C loop may only ever say "these are exactly the bytes" or "let Python look" (None). These tests
build COPY-text chunks the way the stage receives them and check both directions: for valid chunks the
bytes are identical to the Python path's (for every bank-settings shape), and every kind of deviation
makes the C loop step aside, so the Python path's problem report (or its reference formatting) decides.
"""

from __future__ import annotations

import os
import random

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from payouts import _chunk, bench, kana, zengin

CODE = "011002"
KEY = bytes(range(32))
HEADER = bytes([1]) + (1).to_bytes(4, "big")
AAD = f"{CODE}|payments|bank|".encode()
AEAD = AESGCM(KEY)


def test_the_c_module_is_built():
    """`make install` builds it (setup.py); without it the stage silently takes the 6x slower path."""
    assert _chunk._fastrender is not None


def _settings(**overrides) -> zengin.BankSettings:
    base = dict(requester_code="1234567890", requester_name_kana="ｼ", bank_code="0001", branch_code="001",
                account_type=1, account_number="1234567", separator="crlf")
    return zengin.BankSettings(**{**base, **overrides})


def _row(pid, bank, branch, kind, plaintext: bytes, yen, *, key=KEY, aad=AAD, header=HEADER) -> str:
    ciphertext = bench._encrypt_row(AESGCM(key) if key is not KEY else AEAD, header, aad, pid, plaintext)
    return f"{pid}\t{bank}\t{branch}\t{kind}\t\\\\x{ciphertext.hex()}\t{yen}\n"


def _job(rows: str, settings: zengin.BankSettings) -> _chunk.ChunkJob:
    sep = "\r\n" if settings.separator == "crlf" else ""
    return _chunk.ChunkJob(KEY, 1, CODE, zengin._data_format(settings), sep, settings.allow_wo, rows.encode())


def _c(job: _chunk.ChunkJob):
    return _chunk._fastrender.render(job.data, job.key, HEADER, AAD, *_chunk._c_layout(job))


def _python(job: _chunk.ChunkJob) -> _chunk.ChunkResult:
    return _chunk._render_python(job, HEADER, AAD)


def _random_name(rng: random.Random, allow_wo: bool) -> str:
    """A valid normalised 'party' name of 1-30 characters: kana with legal ﾞ/ﾟ, letters, digits, ().-/
    and single inner spaces."""
    plain = [c for c in kana._CHARSETS[("party", allow_wo)] if c not in " ﾞﾟ"]
    voiceable, semi = "ｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾊﾋﾌﾍﾎｳ", "ﾊﾋﾌﾍﾎ"
    out: list[str] = []
    target = rng.randint(1, 30)
    while len(out) < target:
        roll = rng.random()
        if roll < 0.1 and len(out) + 2 <= target:
            out += [rng.choice(voiceable), "ﾞ"]
        elif roll < 0.15 and len(out) + 2 <= target:
            out += [rng.choice(semi), "ﾟ"]
        elif roll < 0.25 and out and out[-1] != " " and len(out) + 2 <= target:
            out += [" ", rng.choice(plain)]
        else:
            out.append(rng.choice(plain))
    name = "".join(out)
    assert kana.is_zengin_kana(name, allow_wo=allow_wo), name
    return name


SHAPES = [
    _settings(),
    _settings(separator="none"),
    _settings(reference_field="edi", transfer_designation="8"),
    _settings(clearing_house_fill="spaces", allow_wo=True),
]


@pytest.mark.parametrize("settings", SHAPES, ids=["crlf", "no-separator", "edi", "spaces-wo"])
def test_valid_chunks_give_the_python_bytes(settings):
    rng = random.Random(hash(settings.separator + settings.reference_field) & 0xFFFF)
    rows, expected_total = [], 0
    pid = rng.randint(1, 1000)
    for _ in range(2_000):
        pid += rng.randint(1, 50)
        yen = rng.choice([1, 9_999_999_999, rng.randint(1, 10**rng.randint(1, 10) - 1)])
        expected_total += yen
        account = f"{rng.randint(0, 9_999_999):07d}"
        plaintext = (account + "\x00" + _random_name(rng, settings.allow_wo)).encode()
        rows.append(_row(pid, f"{rng.randint(0, 9999):04d}", f"{rng.randint(0, 999):03d}",
                         rng.choice([1, 2, 4, 9]), plaintext, yen))
    job = _job("".join(rows), settings)
    fast = _c(job)
    assert fast is not None, "a valid chunk must take the C path"
    reference = _python(job)
    assert reference.problems == []
    assert fast == (reference.records, reference.count, reference.total_yen, reference.last_payment_id)
    assert fast[1] == 2_000 and fast[2] == expected_total and fast[3] == pid
    assert _chunk.render_chunk(job) == reference


def test_an_empty_chunk():
    job = _job("", _settings())
    assert _c(job) == (b"", 0, 0, 0)


GOOD = ("0005", "001", 1, b"1234567\x00\xef\xbe\x80\xef\xbe\x9b\xef\xbd\xb3", 1000)  # ﾀﾛｳ


def _deviations():
    """(id, row text, allow_wo): each must make the C loop return None."""
    bank, branch, kind, plaintext, yen = GOOD
    name = lambda s: b"1234567\x00" + s.encode()  # noqa: E731
    yield "wrong-key", _row(7, bank, branch, kind, plaintext, yen, key=os.urandom(32)), False
    yield "wrong-row-aad", _row(7, bank, branch, kind, plaintext, yen, aad=AAD + b"8"), False
    yield "other-municipality-aad", _row(7, bank, branch, kind, plaintext, yen, aad=b"131016|payments|bank|"), False
    yield "key-version", _row(7, bank, branch, kind, plaintext, yen, header=bytes([1, 0, 0, 0, 2])), False
    yield "short-account", _row(7, bank, branch, kind, "1234\x00ﾀﾛｳ".encode(), yen), False
    yield "no-separator", _row(7, bank, branch, kind, b"1234567", yen), False
    yield "two-separators", _row(7, bank, branch, kind, b"1234567\x00\xef\xbe\x80\x00\xef\xbe\x80", yen), False
    yield "kanji", _row(7, bank, branch, kind, name("山田"), yen), False
    yield "full-width-kana", _row(7, bank, branch, kind, name("タロウ"), yen), False
    yield "lower-case", _row(7, bank, branch, kind, name("ﾀﾛｳ abc"), yen), False
    yield "leading-space", _row(7, bank, branch, kind, name(" ﾀﾛｳ"), yen), False
    yield "trailing-space", _row(7, bank, branch, kind, name("ﾀﾛｳ "), yen), False
    yield "double-space", _row(7, bank, branch, kind, name("ﾀ  ﾛｳ"), yen), False
    yield "empty-name", _row(7, bank, branch, kind, name(""), yen), False
    yield "31-characters", _row(7, bank, branch, kind, name("ｱ" * 31), yen), False
    yield "voiced-a", _row(7, bank, branch, kind, name("ｱﾞ"), yen), False
    yield "semi-voiced-ka", _row(7, bank, branch, kind, name("ｶﾟ"), yen), False
    yield "leading-mark", _row(7, bank, branch, kind, name("ﾞｶ"), yen), False
    yield "wo-not-allowed", _row(7, bank, branch, kind, name("ｦ"), yen), False
    yield "small-kana", _row(7, bank, branch, kind, name("ｧ"), yen), False
    yield "amount-zero", _row(7, bank, branch, kind, plaintext, 0), False
    yield "amount-too-big", _row(7, bank, branch, kind, plaintext, 10_000_000_000), False
    yield "bank-3-digits", _row(7, "005", branch, kind, plaintext, yen), False
    yield "branch-letters", _row(7, bank, "0A1", kind, plaintext, yen), False
    yield "account-type-3", _row(7, bank, branch, 3, plaintext, yen), False
    yield "null-bank-enc", f"7\t{bank}\t{branch}\t{kind}\t\\N\t{yen}\n", False
    yield "upper-case-hex", _row(7, bank, branch, kind, plaintext, yen).upper().replace("\\\\X", "\\\\x"), False
    yield "missing-newline", _row(7, bank, branch, kind, plaintext, yen)[:-1], False
    yield "seven-fields", _row(7, bank, branch, kind, plaintext, yen)[:-1] + "\t1\n", False
    yield "five-fields", _row(7, bank, branch, kind, plaintext, yen).split("\t", 1)[1], False
    yield "reference-11-digits", _row(10_000_000_000, bank, branch, kind, plaintext, yen), False


@pytest.mark.parametrize("deviation,row,allow_wo", list(_deviations()), ids=[d[0] for d in _deviations()])
def test_every_deviation_steps_aside_for_python(deviation, row, allow_wo):
    """One bad row among good ones: the C loop returns None; render_chunk's answer is the Python path's."""
    settings = _settings(allow_wo=allow_wo)
    good = "".join(_row(pid, *GOOD) for pid in (1, 2, 3))
    tail = "".join(_row(pid, *GOOD) for pid in (20, 21))
    job = _job(good + row + tail, settings)
    assert _c(job) is None
    try:
        reference = _python(job)
    except ValueError:  # rows the Python path cannot even split into six fields
        with pytest.raises(ValueError):
            _chunk.render_chunk(job)
        return
    assert _chunk.render_chunk(job) == reference


def test_wo_is_taken_when_the_bank_allows_it():
    job = _job(_row(7, "0005", "001", 1, "1234567\x00ｦｶﾞ".encode(), 5), _settings(allow_wo=True))
    fast = _c(job)
    assert fast is not None and fast[0] == _python(job).records


def test_the_python_path_reports_what_the_c_loop_refused():
    """The report after a C refusal names the bad payment (render_chunk falls through, nothing is lost)."""
    name = "山田".encode()
    job = _job(_row(1, *GOOD) + _row(9, "0005", "001", 1, b"1234567\x00" + name, 1000), _settings())
    result = _chunk.render_chunk(job)
    assert result.records == b"" and {(p.reference, p.field) for p in result.problems} == {(9, "holder_kana")}

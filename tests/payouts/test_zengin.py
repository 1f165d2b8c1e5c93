"""payouts.zengin: the 総合振込 (21) layout of docs/zengin.md §1, generator and parser."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from payouts.kana import fit, is_zengin_kana
from payouts.zengin import (
    BankSettings,
    FileWriter,
    InvalidBankSettings,
    InvalidPayments,
    ParsedHeader,
    ParsedTrailer,
    Payment,
    TotalsOverflow,
    ZenginFormatError,
    ZenginParseError,
    data_record,
    end_record,
    generate,
    header_record,
    iter_parse,
    parse,
    trailer_record,
    validate_payment,
)

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "zengin_golden_crlf.txt"
DATE = datetime.date(2026, 9, 1)

SETTINGS = BankSettings(
    requester_code="1234567890",
    requester_name_kana="ﾃｽﾄｼ ｷﾕｳﾌｷﾝ",
    bank_code="0001",
    bank_name_kana="ﾐｽﾞﾎ",
    branch_code="001",
    branch_name_kana="ﾄｳｷﾖｳ",
    account_type=1,
    account_number="7654321",
    separator="crlf",
)

PAYMENTS = [
    Payment(  # a voiced name, both optional names filled, 新規コード 1
        reference=1,
        bank_code="0005",
        bank_name_kana="ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ",
        branch_code="001",
        branch_name_kana="ﾄｳｷﾖｳ",
        account_type=1,
        account_number="12345",
        holder_kana="ﾔﾏﾀﾞ ﾀﾛｳ",
        amount_yen=100_000,
        new_code="1",
    ),
    Payment(  # ゆうちょ銀行: bank 9900, branch 019 (〇一九店)
        reference=2,
        bank_code="9900",
        bank_name_kana="ﾕｳﾁﾖ",
        branch_code="019",
        account_type=1,
        account_number="1234567",
        holder_kana="ｻﾄｳ ﾊﾅｺ",
        amount_yen=50_000,
    ),
    Payment(  # 当座, a company name with (ｶ) and ﾊﾟ, a ten-digit amount, no bank names
        reference=3,
        bank_code="0009",
        branch_code="100",
        account_type=2,
        account_number="7000001",
        holder_kana="(ｶ)ﾊﾟﾝﾔ",
        amount_yen=1_234_567_890,
    ),
    Payment(  # 貯蓄, a ten-digit reference, 新規コード 2, one yen
        reference=4_000_000_000,
        bank_code="0001",
        branch_code="002",
        account_type=4,
        account_number="0000001",
        holder_kana="ｽｽﾞｷ ｼﾞﾕﾝ",
        amount_yen=1,
        new_code="2",
    ),
]

# The expected file, assembled by hand from the layout tables (§1.3-§1.5). Positions are
# 1-based and inclusive, as in the spec. Nothing here calls the generator.
EXPECTED_RECORDS = [
    # header §1.3
    "1"  # 1 データ区分
    "21"  # 2-3 種別コード 総合振込
    "0"  # 4 コード区分 JIS
    "1234567890"  # 5-14 振込依頼人コード
    "ﾃｽﾄｼ ｷﾕｳﾌｷﾝ"
    + " "
    * 29  # 15-54 振込依頼人名 (11 + 29 = 40)
    + "0901"  # 55-58 取組日 MMDD
    "0001"  # 59-62 仕向銀行番号
    "ﾐｽﾞﾎ"
    + " "
    * 11  # 63-77 仕向銀行名 (4 + 11)
    + "001"  # 78-80 仕向支店番号
    "ﾄｳｷﾖｳ"
    + " "
    * 10  # 81-95 仕向支店名 (5 + 10)
    + "1"  # 96 預金種目 普通
    "7654321"  # 97-103 口座番号
     + " " * 17,  # 104-120 ダミー
    # data §1.4, payment 1
    "2"  # 1 データ区分
    "0005"  # 2-5 被仕向銀行番号
    "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ"
    + " "
    * 2  # 6-20 被仕向銀行名 (13 + 2)
    + "001"  # 21-23 被仕向支店番号
    "ﾄｳｷﾖｳ"
    + " "
    * 10  # 24-38 被仕向支店名
    + "0000"  # 39-42 手形交換所番号 (zero-filled)
    "1"  # 43 預金種目
    "0012345"  # 44-50 口座番号 (zero-filled on the left)
    "ﾔﾏﾀﾞ ﾀﾛｳ"
    + " "
    * 22  # 51-80 受取人名 (8 + 22; ﾀﾞ is two bytes)
    + "0000100000"  # 81-90 振込金額
    "1"  # 91 新規コード
    "0000000001"  # 92-101 顧客コード1 = reference
    "0000000000"  # 102-111 顧客コード2 (unused N: zeros)
    "7"  # 112 振込指定区分 テレ振込
    " "  # 113 識別表示
     + " " * 7,  # 114-120 ダミー
    # data, payment 2
    "2"
    "9900"
    "ﾕｳﾁﾖ" + " " * 11 + "019" + " " * 15 + "0000"
    "1"
    "1234567" + "ｻﾄｳ ﾊﾅｺ" + " " * 23 + "0000050000"
    "0"
    "0000000002"
    "0000000000"
    "7"
    " " + " " * 7,
    # data, payment 3
    "2"
    "0009" + " " * 15 + "100" + " " * 15 + "0000"
    "2"
    "7000001" + "(ｶ)ﾊﾟﾝﾔ" + " " * 23 + "1234567890"
    "0"
    "0000000003"
    "0000000000"
    "7"
    " " + " " * 7,
    # data, payment 4
    "2"
    "0001" + " " * 15 + "002" + " " * 15 + "0000"
    "4"
    "0000001" + "ｽｽﾞｷ ｼﾞﾕﾝ" + " " * 21 + "0000000001"
    "2"
    "4000000000"
    "0000000000"
    "7"
    " " + " " * 7,
    # trailer §1.5
    "8"  # 1 データ区分
    "000004"  # 2-7 合計件数
    "001234717891" + " " * 101,  # 8-19 合計金額 = 100000 + 50000 + 1234567890 + 1  # 20-120 ダミー
    # end §1.5
    "9" + " " * 119,
]
EXPECTED = b"".join(r.encode("cp932") + b"\r\n" for r in EXPECTED_RECORDS)


def _record(data: bytes, n: int, width: int = 122) -> bytes:
    """The n-th record (1-based) without its separator."""
    return data[(n - 1) * width : (n - 1) * width + 120]


def _replace(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


# --- golden file and layout ---------------------------------------------------------------


def test_hand_built_records_are_120_bytes():
    for r in EXPECTED_RECORDS:
        assert len(r) == 120 and len(r.encode("cp932")) == 120


def test_generator_matches_hand_built_golden_bytes():
    assert generate(SETTINGS, DATE, PAYMENTS) == EXPECTED


def test_committed_golden_file_matches():
    assert GOLDEN.read_bytes() == EXPECTED


def test_record_functions_match_hand_built_records():
    assert header_record(SETTINGS, DATE) == EXPECTED_RECORDS[0]
    for p, expected in zip(PAYMENTS, EXPECTED_RECORDS[1:5]):
        assert data_record(SETTINGS, p) == expected
    assert trailer_record(4, 1_234_717_891) == EXPECTED_RECORDS[5]
    assert end_record() == EXPECTED_RECORDS[6]


def test_header_fields_at_exact_offsets():
    h = header_record(
        dataclasses.replace(SETTINGS, requester_code="42", account_number="5"), datetime.date(2027, 12, 31)
    )
    assert h[0] == "1"
    assert h[1:3] == "21"
    assert h[3] == "0"
    assert h[4:14] == "0000000042"  # 5-14 zero-filled on the left
    assert h[14:54].rstrip() == "ﾃｽﾄｼ ｷﾕｳﾌｷﾝ"
    assert h[54:58] == "1231"  # 55-58 取組日 MMDD
    assert h[58:62] == "0001"
    assert h[77:80] == "001"
    assert h[95] == "1"
    assert h[96:103] == "0000005"
    assert h[103:] == " " * 17


def test_data_fields_at_exact_offsets():
    d = EXPECTED_RECORDS[4]
    generated = data_record(SETTINGS, PAYMENTS[3])
    assert generated == d
    assert generated[1:5] == "0001"
    assert generated[38:42] == "0000"
    assert generated[42] == "4"
    assert generated[43:50] == "0000001"
    assert generated[50:80].rstrip() == "ｽｽﾞｷ ｼﾞﾕﾝ"
    assert generated[80:90] == "0000000001"
    assert generated[90] == "2"
    assert generated[91:101] == "4000000000"
    assert generated[111] == "7"
    assert generated[112] == " "


def test_edi_reference_clearing_spaces_and_designation_settings():
    s = dataclasses.replace(SETTINGS, reference_field="edi", clearing_house_fill="spaces", transfer_designation=" ")
    d = data_record(s, PAYMENTS[2])
    assert d[38:42] == "    "  # 手形交換所番号 as spaces
    assert d[91:111] == "3" + " " * 19  # EDI情報: left-justified digits
    assert d[111] == " "  # 振込指定区分 space
    assert d[112] == "Y"  # 識別表示
    parsed = parse(generate(s, DATE, PAYMENTS))
    assert parsed.payments == PAYMENTS
    assert parsed.reference_field == "edi"


def test_separator_none_gives_120_bytes_per_record():
    s = dataclasses.replace(SETTINGS, separator="none")
    data = generate(s, DATE, PAYMENTS)
    assert len(data) == 120 * (len(PAYMENTS) + 3)
    assert b"\r" not in data and b"\n" not in data
    assert data == EXPECTED.replace(b"\r\n", b"")
    parsed = parse(data)
    assert parsed.separator == "none" and parsed.payments == PAYMENTS


def test_deterministic():
    assert generate(SETTINGS, DATE, PAYMENTS) == generate(SETTINGS, DATE, list(PAYMENTS))


def test_streaming_writer_equals_generate():
    w = FileWriter(SETTINGS, DATE)
    parts = [w.header(), w.records(PAYMENTS[:2]), w.records(iter(PAYMENTS[2:])), w.records([]), w.finish()]
    assert b"".join(parts) == EXPECTED
    assert (w.count, w.total_yen) == (4, 1_234_717_891)


def test_parse_reads_header_and_totals():
    parsed = parse(EXPECTED)
    assert parsed.header == ParsedHeader(
        kind_code="21",
        code_division="0",
        requester_code="1234567890",
        requester_name_kana="ﾃｽﾄｼ ｷﾕｳﾌｷﾝ",
        transfer_mmdd="0901",
        bank_code="0001",
        bank_name_kana="ﾐｽﾞﾎ",
        branch_code="001",
        branch_name_kana="ﾄｳｷﾖｳ",
        account_type=1,
        account_number="7654321",
    )
    assert parsed.payments == PAYMENTS
    assert (parsed.count, parsed.total_yen, parsed.separator) == (4, 1_234_717_891, "crlf")


def test_iter_parse_yields_header_payments_trailer():
    items = list(iter_parse(EXPECTED))
    assert isinstance(items[0], ParsedHeader)
    assert items[1:5] == PAYMENTS
    assert items[5] == ParsedTrailer(4, 1_234_717_891, "customer_code1")


def test_payment_zero_fills_short_account_numbers():
    assert PAYMENTS[0].account_number == "0012345"


# --- invalid payments ---------------------------------------------------------------------

GOOD = PAYMENTS[1]


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"amount_yen": 0}, "amount_yen", "out_of_range"),
        ({"amount_yen": -1}, "amount_yen", "out_of_range"),
        ({"amount_yen": 10**10}, "amount_yen", "out_of_range"),
        ({"amount_yen": 1000.0}, "amount_yen", "type"),
        ({"amount_yen": True}, "amount_yen", "type"),
        ({"account_number": "12345678"}, "account_number", "too_long"),
        ({"account_number": "12-4567"}, "account_number", "format"),
        ({"account_number": "１２３"}, "account_number", "format"),  # full-width digits
        ({"bank_code": "99O0"}, "bank_code", "format"),
        ({"bank_code": "990"}, "bank_code", "format"),
        ({"branch_code": "1"}, "branch_code", "format"),
        ({"holder_kana": "山田"}, "holder_kana", "charset"),
        ({"holder_kana": "ｷｬﾉﾝ"}, "holder_kana", "charset"),  # small kana
        ({"holder_kana": "ﾔﾏﾀﾞ "}, "holder_kana", "charset"),  # not normalised
        ({"holder_kana": "ﾔ" * 31}, "holder_kana", "too_long"),
        ({"holder_kana": ""}, "holder_kana", "empty"),
        ({"account_type": 3}, "account_type", "not_allowed"),
        ({"account_type": True}, "account_type", "not_allowed"),
        ({"new_code": "3"}, "new_code", "not_allowed"),
        ({"reference": 0}, "reference", "out_of_range"),
        ({"reference": 10**10}, "reference", "out_of_range"),
        ({"reference": "5"}, "reference", "type"),
        ({"bank_name_kana": "ﾐｽﾞﾎ(ｶ)"}, "bank_name_kana", "invalid"),
        ({"branch_name_kana": "ｱ" * 16}, "branch_name_kana", "invalid"),
    ],
)
def test_invalid_payment_refused_with_reason(changes, field, reason):
    bad = dataclasses.replace(GOOD, **changes)
    assert [(p.field, p.reason) for p in validate_payment(bad)] == [(field, reason)]
    with pytest.raises(InvalidPayments) as info:
        generate(SETTINGS, DATE, [bad])
    assert [(p.field, p.reason) for p in info.value.problems] == [(field, reason)]


def test_exactly_thirty_characters_and_ten_digit_amount_accepted():
    ok = dataclasses.replace(GOOD, holder_kana="ｶﾞ" * 15, amount_yen=9_999_999_999, reference=9_999_999_999)
    assert validate_payment(ok) == []
    assert parse(generate(SETTINGS, DATE, [ok])).payments == [ok]


def test_wo_needs_the_bank_setting():
    p = dataclasses.replace(GOOD, holder_kana="ｦﾉ ﾀﾛｳ")
    assert [x.reason for x in validate_payment(p)] == ["charset"]
    s = dataclasses.replace(SETTINGS, allow_wo=True)
    assert parse(generate(s, DATE, [p]), allow_wo=True).payments == [p]
    with pytest.raises(ZenginParseError):
        parse(generate(s, DATE, [p]))


BAD = [
    dataclasses.replace(GOOD, reference=11, amount_yen=0),
    dataclasses.replace(GOOD, reference=12, account_number="98765432", holder_kana="山田ﾀﾛｳ"),
    dataclasses.replace(GOOD, reference=13, bank_code="12a4", account_type=7, amount_yen=12.5),
]


def test_all_bad_payments_reported_not_only_the_first():
    payments = [GOOD, BAD[0], PAYMENTS[0], BAD[1], BAD[2], PAYMENTS[3]]
    with pytest.raises(InvalidPayments) as info:
        generate(SETTINGS, DATE, payments)
    problems = info.value.problems
    assert info.value.payment_count == 3
    assert [(p.reference, p.field, p.reason) for p in problems] == [
        (11, "amount_yen", "out_of_range"),
        (12, "account_number", "too_long"),
        (12, "holder_kana", "charset"),
        (13, "bank_code", "format"),
        (13, "account_type", "not_allowed"),
        (13, "amount_yen", "type"),
    ]


def test_writer_chunk_reports_all_and_counts_nothing():
    w = FileWriter(SETTINGS, DATE)
    w.header()
    with pytest.raises(InvalidPayments) as info:
        w.records([GOOD, *BAD])
    assert {p.reference for p in info.value.problems} == {11, 12, 13}
    assert (w.count, w.total_yen) == (0, 0)
    w.records([GOOD])
    assert (w.count, w.total_yen) == (1, GOOD.amount_yen)


def test_problem_messages_hold_no_personal_data():
    with pytest.raises(InvalidPayments) as info:
        generate(SETTINGS, DATE, BAD)
    texts = [str(info.value)] + [p.message for p in info.value.problems]
    for text in texts:
        assert text  # Japanese message present
        for secret in ("98765432", "山田", "ﾀﾛｳ", "ｻﾄｳ"):
            assert secret not in text


def test_unvalidated_wide_characters_caught_by_length_check():
    w = FileWriter(SETTINGS, DATE)
    w.header()
    with pytest.raises(ZenginFormatError):
        w.records([dataclasses.replace(GOOD, holder_kana="山田")], validate=False)
    with pytest.raises(ZenginFormatError):
        w.records([dataclasses.replace(GOOD, amount_yen=100.7)], validate=False)  # '%d' would truncate


def test_totals_overflow_refused():
    with pytest.raises(TotalsOverflow):
        trailer_record(1_000_000, 1)
    with pytest.raises(TotalsOverflow):
        trailer_record(1, 10**12)
    w = FileWriter(SETTINGS, DATE)
    w.header()
    big = dataclasses.replace(GOOD, amount_yen=9_999_999_999)
    w.records([big] * 100)  # 999,999,999,900 still fits in N(12)
    with pytest.raises(TotalsOverflow):
        w.records([big])
    assert w.count == 100


def test_writer_order_enforced():
    w = FileWriter(SETTINGS, DATE)
    with pytest.raises(ZenginFormatError):
        w.records([GOOD])
    w.header()
    with pytest.raises(ZenginFormatError):
        w.header()
    with pytest.raises(ZenginFormatError):
        w.finish()  # no data records
    with pytest.raises(ZenginFormatError):
        generate(SETTINGS, DATE, [])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"requester_code": "12345678901"}, "requester_code"),
        ({"requester_code": ""}, "requester_code"),
        ({"requester_name_kana": "テスト市"}, "requester_name_kana"),
        ({"requester_name_kana": "ｱ" * 41}, "requester_name_kana"),
        ({"bank_code": "001"}, "bank_code"),
        ({"bank_name_kana": "ﾐｽﾞﾎ(ｶ)"}, "bank_name_kana"),
        ({"branch_code": "0001"}, "branch_code"),
        ({"account_type": 4}, "account_type"),
        ({"account_number": "12345678"}, "account_number"),
        ({"separator": "lf"}, "separator"),
        ({"clearing_house_fill": "blank"}, "clearing_house_fill"),
        ({"transfer_designation": "9"}, "transfer_designation"),
        ({"reference_field": "customer_code2"}, "reference_field"),
    ],
)
def test_bank_settings_validated(changes, field):
    with pytest.raises(InvalidBankSettings) as info:
        dataclasses.replace(SETTINGS, **changes)
    assert info.value.field == field
    assert isinstance(info.value, ZenginFormatError)


# --- parser rejections --------------------------------------------------------------------


def _parse_error(data: bytes, **kw) -> ZenginParseError:
    with pytest.raises(ZenginParseError) as info:
        parse(data, **kw)
    return info.value


def test_parse_rejects_lf_only():
    e = _parse_error(EXPECTED.replace(b"\r\n", b"\n"))
    assert e.record_no == 0 and "LF" in e.message_ja


def test_parse_rejects_cr_only():
    assert _parse_error(EXPECTED.replace(b"\r\n", b"\r")).record_no == 0


def test_parse_rejects_mixed_separators():
    data = _replace(EXPECTED, 2 * 122 + 120, b"\n\n")  # record 3 ends LF LF
    assert _parse_error(data).record_no == 3


def test_parse_rejects_record_of_119_bytes():
    data = EXPECTED[: 122 + 50] + EXPECTED[122 + 51 :]  # one byte of record 2's name dropped
    e = _parse_error(data)
    assert e.record_no == 2


def test_parse_rejects_record_of_119_bytes_without_separator():
    data = EXPECTED.replace(b"\r\n", b"")[:-1]  # the end record is 119 bytes
    e = _parse_error(data)
    assert e.record_no == 7 and "120" in e.message_ja


def test_parse_rejects_separator_mismatch_with_setting():
    assert _parse_error(EXPECTED, separator="none").record_no == 2  # its CR LF is where record 2 would start
    assert _parse_error(EXPECTED.replace(b"\r\n", b""), separator="crlf").record_no == 0


def test_parse_rejects_trailer_count_mismatch():
    data = _replace(EXPECTED, 5 * 122 + 1, b"000005")
    e = _parse_error(data)
    assert (e.record_no, e.field) == (6, "合計件数")


def test_parse_rejects_trailer_total_mismatch():
    data = _replace(EXPECTED, 5 * 122 + 7, b"001234717892")
    e = _parse_error(data)
    assert (e.record_no, e.field) == (6, "合計金額")


@pytest.mark.parametrize(
    ("record_no", "offset", "field"),
    [
        (2, 85, "振込金額"),
        (2, 45, "口座番号"),
        (3, 2, "被仕向銀行番号"),
        (4, 95, "顧客コード1"),
        (1, 56, "取組日"),
        (1, 6, "振込依頼人コード"),
        (6, 3, "合計件数"),
    ],
)
def test_parse_rejects_flipped_byte_in_n_field(record_no, offset, field):
    pos = (record_no - 1) * 122 + offset
    flipped = bytes([EXPECTED[pos] ^ 0x40])  # a digit 0x3X becomes 0x7X: 'p'..'y'
    e = _parse_error(_replace(EXPECTED, pos, flipped))
    assert (e.record_no, e.field) == (record_no, field)


def test_parse_rejects_missing_end_record():
    e = _parse_error(EXPECTED[:-122])
    assert "エンドレコード" in e.message_ja


@pytest.mark.parametrize("extra", [b"9" + b" " * 119 + b"\r\n", b"\x1a", b"\r\n", b" "])
def test_parse_rejects_data_after_end_record(extra):
    e = _parse_error(EXPECTED + extra)
    assert e.record_no == 8


def test_parse_rejects_missing_final_crlf():
    assert _parse_error(EXPECTED[:-2]).record_no == 7


def test_parse_rejects_second_batch():
    second = EXPECTED[: 6 * 122]
    e = _parse_error(EXPECTED[: 6 * 122] + second + EXPECTED[6 * 122 :])
    assert e.record_no == 7


def test_parse_rejects_wrong_kind_and_code_division():
    assert _parse_error(_replace(EXPECTED, 1, b"11")).field == "種別コード"
    assert _parse_error(_replace(EXPECTED, 3, b"1")).field == "コード区分"


def test_parse_rejects_double_byte_character_in_name():
    data = _replace(EXPECTED, 122 + 50, "山".encode("cp932"))
    e = _parse_error(data)
    assert (e.record_no, e.field) == (2, "受取人名")


def test_parse_rejects_small_kana_and_bad_voicing_in_name():
    assert _parse_error(_replace(EXPECTED, 122 + 50, "ｬ".encode("cp932"))).field == "受取人名"
    assert _parse_error(_replace(EXPECTED, 122 + 50, "ﾞ".encode("cp932"))).field == "受取人名"


def test_parse_rejects_non_blank_dummy_and_bad_codes():
    assert _parse_error(_replace(EXPECTED, 122 + 115, b"X")).field == "ダミー"
    assert _parse_error(_replace(EXPECTED, 122 + 42, b"3")).field == "預金種目"
    assert _parse_error(_replace(EXPECTED, 122 + 112, b"N")).field == "識別表示"
    assert _parse_error(_replace(EXPECTED, 122 + 80, b"0000000000")).field == "振込金額"


def test_parse_rejects_record_out_of_order():
    records = [EXPECTED[i : i + 122] for i in range(0, len(EXPECTED), 122)]
    swapped = b"".join([records[1], records[0], *records[2:]])
    assert _parse_error(swapped).record_no == 1


# --- round trip ---------------------------------------------------------------------------

_PIECES = ["ｱ", "ﾔ", "ﾝ", "ｶﾞ", "ｻﾞ", "ﾀﾞ", "ﾊﾞ", "ﾊﾟ", "ﾎﾟ", "ｳﾞ", "A", "Z", "0", "9", "(", ")", "-", "."]
_WORD = st.lists(st.sampled_from(_PIECES), min_size=1, max_size=10).map("".join)
_NAME = st.lists(_WORD, min_size=1, max_size=4).map(" ".join).map(lambda v: fit(v, 30)[0]).filter(bool)
_BANK_NAME = st.one_of(
    st.just(""),
    st.lists(st.sampled_from(["ｱ", "ﾐ", "ｷﾞ", "ﾎﾟ", "A", "1", "-"]), min_size=1, max_size=15)
    .map("".join)
    .map(lambda v: fit(v, 15)[0])
    .filter(lambda v: v == "" or is_zengin_kana(v, field="bank")),
)
_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=7)

PAYMENT = st.builds(
    Payment,
    reference=st.integers(min_value=1, max_value=9_999_999_999),
    bank_code=st.text(alphabet="0123456789", min_size=4, max_size=4),
    branch_code=st.text(alphabet="0123456789", min_size=3, max_size=3),
    account_type=st.sampled_from([1, 2, 4, 9]),
    account_number=_DIGITS,
    holder_kana=_NAME,
    amount_yen=st.integers(min_value=1, max_value=9_999_999_999),
    new_code=st.sampled_from(["0", "1", "2"]),
    bank_name_kana=_BANK_NAME,
    branch_name_kana=_BANK_NAME,
)

BANK_SETTINGS = st.builds(
    BankSettings,
    requester_code=st.text(alphabet="0123456789", min_size=1, max_size=10),
    requester_name_kana=st.lists(_WORD, min_size=1, max_size=5).map(" ".join).map(lambda v: fit(v, 40)[0]).filter(bool),
    bank_code=st.text(alphabet="0123456789", min_size=4, max_size=4),
    branch_code=st.text(alphabet="0123456789", min_size=3, max_size=3),
    account_type=st.sampled_from([1, 2, 9]),
    account_number=_DIGITS,
    separator=st.sampled_from(["crlf", "none"]),
    bank_name_kana=_BANK_NAME,
    branch_name_kana=_BANK_NAME,
    clearing_house_fill=st.sampled_from(["zeros", "spaces"]),
    transfer_designation=st.sampled_from(["7", "8", "0", " "]),
    reference_field=st.sampled_from(["customer_code1", "edi"]),
)


@settings(max_examples=200, deadline=None)
@given(BANK_SETTINGS, st.dates(), st.lists(PAYMENT, min_size=1, max_size=8))
def test_round_trip(bank, date, payments):
    assert all(validate_payment(p) == [] for p in payments)
    data = generate(bank, date, payments)
    width = 122 if bank.separator == "crlf" else 120
    assert len(data) == width * (len(payments) + 3)
    parsed = parse(data)
    assert parsed.payments == payments
    assert parsed.count == len(payments)
    assert parsed.total_yen == sum(p.amount_yen for p in payments)
    assert parsed.header.transfer_mmdd == f"{date:%m%d}"
    assert parsed.header.requester_code == bank.requester_code.zfill(10)
    assert parsed.header.requester_name_kana == bank.requester_name_kana
    assert parsed.separator == bank.separator
    assert parsed.reference_field == bank.reference_field

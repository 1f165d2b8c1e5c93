"""全銀協 総合振込 (種別コード 21): generator and strict parser.

Layout: docs/zengin.md §1.3 (header), §1.4 (data), §1.5 (trailer, end).
Characters: §2. Pure functions over plain values: no HTTP, no database.

The bank-specific choices (separator, 手形交換所番号 filler, 振込指定区分, where the payment
reference goes, whether ｦ is accepted) are ``BankSettings`` fields, never constants (§0, §8).

Speed: the payout stage formats about a million data records. ``FileWriter.records`` does one
validation pass, one %-format per record and one ``encode('cp932')`` per chunk, and checks the
byte count per chunk (§2.4: the count must equal 120 or 122 per record). Measure with
``python -m devtools.zengin_bench``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Literal, NamedTuple

from payouts.kana import is_zengin_kana

__all__ = [
    "BankSettings",
    "FileWriter",
    "InvalidBankSettings",
    "InvalidPayments",
    "ParsedFile",
    "ParsedHeader",
    "ParsedTrailer",
    "Payment",
    "Problem",
    "RECORD_BYTES",
    "TotalsOverflow",
    "ZenginFormatError",
    "ZenginParseError",
    "data_record",
    "end_record",
    "generate",
    "header_record",
    "iter_parse",
    "parse",
    "trailer_record",
    "validate_payment",
]

RECORD_BYTES = 120
KIND_CODE = "21"  # 総合振込 (§1.6). 給与 11/12 have another data layout (§1.7): not here.
CODE_DIVISION = "0"  # JIS. EBCDIC (1) cannot be produced from Python (§2.4).
MAX_AMOUNT_YEN = 9_999_999_999  # 振込金額 N(10)
MAX_REFERENCE = 9_999_999_999  # 顧客コード1 N(10)
MAX_COUNT = 999_999  # 合計件数 N(6)
MAX_TOTAL_YEN = 999_999_999_999  # 合計金額 N(12)
PAYEE_ACCOUNT_TYPES = frozenset({1, 2, 4, 9})  # §1.6: 21 data {1,2,4,9}
REQUESTER_ACCOUNT_TYPES = frozenset({1, 2, 9})  # §1.6: 21 header {1,2,9}
NEW_CODES = frozenset({"0", "1", "2"})
TRANSFER_DESIGNATIONS = frozenset({"7", "8", "0", " "})
_SEPARATORS = {"crlf": "\r\n", "none": ""}
_DIGITS = frozenset("0123456789")


def _is_digits(value: object, max_len: int, exact: bool = False) -> bool:
    """ASCII digits only, 1..max_len long. (isdigit alone also accepts '１' and '²'.)"""
    return (
        type(value) is str
        and (len(value) == max_len if exact else 0 < len(value) <= max_len)
        and value.isascii()
        and value.isdigit()
    )


# --- errors -------------------------------------------------------------------------------


class ZenginFormatError(ValueError):
    """Base of every error of this module. ``str(e)`` is Japanese and free of personal data."""


class InvalidBankSettings(ZenginFormatError):
    """A BankSettings value is not allowed; ``field`` names the attribute."""

    def __init__(self, field: str, message_ja: str):
        self.field = field
        super().__init__(message_ja)


class Problem(NamedTuple):
    """One reason a payment cannot be written. ``message`` never contains name or account."""

    reference: object
    field: str
    reason: str
    message: str


class InvalidPayments(ZenginFormatError):
    """Payments that cannot be written; ``problems`` lists every problem of every payment."""

    def __init__(self, problems: list[Problem], payment_count: int):
        self.problems = problems
        self.payment_count = payment_count  # how many payments have at least one problem
        super().__init__(
            f"振込データに不備があります（{payment_count}件の支払に{len(problems)}件の不備）。"
            "不備の一覧を確認し、該当する支払を修正してください。"
        )


class TotalsOverflow(ZenginFormatError):
    """合計件数 N(6) or 合計金額 N(12) would overflow: split the payout into several files."""


class ZenginParseError(ZenginFormatError):
    """A file is not a valid 総合振込 file. ``record_no`` is 1-based (0: the file as a whole)."""

    def __init__(self, message_ja: str, record_no: int, field: str | None = None):
        self.message_ja = message_ja
        self.record_no = record_no
        self.field = field
        where = f"第{record_no}レコード" if record_no else "ファイル全体"
        if field:
            where += f"・{field}"
        super().__init__(f"{message_ja}（{where}）")


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BankSettings:
    """The municipality's contract with its bank (§1.3 header fields and §8 open items).

    Codes are strings of ASCII digits; names are already Zengin kana (see payouts.kana).
    """

    requester_code: str  # 振込依頼人コード (委託者コード), up to 10 digits, zero-filled
    requester_name_kana: str  # 振込依頼人名, party class, ≤ 40
    bank_code: str  # 仕向銀行番号, 4 digits
    branch_code: str  # 仕向支店番号, 3 digits
    account_type: int  # 預金種目 (依頼人): 1 普通, 2 当座, 9 その他
    account_number: str  # 口座番号 (依頼人), up to 7 digits
    separator: Literal["crlf", "none"]  # §8.1: no default, it must be agreed with the bank
    bank_name_kana: str = ""  # 仕向銀行名, optional, bank class, ≤ 15
    branch_name_kana: str = ""  # 仕向支店名, optional, bank class, ≤ 15
    clearing_house_fill: Literal["zeros", "spaces"] = "zeros"  # 手形交換所番号 (§1.6: prefer 0000)
    transfer_designation: Literal["7", "8", "0", " "] = "7"  # 振込指定区分 (§1.6)
    reference_field: Literal["customer_code1", "edi"] = "customer_code1"  # §1.4 92-111
    allow_wo: bool = False  # §2.1 / §8.4: accept ｦ in 受取人名 (revised 付録1)

    def __post_init__(self) -> None:
        def bad(name: str, message: str) -> None:
            raise InvalidBankSettings(name, message)

        if not _is_digits(self.requester_code, 10):
            bad("requester_code", "委託者コード（振込依頼人コード）は半角数字10桁以内で指定してください。")
        if not (is_zengin_kana(self.requester_name_kana) and len(self.requester_name_kana) <= 40):
            bad("requester_name_kana", "振込依頼人名は全銀協の半角カナ40文字以内で指定してください。")
        if not _is_digits(self.bank_code, 4, exact=True):
            bad("bank_code", "仕向銀行番号は半角数字4桁で指定してください。")
        if not _is_digits(self.branch_code, 3, exact=True):
            bad("branch_code", "仕向支店番号は半角数字3桁で指定してください。")
        if type(self.account_type) is not int or self.account_type not in REQUESTER_ACCOUNT_TYPES:
            bad("account_type", "依頼人の預金種目は 1（普通）・2（当座）・9（その他）のいずれかです。")
        if not _is_digits(self.account_number, 7):
            bad("account_number", "依頼人の口座番号は半角数字7桁以内で指定してください。")
        for name, label in (("bank_name_kana", "仕向銀行名"), ("branch_name_kana", "仕向支店名")):
            value = getattr(self, name)
            if not (value == "" or (is_zengin_kana(value, field="bank") and len(value) <= 15)):
                bad(name, f"{label}は空欄か、全銀協の半角カナ15文字以内で指定してください。")
        if self.separator not in _SEPARATORS:
            bad("separator", "レコード区切りは crlf（改行あり）か none（改行なし）を指定してください。")
        if self.clearing_house_fill not in ("zeros", "spaces"):
            bad("clearing_house_fill", "手形交換所番号の埋め方は zeros か spaces を指定してください。")
        if self.transfer_designation not in TRANSFER_DESIGNATIONS:
            bad("transfer_designation", "振込指定区分は 7・8・0・空白 のいずれかです。")
        if self.reference_field not in ("customer_code1", "edi"):
            bad("reference_field", "支払番号の記録先は customer_code1 か edi を指定してください。")
        if type(self.allow_wo) is not bool:
            bad("allow_wo", "allow_wo は True か False で指定してください。")


@dataclass(frozen=True, slots=True, kw_only=True)
class Payment:
    """One credit to a resident's account (one data record, §1.4).

    Construction never refuses a value, so that ``validate_payment`` can report every
    problem of a batch at once. The one canonicalisation: an account number of 1-6 ASCII
    digits is zero-filled to 7, as the N field stores it, so a parsed file compares equal.
    """

    reference: int  # 支払番号 → 顧客コード1 (zero-filled) or EDI情報 (left-justified)
    bank_code: str  # 被仕向銀行番号, 4 digits
    branch_code: str  # 被仕向支店番号, 3 digits
    account_type: int  # 預金種目 {1,2,4,9}
    account_number: str  # 口座番号, up to 7 digits
    holder_kana: str  # 受取人名, normalised Zengin kana (payouts.kana), ≤ 30
    amount_yen: int  # 振込金額, 1 … 9,999,999,999
    new_code: str = "0"  # 新規コード
    bank_name_kana: str = ""  # 被仕向銀行名, optional (not processed by banks)
    branch_name_kana: str = ""  # 被仕向支店名, optional

    def __post_init__(self) -> None:
        n = self.account_number
        if type(n) is str and len(n) < 7 and _is_digits(n, 7):
            object.__setattr__(self, "account_number", n.zfill(7))


_FIELD_LABEL = {
    "reference": "支払番号",
    "bank_code": "振込先金融機関コード",
    "branch_code": "振込先支店コード",
    "account_type": "預金種目",
    "account_number": "口座番号",
    "holder_kana": "受取人名（カナ）",
    "amount_yen": "振込金額",
    "new_code": "新規コード",
    "bank_name_kana": "振込先金融機関名（カナ）",
    "branch_name_kana": "振込先支店名（カナ）",
}

_PROBLEM_MESSAGES = {
    ("reference", "type"): "支払番号は整数で指定してください。",
    ("reference", "out_of_range"): "支払番号は1以上9,999,999,999以下で指定してください。",
    ("bank_code", "format"): "振込先金融機関コードは半角数字4桁で指定してください。",
    ("branch_code", "format"): "振込先支店コードは半角数字3桁で指定してください。",
    ("account_type", "not_allowed"): "預金種目は 1（普通）・2（当座）・4（貯蓄）・9（その他）のいずれかです。",
    ("account_number", "format"): "口座番号は半角数字で指定してください。",
    ("account_number", "too_long"): "口座番号は7桁以内で指定してください。",
    ("holder_kana", "empty"): "受取人名（カナ）が空欄です。",
    ("holder_kana", "too_long"): "受取人名（カナ）は半角30文字以内にしてください（濁点・半濁点も1文字）。",
    (
        "holder_kana",
        "charset",
    ): (
        "受取人名（カナ）に全銀協の半角カナで使えない文字（漢字・記号・小書き文字など）が含まれているか、"
        "空白の位置が正しくありません。"
    ),
    ("amount_yen", "type"): "振込金額は円単位の整数で指定してください（小数・真偽値は不可）。",
    ("amount_yen", "out_of_range"): "振込金額は1円以上9,999,999,999円以下で指定してください。",
    ("new_code", "not_allowed"): "新規コードは 0・1・2 のいずれかです。",
    ("bank_name_kana", "invalid"): "振込先金融機関名（カナ）は空欄か、全銀協の半角カナ15文字以内で指定してください。",
    ("branch_name_kana", "invalid"): "振込先支店名（カナ）は空欄か、全銀協の半角カナ15文字以内で指定してください。",
}


def _problem(p: Payment, field: str, reason: str) -> Problem:
    reference = getattr(p, "reference", None)
    return Problem(reference, field, reason, _PROBLEM_MESSAGES[(field, reason)])


def validate_payment(p: Payment, *, allow_wo: bool = False) -> list[Problem]:
    """Every reason ``p`` cannot be written as a data record; [] if it can.

    The happy path is a handful of comparisons: it runs once per record in FileWriter.
    """
    problems: list[Problem] = []
    ref = p.reference
    if type(ref) is not int:  # bool is an int subclass: refused by the exact type test
        problems.append(_problem(p, "reference", "type"))
    elif not 0 < ref <= MAX_REFERENCE:
        problems.append(_problem(p, "reference", "out_of_range"))
    code = p.bank_code
    if not (type(code) is str and len(code) == 4 and code.isascii() and code.isdigit()):
        problems.append(_problem(p, "bank_code", "format"))
    code = p.branch_code
    if not (type(code) is str and len(code) == 3 and code.isascii() and code.isdigit()):
        problems.append(_problem(p, "branch_code", "format"))
    if type(p.account_type) is not int or p.account_type not in PAYEE_ACCOUNT_TYPES:
        problems.append(_problem(p, "account_type", "not_allowed"))
    number = p.account_number
    if not (type(number) is str and len(number) == 7 and number.isascii() and number.isdigit()):
        # Payment zero-fills 1-6 digits, so a valid number is exactly 7 ASCII digits here.
        if type(number) is str and len(number) > 7 and number.isascii() and number.isdigit():
            problems.append(_problem(p, "account_number", "too_long"))
        else:
            problems.append(_problem(p, "account_number", "format"))
    name = p.holder_kana
    if type(name) is not str or not name:
        problems.append(_problem(p, "holder_kana", "empty" if name == "" else "charset"))
    elif not is_zengin_kana(name, allow_wo=allow_wo):
        problems.append(_problem(p, "holder_kana", "charset"))
    elif len(name) > 30:
        problems.append(_problem(p, "holder_kana", "too_long"))
    amount = p.amount_yen
    if type(amount) is not int:  # never a float (STYLE.md: money is int yen), never bool
        problems.append(_problem(p, "amount_yen", "type"))
    elif not 0 < amount <= MAX_AMOUNT_YEN:
        problems.append(_problem(p, "amount_yen", "out_of_range"))
    if p.new_code not in NEW_CODES:
        problems.append(_problem(p, "new_code", "not_allowed"))
    value = p.bank_name_kana
    if value != "" and not (is_zengin_kana(value, field="bank") and len(value) <= 15):
        problems.append(_problem(p, "bank_name_kana", "invalid"))
    value = p.branch_name_kana
    if value != "" and not (is_zengin_kana(value, field="bank") and len(value) <= 15):
        problems.append(_problem(p, "branch_name_kana", "invalid"))
    return problems


def _check_all(payments: Iterable[Payment], allow_wo: bool) -> None:
    """Raise InvalidPayments listing the problems of every bad payment, not only the first."""
    problems: list[Problem] = []
    bad = 0
    for p in payments:
        found = validate_payment(p, allow_wo=allow_wo)
        if found:
            problems.extend(found)
            bad += 1
    if problems:
        raise InvalidPayments(problems, bad)


# --- records ------------------------------------------------------------------------------


def header_record(settings: BankSettings, transfer_date: datetime.date) -> str:
    """Header (データ区分 1, §1.3), 120 characters. 取組日 is MMDD; the year is implicit."""
    if not isinstance(transfer_date, datetime.date):
        raise ZenginFormatError("取組日（振込指定日）は日付で指定してください。")
    s = settings
    line = (
        f"1{KIND_CODE}{CODE_DIVISION}"  # 1, 2-3, 4
        f"{s.requester_code:0>10}"  # 5-14 振込依頼人コード
        f"{s.requester_name_kana:<40}"  # 15-54 振込依頼人名
        f"{transfer_date:%m%d}"  # 55-58 取組日
        f"{s.bank_code}{s.bank_name_kana:<15}"  # 59-62, 63-77
        f"{s.branch_code}{s.branch_name_kana:<15}"  # 78-80, 81-95
        f"{s.account_type}{s.account_number:0>7}"  # 96, 97-103
        f"{'':17}"  # 104-120 ダミー
    )
    assert len(line) == RECORD_BYTES, "header layout"
    return line


# Attribute order of the data record's variable fields, fetched in one C call per record.
_DATA_FIELDS = attrgetter(
    "bank_code",
    "bank_name_kana",
    "branch_code",
    "branch_name_kana",
    "account_type",
    "account_number",
    "holder_kana",
    "amount_yen",
    "new_code",
    "reference",
)
_AMOUNTS = attrgetter("amount_yen")


def _data_format(settings: BankSettings) -> str:
    """The %-format of one data record (§1.4), with the per-file constants baked in.

    Positions: 1 区分 | 2-5 銀行 | 6-20 銀行名 | 21-23 支店 | 24-38 支店名 | 39-42 手形交換所
    | 43 種目 | 44-50 口座 | 51-80 受取人名 | 81-90 金額 | 91 新規 | 92-111 顧客コード1/2 or
    EDI情報 | 112 振込指定区分 | 113 識別表示 | 114-120 ダミー.
    %-formatting of a tuple is about a third faster than the equivalent f-string here (measured
    on CPython 3.11), and this line runs a million times per payout.
    """
    clearing = "0000" if settings.clearing_house_fill == "zeros" else "    "
    designation = settings.transfer_designation
    head = "2%s%-15s%s%-15s" + clearing + "%d%s%-30s%010d%s"
    if settings.reference_field == "edi":
        # 識別表示 Y: 92-111 are one C(20) EDI情報; the reference is left-justified digits.
        return head + "%-20d" + designation + "Y" + " " * 7
    # 識別表示 space: 顧客コード1 = reference zero-filled; 顧客コード2 unused N → zeros (§1.6).
    return head + "%010d" + "0" * 10 + designation + " " + " " * 7


def _format_data(settings: BankSettings, chunk: list[Payment]) -> list[str]:
    """Data records of validated payments: one %-format per record. A value that is not
    valid (a short code, a wide character) changes the length; callers check it."""
    fmt = _data_format(settings)
    return [fmt % _DATA_FIELDS(p) for p in chunk]


def data_record(settings: BankSettings, p: Payment) -> str:
    """Data record (データ区分 2, §1.4) of a validated payment, 120 characters."""
    line = _format_data(settings, [p])[0]
    if len(line) != RECORD_BYTES:
        raise ZenginFormatError("振込データの長さが120桁になりません。支払の内容を検証してください。")
    return line


def trailer_record(count: int, total_yen: int) -> str:
    """Trailer (データ区分 8, §1.5): 合計件数 N(6), 合計金額 N(12), 120 characters."""
    if type(count) is not int or not 0 <= count <= MAX_COUNT:
        raise TotalsOverflow("合計件数が999,999件を超えます。ファイルを分割してください。")
    if type(total_yen) is not int or not 0 <= total_yen <= MAX_TOTAL_YEN:
        raise TotalsOverflow("合計金額が999,999,999,999円を超えます。ファイルを分割してください。")
    return f"8{count:06d}{total_yen:012d}{'':101}"


def end_record() -> str:
    """End record (データ区分 9, §1.5), 120 characters."""
    return f"9{'':119}"


# --- writer -------------------------------------------------------------------------------


class FileWriter:
    """Streams one 総合振込 file: ``header()``, then ``records(chunk)`` any number of times,
    then ``finish()``. Each call returns the bytes to append. ``count``/``total_yen`` are the
    trailer totals so far (and the control totals to confirm separately, §7).
    """

    def __init__(self, settings: BankSettings, transfer_date: datetime.date):
        self.settings = settings
        self.transfer_date = transfer_date
        self.count = 0
        self.total_yen = 0
        self._sep = _SEPARATORS[settings.separator]
        self._width = RECORD_BYTES + len(self._sep)
        self._state = "new"

    def _encode(self, lines: list[str]) -> bytes:
        sep = self._sep
        text = sep.join(lines) + sep
        # cp932, not shift_jisx0213 (§2.4). Kanji or other wide characters would encode to
        # 2 bytes and shift every later field: the length check refuses that chunk.
        try:
            data = text.encode("cp932")
        except UnicodeEncodeError:
            raise ZenginFormatError(
                "全銀協の半角文字に変換できない文字があります。支払の内容を検証してください。"
            ) from None
        if len(data) != self._width * len(lines):
            raise ZenginFormatError("レコード長が120バイトになりません。支払の内容を検証してください。")
        return data

    def header(self) -> bytes:
        if self._state != "new":
            raise ZenginFormatError("ヘッダーレコードは最初に一度だけ出力できます。")
        data = self._encode([header_record(self.settings, self.transfer_date)])
        self._state = "records"
        return data

    def records(self, payments: Iterable[Payment], validate: bool = True) -> bytes:
        """Data records of one chunk. With ``validate`` (the default), every payment of the
        chunk is checked first and InvalidPayments lists all problems; nothing is counted.
        """
        if self._state != "records":
            raise ZenginFormatError("データレコードはヘッダーの後、トレーラーの前にのみ出力できます。")
        chunk = payments if type(payments) is list else list(payments)
        if validate:
            _check_all(chunk, self.settings.allow_wo)
        count = self.count + len(chunk)
        total = self.total_yen + sum(map(_AMOUNTS, chunk))
        if type(total) is not int:
            # Only reachable with validate=False: '%010d' would silently truncate a float.
            raise ZenginFormatError("振込金額は円単位の整数で指定してください（小数は不可）。")
        if count > MAX_COUNT:
            raise TotalsOverflow("合計件数が999,999件を超えます。ファイルを分割してください。")
        if total > MAX_TOTAL_YEN:
            raise TotalsOverflow("合計金額が999,999,999,999円を超えます。ファイルを分割してください。")
        if not chunk:
            return b""
        data = self._encode(_format_data(self.settings, chunk))
        self.count, self.total_yen = count, total
        return data

    def finish(self) -> bytes:
        """Trailer and end record. A file without data records is refused."""
        if self._state != "records":
            raise ZenginFormatError("トレーラーレコードはヘッダーの後に一度だけ出力できます。")
        if self.count == 0:
            raise ZenginFormatError("振込データが1件もありません。")
        data = self._encode([trailer_record(self.count, self.total_yen), end_record()])
        self._state = "finished"
        return data


def generate(settings: BankSettings, transfer_date: datetime.date, payments: Iterable[Payment]) -> bytes:
    """A whole file in memory. Every payment is validated before anything is written, and
    InvalidPayments lists the problems of all of them."""
    payments = list(payments)
    _check_all(payments, settings.allow_wo)
    w = FileWriter(settings, transfer_date)
    return b"".join([w.header(), w.records(payments, validate=False), w.finish()])


# --- parser -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedHeader:
    """The header record's fields (§1.3) as read; names with padding removed."""

    kind_code: str
    code_division: str
    requester_code: str
    requester_name_kana: str
    transfer_mmdd: str
    bank_code: str
    bank_name_kana: str
    branch_code: str
    branch_name_kana: str
    account_type: int
    account_number: str


@dataclass(frozen=True)
class ParsedTrailer:
    """The trailer totals (§1.5), and where the data records carried the reference."""

    count: int
    total_yen: int
    reference_field: str  # 'customer_code1' (識別表示 space) or 'edi' (識別表示 Y)


@dataclass(frozen=True)
class ParsedFile:
    header: ParsedHeader
    payments: list[Payment]
    count: int
    total_yen: int
    separator: str  # 'crlf' or 'none'
    reference_field: str  # 'customer_code1' or 'edi', from 識別表示 of the data records


# Bytes a record may contain: JIS X 0201 printable ASCII (0x20-0x7E) and kana (0xA1-0xDF).
# Checked before decoding, so a cp932 lead byte cannot swallow its neighbour and shift fields.
_ALLOWED_BYTES = bytes(range(0x20, 0x7F)) + bytes(range(0xA1, 0xE0))
_ALL_BYTES = bytes(range(256))

# (label, start, length) per record kind, 0-based start. Used to name the field of an error.
_LAYOUT = {
    "1": [
        ("データ区分", 0, 1),
        ("種別コード", 1, 2),
        ("コード区分", 3, 1),
        ("振込依頼人コード", 4, 10),
        ("振込依頼人名", 14, 40),
        ("取組日", 54, 4),
        ("仕向銀行番号", 58, 4),
        ("仕向銀行名", 62, 15),
        ("仕向支店番号", 77, 3),
        ("仕向支店名", 80, 15),
        ("預金種目（依頼人）", 95, 1),
        ("口座番号（依頼人）", 96, 7),
        ("ダミー", 103, 17),
    ],
    "2": [
        ("データ区分", 0, 1),
        ("被仕向銀行番号", 1, 4),
        ("被仕向銀行名", 5, 15),
        ("被仕向支店番号", 20, 3),
        ("被仕向支店名", 23, 15),
        ("手形交換所番号", 38, 4),
        ("預金種目", 42, 1),
        ("口座番号", 43, 7),
        ("受取人名", 50, 30),
        ("振込金額", 80, 10),
        ("新規コード", 90, 1),
        ("顧客コード1", 91, 10),
        ("顧客コード2", 101, 10),
        ("振込指定区分", 111, 1),
        ("識別表示", 112, 1),
        ("ダミー", 113, 7),
    ],
    "8": [("データ区分", 0, 1), ("合計件数", 1, 6), ("合計金額", 7, 12), ("ダミー", 19, 101)],
    "9": [("データ区分", 0, 1), ("ダミー", 1, 119)],
}


def _field_at(kind: str, offset: int) -> str | None:
    for label, start, length in _LAYOUT.get(kind, ()):
        if start <= offset < start + length:
            return label
    return None


def _split_records(data: bytes, separator: str | None) -> tuple[str, Iterator[tuple[int, bytes]]]:
    """Detect or check the separator (§1.2) and yield (record_no, 120 bytes)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("data must be bytes")
    data = bytes(data)
    has_breaks = b"\r" in data or b"\n" in data
    if separator is None:
        separator = "crlf" if has_breaks else "none"
    if separator not in _SEPARATORS:
        raise ValueError("separator must be 'crlf', 'none' or None")
    if separator == "crlf" and b"\r\n" not in data:
        if has_breaks:
            raise ZenginParseError("改行コードはCR+LFのみ使用できます（LFのみ・CRのみは不可）。", 0)
        raise ZenginParseError("レコード区切り（CR+LF）がありません。", 0)

    def records() -> Iterator[tuple[int, bytes]]:
        width = RECORD_BYTES + (2 if separator == "crlf" else 0)
        for i in range(0, len(data), width):
            no = i // width + 1
            rec = data[i : i + width]
            body = rec[:RECORD_BYTES]
            for bad in (b"\r", b"\n"):
                pos = body.find(bad)
                if pos >= 0:
                    if separator == "none":
                        raise ZenginParseError("改行なしの指定ですが、改行コードが含まれています。", no)
                    raise ZenginParseError(
                        f"レコード長が120バイトではありません（{pos}バイト目で改行）。改行コードはCR+LFのみ使用できます。",
                        no,
                    )
            if len(body) < RECORD_BYTES:
                yield no, body  # the caller decides: short record, or garbage after the end record
                return
            if separator == "crlf" and rec[RECORD_BYTES:] != b"\r\n":
                raise ZenginParseError("レコードの後ろにCR+LFがありません（レコード長が120バイトではありません）。", no)
            yield no, body

    return separator, records()


def _check_bytes(kind: str, rec: bytes, no: int) -> str:
    bad = rec.translate(_ALL_BYTES, _ALLOWED_BYTES)
    if bad:
        offset = next(i for i, b in enumerate(rec) if b not in _ALLOWED_BYTES)
        raise ZenginParseError(
            f"使用できない文字コード（0x{rec[offset]:02X}）が{offset + 1}バイト目にあります。",
            no,
            _field_at(kind, offset),
        )
    return rec.decode("cp932")


def _n(rec: str, no: int, kind: str, start: int, length: int) -> str:
    """An N field: ASCII digits only, right-aligned and zero-filled (§1.2)."""
    value = rec[start : start + length]
    if not _DIGITS.issuperset(value):
        raise ZenginParseError("数字項目に数字以外の文字があります。", no, _field_at(kind, start))
    return value


def _c(
    rec: str, no: int, kind: str, start: int, length: int, cls: str, *, required: bool, allow_wo: bool = False
) -> str:
    """A C field: left-aligned, space-filled; its content must be a normalised value of its class."""
    value = rec[start : start + length].rstrip(" ")
    if value == "":
        if required:
            raise ZenginParseError("必須の文字項目が空欄です。", no, _field_at(kind, start))
        return value
    if not is_zengin_kana(value, field=cls, allow_wo=allow_wo):  # type: ignore[arg-type]
        raise ZenginParseError(
            "文字項目に使用できない文字があるか、左詰めになっていません。", no, _field_at(kind, start)
        )
    return value


def _blank(rec: str, no: int, kind: str, start: int, length: int) -> None:
    if rec[start : start + length] != " " * length:
        raise ZenginParseError("ダミー項目は空白でなければなりません。", no, _field_at(kind, start))


def _parse_header(rec: str, no: int) -> ParsedHeader:
    k = "1"
    if rec[1:3] != KIND_CODE:
        raise ZenginParseError("種別コードが21（総合振込）ではありません。", no, "種別コード")
    if rec[3] != CODE_DIVISION:
        raise ZenginParseError("コード区分が0（JIS）ではありません。", no, "コード区分")
    requester_code = _n(rec, no, k, 4, 10)
    requester_name = _c(rec, no, k, 14, 40, "party", required=True)
    mmdd = _n(rec, no, k, 54, 4)
    try:
        datetime.date(2000, int(mmdd[:2]), int(mmdd[2:]))  # 2000 is a leap year: 0229 is valid
    except ValueError:
        raise ZenginParseError("取組日（MMDD）が日付ではありません。", no, "取組日") from None
    bank_code = _n(rec, no, k, 58, 4)
    bank_name = _c(rec, no, k, 62, 15, "bank", required=False)
    branch_code = _n(rec, no, k, 77, 3)
    branch_name = _c(rec, no, k, 80, 15, "bank", required=False)
    account_type = int(_n(rec, no, k, 95, 1))
    if account_type not in REQUESTER_ACCOUNT_TYPES:
        raise ZenginParseError("依頼人の預金種目は1・2・9のいずれかです。", no, "預金種目（依頼人）")
    account_number = _n(rec, no, k, 96, 7)
    _blank(rec, no, k, 103, 17)
    return ParsedHeader(
        KIND_CODE,
        CODE_DIVISION,
        requester_code,
        requester_name,
        mmdd,
        bank_code,
        bank_name,
        branch_code,
        branch_name,
        account_type,
        account_number,
    )


def _parse_data(rec: str, no: int, allow_wo: bool) -> tuple[Payment, str]:
    k = "2"
    bank_code = _n(rec, no, k, 1, 4)
    bank_name = _c(rec, no, k, 5, 15, "bank", required=False)
    branch_code = _n(rec, no, k, 20, 3)
    branch_name = _c(rec, no, k, 23, 15, "bank", required=False)
    if rec[38:42] != "    ":  # §1.6: blank accepted here, since clearing_house_fill may be spaces
        _n(rec, no, k, 38, 4)
    account_type = int(_n(rec, no, k, 42, 1))
    if account_type not in PAYEE_ACCOUNT_TYPES:
        raise ZenginParseError("預金種目は1・2・4・9のいずれかです。", no, "預金種目")
    account_number = _n(rec, no, k, 43, 7)
    holder = _c(rec, no, k, 50, 30, "party", required=True, allow_wo=allow_wo)
    amount = int(_n(rec, no, k, 80, 10))
    if amount == 0:
        raise ZenginParseError("振込金額が0円です。", no, "振込金額")
    new_code = _n(rec, no, k, 90, 1)
    if new_code not in NEW_CODES:
        raise ZenginParseError("新規コードは0・1・2のいずれかです。", no, "新規コード")
    if rec[111] not in TRANSFER_DESIGNATIONS:
        raise ZenginParseError("振込指定区分は7・8・0・空白のいずれかです。", no, "振込指定区分")
    marker = rec[112]
    if marker == "Y":
        edi = rec[91:111]
        digits = edi.rstrip(" ")
        if not (0 < len(digits) <= 10 and _DIGITS.issuperset(digits)):
            raise ZenginParseError("EDI情報から支払番号（左詰めの数字）を読み取れません。", no, "顧客コード1")
        reference, reference_field = int(digits), "edi"
    elif marker == " ":
        reference = int(_n(rec, no, k, 91, 10))
        _n(rec, no, k, 101, 10)
        reference_field = "customer_code1"
    else:
        raise ZenginParseError("識別表示は「Y」か空白です。", no, "識別表示")
    if reference == 0:
        raise ZenginParseError("支払番号が0です。", no, "顧客コード1")
    _blank(rec, no, k, 113, 7)
    payment = Payment(
        reference=reference,
        bank_code=bank_code,
        branch_code=branch_code,
        account_type=account_type,
        account_number=account_number,
        holder_kana=holder,
        amount_yen=amount,
        new_code=new_code,
        bank_name_kana=bank_name,
        branch_name_kana=branch_name,
    )
    return payment, reference_field


def iter_parse(
    data: bytes, *, separator: Literal["crlf", "none"] | None = None, allow_wo: bool = False
) -> Iterator[ParsedHeader | Payment | ParsedTrailer]:
    """Yield the header, each payment, then the trailer, checking as it goes (see ``parse``).

    Errors found after some items were yielded are still raised, so a consumer must treat
    the items as provisional until the iterator is exhausted.
    """
    _, records = _split_records(data, separator)
    return _iter_records(records, allow_wo)


def _iter_records(
    records: Iterator[tuple[int, bytes]], allow_wo: bool
) -> Iterator[ParsedHeader | Payment | ParsedTrailer]:
    state = "start"  # start → header → (data)* → trailer → end
    count = total = 0
    reference_field = None
    for no, raw in records:
        if len(raw) < RECORD_BYTES:
            if state == "end":
                raise ZenginParseError("エンドレコードの後にデータがあります。", no)
            raise ZenginParseError(f"レコード長が120バイトではありません（{len(raw)}バイト）。", no)
        kind = chr(raw[0])
        if state == "end":
            raise ZenginParseError("エンドレコードの後にデータがあります。", no)
        rec = _check_bytes(kind, raw, no)
        if kind == "1":
            if state != "start":
                raise ZenginParseError("ヘッダーレコードが複数あります（複数の依頼は扱えません）。", no, "データ区分")
            state = "header"
            yield _parse_header(rec, no)
        elif kind == "2":
            if state != "header":
                raise ZenginParseError(
                    "データレコードの位置が正しくありません（ヘッダーとトレーラーの間のみ）。", no, "データ区分"
                )
            payment, this_field = _parse_data(rec, no, allow_wo)
            if reference_field is None:
                reference_field = this_field
            elif this_field != reference_field:
                raise ZenginParseError("識別表示がレコードによって異なります。", no, "識別表示")
            count += 1
            total += payment.amount_yen
            yield payment
        elif kind == "8":
            if state != "header":
                raise ZenginParseError("トレーラーレコードの位置が正しくありません。", no, "データ区分")
            if count == 0:
                raise ZenginParseError("データレコードがありません。", no)
            t_count = int(_n(rec, no, "8", 1, 6))
            t_total = int(_n(rec, no, "8", 7, 12))
            _blank(rec, no, "8", 19, 101)
            if t_count != count:
                raise ZenginParseError(
                    f"合計件数（{t_count}件）がデータレコードの件数（{count}件）と一致しません。", no, "合計件数"
                )
            if t_total != total:
                raise ZenginParseError(
                    f"合計金額（{t_total}円）が振込金額の合計（{total}円）と一致しません。", no, "合計金額"
                )
            state = "trailer"
            yield ParsedTrailer(t_count, t_total, reference_field or "customer_code1")
        elif kind == "9":
            if state != "trailer":
                raise ZenginParseError(
                    "エンドレコードの位置が正しくありません（トレーラーの直後のみ）。", no, "データ区分"
                )
            _blank(rec, no, "9", 1, 119)
            state = "end"
        else:
            raise ZenginParseError("データ区分は1・2・8・9のいずれかです。", no, "データ区分")
    if state == "start":
        raise ZenginParseError("ファイルが空です。", 0)
    if state != "end":
        raise ZenginParseError("エンドレコードがありません（ファイルが途中で終わっています）。", 0)


def parse(data: bytes, *, separator: Literal["crlf", "none"] | None = None, allow_wo: bool = False) -> ParsedFile:
    """Strictly check a 総合振込 file and read it back.

    Checks: separator (none: 120-byte records; crlf: every record followed by CR+LF; LF-only,
    CR-only and mixed are refused, §1.2), bytes in the JIS X 0201 single-byte set, one batch
    in the order 1 → 2* → 8 → 9, every N field digits and every C field in its class,
    種別コード 21, コード区分 0, trailer count and total equal to the data records, nothing
    after the end record. Raises ZenginParseError.
    """
    sep, records = _split_records(data, separator)
    header: ParsedHeader | None = None
    payments: list[Payment] = []
    trailer: ParsedTrailer | None = None
    for item in _iter_records(records, allow_wo):
        if type(item) is Payment:
            payments.append(item)
        elif type(item) is ParsedHeader:
            header = item
        else:
            trailer = item  # type: ignore[assignment]
    assert header is not None and trailer is not None  # _iter_records refuses files without them
    return ParsedFile(header, payments, trailer.count, trailer.total_yen, sep, trailer.reference_field)

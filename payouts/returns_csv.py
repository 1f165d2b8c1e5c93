"""The returns CSV: the bank's 不能 (payments it could not credit) for one released batch, in the file the
reconciliation import reads (payouts/reconcile.py).

Real banks have no standard result file for 総合振込 (zengin.md §3.1); this CSV is our own. Operations staff
write it from the bank's notice (or the bank simulator, devtools/banksim.py, writes it). Reason codes reuse
the 口座振替 振替結果コード (zengin.md §3.2) where the meaning fits a credit transfer:

    2  取引なし        no such account / account closed (§3.2 code 2)
    3  預金者都合      stopped at the account holder's request (§3.2 code 3)
    N  名義相違        the payee name does not match the account (no §3.2 code)
    9  その他          anything else (§3.2 code 9)

名義相違 has no 振替結果コード; it gets the letter N rather than 8, because 8 already means
委託者の都合 in §3.2 and a reader mapping codes by that table would misfile it. 1 (資金不足)
and 4 (依頼書なし) are debit-only meanings and are never produced.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app import csvsafe
from payouts import sealing

RETURN_REASONS: dict[str, str] = {
    "2": "取引なし",
    "3": "預金者都合",
    "N": "名義相違",
    "9": "その他",
}
CSV_HEADER = ("payment_reference", "reason_code", "reason")
# References are 顧客コード1, N(10): at most ten digits.
_MAX_REFERENCE_DIGITS = 10


class ReturnsCsvError(ValueError):
    """A returns CSV line is not in our format; `line_number` is 1-based (line 1 is the header)."""

    def __init__(self, line_number: int, message: str) -> None:
        super().__init__(f"返却CSV {line_number} 行目: {message}")
        self.line_number = line_number


@dataclass(frozen=True)
class ReturnRow:
    """One payment the bank could not credit."""

    payment_reference: int
    reason_code: str
    reason: str


def write_returns_csv(rows: Iterable[ReturnRow], path: Path) -> Path:
    """Write the returns CSV (UTF-8, no BOM, LF) atomically. Operations staff open it in a spreadsheet, so
    text cells are neutralised against formulas (app/csvsafe.py); the codes and reasons we write never begin
    with a trigger, so what read_returns_csv reads back is unchanged."""
    buffer = io.StringIO()
    writer = csvsafe.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        writer.writerow((row.payment_reference, row.reason_code, row.reason))
    path = Path(path)
    sealing.write_atomically(path.parent, path.name, [buffer.getvalue().encode("utf-8")])
    return path


def read_returns_csv(path: Path) -> list[ReturnRow]:
    """Read a returns CSV strictly: exact header, three fields a line, a known code with its
    own reason text, each reference once. The first bad line raises ReturnsCsvError."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line_number = Path(path).read_bytes()[: exc.start].count(b"\n") + 1
        raise ReturnsCsvError(line_number, "UTF-8 として読めません") from None
    # Split on LF only (CRLF tolerated): str.splitlines would also split on U+2028 and
    # friends inside a reason and so misreport line numbers.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or tuple(next(csv.reader([lines[0]]), [])) != CSV_HEADER:
        raise ReturnsCsvError(1, f"見出し行は {','.join(CSV_HEADER)} である必要があります")
    rows: list[ReturnRow] = []
    seen: set[int] = set()
    for line_number, line in enumerate(lines[1:], start=2):
        if not line:
            raise ReturnsCsvError(line_number, "空行があります")
        fields = next(csv.reader([line]))
        if len(fields) != 3:
            raise ReturnsCsvError(line_number, f"項目数が {len(fields)} です（3 項目が必要）")
        reference_text, code, reason = fields
        if not (reference_text.isascii() and reference_text.isdigit()) or len(reference_text) > _MAX_REFERENCE_DIGITS:
            raise ReturnsCsvError(line_number, "payment_reference は 10 桁以内の数字である必要があります")
        reference = int(reference_text)
        if reference in seen:
            raise ReturnsCsvError(line_number, f"payment_reference {reference} が重複しています")
        if code not in RETURN_REASONS:
            raise ReturnsCsvError(
                line_number, f"reason_code {code!r} は未知です（{', '.join(RETURN_REASONS)} のいずれか）"
            )
        if reason != RETURN_REASONS[code]:
            raise ReturnsCsvError(
                line_number, f"reason が reason_code {code} の内容（{RETURN_REASONS[code]}）と違います"
            )
        seen.add(reference)
        rows.append(ReturnRow(reference, code, reason))
    return rows

"""A plain-Python stand-in for app.registry._residentcsv.encode, for tests of the typed import path.

It only writes the format (PostgreSQL's binary COPY: signature, flags, header extension length, then per
row an int16 field count and per field an int32 length or -1 for NULL, and the trailer int16 -1), for
files the test already knows to be valid: it validates nothing. Empty optional values become NULL, dates
(YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD) days since 2000-01-01, 世帯主 one byte; rows are sorted by
住民票コード like the C encoder's.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import struct

from app.registry.residentcsv import OUTPUT_COLUMNS

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_EPOCH = dt.date(2000, 1, 1)
_DATES = {"birth_date", "moved_in_on", "removed_on", "household_changed_on"}


def _date(value: str) -> dt.date:
    digits = value.replace("-", "").replace("/", "")
    return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))


def _field(name: str, value: str | None) -> bytes:
    if value is None or value == "":
        return struct.pack("!i", -1)
    if name == "is_head":
        return struct.pack("!ib", 1, value == "1")
    if name in _DATES:
        return struct.pack("!ii", 4, (_date(value) - _EPOCH).days)
    raw = value.encode("utf-8")
    return struct.pack("!i", len(raw)) + raw


def encode(body: bytes, columns, relationships, removal_reasons) -> bytes:
    rows = []
    for values in csv.reader(io.StringIO(bytes(body).decode("utf-8"), newline="")):
        if values:
            rows.append(dict(zip(columns, values)))
    rows.sort(key=lambda r: r["resident_code"])
    out = [SIGNATURE, struct.pack("!ii", 0, 0)]
    for r in rows:
        out.append(struct.pack("!h", len(OUTPUT_COLUMNS)))
        out.extend(_field(name, r.get(name)) for name in OUTPUT_COLUMNS)
    out.append(struct.pack("!h", -1))
    return b"".join(out)

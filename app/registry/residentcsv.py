"""A residents extract as a PostgreSQL binary COPY payload of typed columns, for the fast import path.

Two paths give the same residents rows (app/registry/imports.py):
* app/registry/_residentcsv.c, when it is built and the file is UTF-8: it parses the CSV body, checks
  every line rule of imports.py (including repeated 住民票コード and two current heads in a household),
  and returns the rows, sorted by 住民票コード, as one binary COPY payload of OUTPUT_COLUMNS. The
  snapshot's partition is then loaded typed and only constrained at publish
  (kyufu_residents_load_typed, migrations/0012_residents_typed_load.sql, then kyufu_residents_publish, 0011):
  no text-to-date parsing in the server, no line-rule CHECKs, and index builds over presorted keys.
* the SQL reference path (kyufu_residents_load_begin / kyufu_residents_publish, 0011), which takes the CSV
  text as it is and checks every rule in the server. It runs whenever the C module returns None (any bad
  or merely unusual line: the module never judges a file, it only declines it), for CP932 files, and
  when the module is not built at all: the project works, and rejects the same files with the same
  report, without it (the report always comes from REPORT_RESIDENTS on the reference path).

tests/registry/test_import_typed.py holds the two paths to the same rows, column by column. Nothing here
logs or raises with resident data in it.
"""

from __future__ import annotations

from collections.abc import Sequence

try:
    from app.registry import _residentcsv as _c
except ImportError:  # not built (setup.py / Makefile): the SQL path does everything
    _c = None  # type: ignore[assignment]  # an optional module: callers test for None

# The payload's columns, in this order (the typed load table's, and copy_to_table's columns=).
OUTPUT_COLUMNS = (
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
)


def available() -> bool:
    """Whether the C encoder is built."""
    return _c is not None


def encode(
    body: bytes | memoryview, columns: Sequence[str], relationships: Sequence[str], removal_reasons: Sequence[str]
) -> bytes | None:
    """The binary COPY payload (header, rows sorted by resident_code, trailer) of a UTF-8 body (the file
    from line 2 on, `columns` in file order), or None: the module is not built, or some line breaks a rule
    or looks unusual, and the SQL path decides."""
    if _c is None:
        return None
    return _c.encode(body, tuple(columns), tuple(relationships), tuple(removal_reasons))

"""Malformed registry extracts through the real import (`import_residents` in a tenant transaction):
every one is refused whole with a line report (ImportRejected, never another exception), nothing of it
is left in the database, and the refusal comes in bounded time and memory."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from app.registry.errors import ImportRejected
from app.registry.imports import RESIDENT_COLUMNS, import_residents
from app.tenancy.transaction import tenant_transaction
from tests.registry.helpers import person, residents_csv

GOOD = [person(household_no="1"), person(household_no="2")]
HEADER = ",".join(c.header for c in RESIDENT_COLUMNS).encode()


def _valid() -> bytes:
    return residents_csv(GOOD)


def _huge_field() -> bytes:
    row = person(address="東" * 20_000_000)  # 60 MB of UTF-8 in one field
    return residents_csv([row])


CASES = {
    # name: (builder, reason codes any of which is acceptable)
    "utf16": (lambda: _valid().decode().encode("utf-16"), {"encoding"}),
    "euc_jp_in_body_after_ascii_header": (
        lambda: HEADER + b"\r\n" + residents_csv(GOOD).split(b"\r\n", 1)[1].decode().encode("euc_jp"),
        {"encoding", "not_katakana", "column_count"},
    ),
    "truncated_mid_line": (
        lambda: _valid()[: len(_valid()) - 40],
        {"column_count", "required", "bad_date", "digits", "encoding"},
    ),
    "truncated_mid_character": (lambda: _valid()[: _valid().rindex("ヤ".encode()) + 1], {"encoding", "column_count"}),
    "a_million_header_columns": (
        lambda: b",".join(b"c%d" % i for i in range(10**6)) + b"\r\n1\r\n",
        {"unknown_column", "missing_column"},
    ),
    "a_million_columns_in_a_row": (lambda: HEADER + b"\r\n" + b"x," * 10**6 + b"x\r\n", {"column_count"}),
    "nul_byte_in_a_field": (lambda: _valid().replace("山田".encode(), "山\x00田".encode(), 1), {"encoding"}),
    "nul_bytes_everywhere": (lambda: b"\x00" * 1_000_000, {"encoding", "unknown_column", "missing_column"}),
    "huge_field": (_huge_field, {"too_long", "column_count"}),
    "unterminated_quote": (lambda: _valid() + b'"' + b"a" * 1000, {"column_count"}),
}

# A real extract of a million residents is ~120 MB; 25 s per malformed file is generous on the shared
# machine and still catches a parser that goes quadratic.
MAX_SECONDS = 25
MAX_RSS_GROWTH = 600 * 2**20


async def _rows(app_pool, code):
    async with tenant_transaction(app_pool, code) as conn:
        return (
            await conn.fetchval("SELECT count(*) FROM residents"),
            await conn.fetchval("SELECT count(*) FROM registry_snapshots"),
        )


@pytest.mark.parametrize("name", sorted(CASES))
async def test_malformed_extract_is_refused_whole_with_a_report(app_pool, municipality, name):
    code = await municipality()
    build, reasons = CASES[name]
    data = build()
    proc = psutil.Process(os.getpid())
    rss_before = proc.memory_info().rss
    start = time.monotonic()
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_residents(conn, code, data)
    elapsed = time.monotonic() - start
    del data
    rejected = caught.value
    assert rejected.errors and rejected.total >= 1
    assert {e.reason for e in rejected.errors} & reasons, [e.describe() for e in rejected.errors[:5]]
    # The report names lines and reasons, never the offending values.
    assert all(len(e.describe()) < 200 for e in rejected.errors[:100])
    assert await _rows(app_pool, code) == (0, 0)
    assert elapsed < MAX_SECONDS, elapsed
    assert proc.memory_info().rss - rss_before < MAX_RSS_GROWTH


async def test_a_valid_file_still_imports_after_the_rejections(app_pool, municipality):
    """The control: the same import accepts the well-formed extract the cases were made from."""
    code = await municipality()
    async with tenant_transaction(app_pool, code) as conn:
        result = await import_residents(conn, code, _valid())
    assert result.rows == 2 and await _rows(app_pool, code) == (2, 1)

"""Importing registry extracts as snapshots: residents (住民基本台帳), tax statuses, registered accounts.

An import runs in the caller's tenant transaction: the snapshot row is claimed first (its unique key on
the file's SHA-256 makes a second import of the same file a no-op, and makes a concurrent one wait and
then see the first). A residents file then goes once, straight into the snapshot's future partition of
residents, which gets its indexes in bulk and is attached with the snapshot, by one of two paths:

* typed (migrations/0012_residents_typed_load.sql): a UTF-8 file whose every line the C encoder
  (app/registry/residentcsv.py) accepts arrives as a binary COPY of typed rows sorted by 住民票コード;
  publish adds the parent's constraints and a few cheap rules as defense in depth;
* text (migrations/0011_residents_partitioned.sql), for every other file (a line the encoder declines,
  CP932, the encoder not built): the CSV is COPYed as text and publish checks the line rules below as
  CHECK constraints.

Either check says only that some line is bad, so a rejected file is read again into a temporary staging
table and one query reports every bad line (REPORT_RESIDENTS). Tax files take the staging route directly
(they are small). A rejected file leaves nothing behind because the transaction rolls back.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import hashlib
import inspect
import io
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.crypto import FieldCipher
from app.progress import Report
from app.registry import residentcsv, screening
from app.registry.csvfile import (
    UNSPLITTABLE,
    Column,
    CsvBody,
    body_source,
    copy_body,
    copy_rejection,
    read_header,
    record_start_lines,
)
from app.registry.errors import ImportRejected, LineError, RegistryError, SnapshotMismatch
from payouts import accounts
from payouts.accounts import AccountInvalid

# At most this many bad lines are listed (the total is always counted); a file with a systematic
# problem would otherwise produce a million-line report.
MAX_REPORTED_ERRORS = 1000

RESIDENT_COLUMNS = [
    Column("住民票コード", "resident_code", True),
    Column("世帯番号", "household_no", True),
    Column("続柄", "relationship", True),
    Column("世帯主", "is_head", True),
    Column("氏", "family_name", True),
    Column("名", "given_name", True),
    Column("氏カナ", "family_kana", True),
    Column("名カナ", "given_kana", True),
    Column("生年月日", "birth_date", True),
    Column("性別", "sex", True),
    Column("住所", "address", True),
    Column("住定日", "moved_in_on", True),
    Column("消除日", "removed_on", True),
    Column("消除事由", "removal_reason", True),
    Column("前世帯番号", "prev_household_no", False),
    Column("世帯変更日", "household_changed_on", False),
]
TAX_COLUMNS = [
    Column("世帯番号", "household_no", False),
    Column("住民票コード", "resident_code", False),
    Column("課税区分", "tax_class", True),
]
ACCOUNT_COLUMNS = [
    Column("住民票コード", "resident_code", True),
    Column("金融機関コード", "bank_code", True),
    Column("支店コード", "branch_code", True),
    Column("預金種目", "account_type", True),
    Column("口座番号", "account_number", True),
    Column("口座名義カナ", "holder_kana", True),
]

# 続柄 as written in 住民票 (the common entries; anything else is reported, not guessed).
RELATIONSHIPS = [
    "世帯主",
    "妻",
    "夫",
    "未届の妻",
    "未届の夫",
    "子",
    "養子",
    "妻の子",
    "夫の子",
    "子の妻",
    "子の夫",
    "父",
    "母",
    "養父",
    "養母",
    "妻の父",
    "妻の母",
    "夫の父",
    "夫の母",
    "祖父",
    "祖母",
    "妻の祖父",
    "妻の祖母",
    "夫の祖父",
    "夫の祖母",
    "孫",
    "孫の妻",
    "孫の夫",
    "曾孫",
    "兄",
    "姉",
    "弟",
    "妹",
    "兄の妻",
    "弟の妻",
    "姉の夫",
    "妹の夫",
    "伯父",
    "伯母",
    "叔父",
    "叔母",
    "甥",
    "姪",
    "いとこ",
    "縁故者",
    "同居人",
    "使用人",
    "その他",
]
REMOVAL_REASONS = ["転出", "死亡", "国外転出", "職権消除", "失踪宣告", "その他"]
TAX_CLASSES = {"課税": "taxable", "非課税": "exempt", "均等割のみ": "per_capita_only"}

CLAIM_SNAPSHOT = """
INSERT INTO registry_snapshots (municipality_code, kind, fiscal_year, file_sha256)
VALUES ($1, $2, $3, $4)
ON CONFLICT (municipality_code, kind, file_sha256) DO NOTHING
RETURNING snapshot_id
"""
EXISTING_SNAPSHOT = """
SELECT snapshot_id, fiscal_year, row_count, status FROM registry_snapshots
WHERE municipality_code = $1 AND kind = $2 AND file_sha256 = $3
"""
PUBLISH_SNAPSHOT = """
UPDATE registry_snapshots SET status = 'published', published_at = now(), row_count = $3
WHERE municipality_code = $1 AND snapshot_id = $2
"""

# The columns REPORT_RESIDENTS checks, in the order of its reasons array.
RESIDENT_CHECK_COLUMNS = [
    "住民票コード",
    "世帯番号",
    "続柄",
    "世帯主",
    "氏",
    "名",
    "氏カナ",
    "名カナ",
    "生年月日",
    "性別",
    "住所",
    "住定日",
    "消除日",
    "消除事由",
    "前世帯番号",
    "世帯変更日",
]

# Text staging for the report on a rejected file: every value arrives as text so that a bad value becomes
# a reported line, not a COPY abort. line_no follows COPY's row order (the header is line 1). Dropped at commit.
CREATE_RESIDENT_STAGING = """
CREATE TEMP TABLE resident_staging (
    line_no bigint GENERATED ALWAYS AS IDENTITY (START WITH 2),
    resident_code text, household_no text, relationship text, is_head text, family_name text,
    given_name text, family_kana text, given_kana text, birth_date text, sex text, address text,
    moved_in_on text, removed_on text, removal_reason text, prev_household_no text, household_changed_on text
) ON COMMIT DROP
"""


def _ymd(column: str) -> str:
    """SQL for a staging date as the integer YYYYMMDD when it has an accepted shape (YYYY-MM-DD, YYYY/MM/DD,
    YYYYMMDD), else NULL. Only a negated character class is searched: PostgreSQL runs an unanchored
    `[^...]` search three to five times faster than an anchored pattern with counted repeats such as
    '^[0-9]{4}(-[0-9]{2}-...)$', and a million-line file asks this four million times."""
    c = f"s.{column}"
    return (
        f"CASE WHEN octet_length({c}) = 8 AND {c} !~ '[^0-9]' THEN {c}::int"
        f" WHEN octet_length({c}) = 10 AND {c} !~ '[^0-9/-]' AND substr({c}, 5, 1) IN ('-', '/')"
        f" AND substr({c}, 8, 1) = substr({c}, 5, 1) AND octet_length(translate({c}, '-/', '')) = 8"
        f" THEN translate({c}, '-/', '')::int END"
    )


# Every bad value of the file, in one pass: one row per (line, column) with a reason code, first failing
# check per column (an array per line, unnested only for bad lines: a LATERAL VALUES list re-initialises
# its expressions for every line, five times slower). Households with two current heads and repeated
# 住民票コード are found by hash aggregates and joined back. Character checks search for one bad
# character (see _ymd) instead of matching an anchored pattern. Only a rejected file gets here: the CHECK
# constraints of kyufu_residents_publish (0011) are the same rules, and
# tests/registry/test_import.py holds the two to the same verdict line by line.
_LINE_CHECKS = """
WITH heads AS (
    SELECT household_no FROM resident_staging
    WHERE is_head = '1' AND coalesce(removed_on, '') = ''
    GROUP BY household_no HAVING count(*) > 1
), dup AS (
    SELECT resident_code, min(line_no) AS first_line FROM resident_staging
    GROUP BY resident_code HAVING count(*) > 1
), checked AS (
    SELECT s.line_no, ARRAY[
      CASE WHEN coalesce(s.resident_code, '') = '' THEN 'required'
           WHEN octet_length(s.resident_code) <> 11 OR s.resident_code ~ '[^0-9]' THEN 'digits'
           WHEN d.first_line < s.line_no THEN 'duplicate' END,
      CASE WHEN coalesce(s.household_no, '') = '' THEN 'required'
           WHEN octet_length(s.household_no) > 20 OR s.household_no ~ '[^0-9A-Za-z-]' THEN 'digits' END,
      CASE WHEN coalesce(s.relationship, '') = '' THEN 'required'
           WHEN s.relationship <> ALL ($1::text[]) THEN 'unknown_relationship' END,
      CASE WHEN coalesce(s.is_head, '') NOT IN ('0', '1') THEN 'bad_flag'
           WHEN (s.is_head = '1') <> (s.relationship = '世帯主') THEN 'head_mismatch'
           WHEN h.household_no IS NOT NULL THEN 'multiple_heads' END,
      CASE WHEN coalesce(s.family_name, '') = '' THEN 'required'
           WHEN length(s.family_name) > 50 THEN 'too_long' END,
      CASE WHEN coalesce(s.given_name, '') = '' THEN 'required'
           WHEN length(s.given_name) > 50 THEN 'too_long' END,
      CASE WHEN coalesce(s.family_kana, '') = '' THEN 'required'
           WHEN s.family_kana ~ '[^ァ-ヺー・]' THEN 'not_katakana'
           WHEN length(s.family_kana) > 50 THEN 'too_long' END,
      CASE WHEN coalesce(s.given_kana, '') = '' THEN 'required'
           WHEN s.given_kana ~ '[^ァ-ヺー・]' THEN 'not_katakana'
           WHEN length(s.given_kana) > 50 THEN 'too_long' END,
      CASE WHEN coalesce(s.birth_date, '') = '' THEN 'required'
           WHEN NOT coalesce(kyufu_ymd_valid(p.born), false) THEN 'bad_date' END,
      CASE WHEN coalesce(s.sex, '') NOT IN ('1', '2', '9') THEN 'bad_sex' END,
      CASE WHEN coalesce(s.address, '') = '' THEN 'required'
           WHEN length(s.address) > 200 THEN 'too_long' END,
      CASE WHEN coalesce(s.moved_in_on, '') = '' THEN NULL
           WHEN NOT coalesce(kyufu_ymd_valid(p.moved_in), false) THEN 'bad_date'
           WHEN kyufu_ymd_valid(p.born) AND p.moved_in < p.born THEN 'moved_in_before_birth' END,
      CASE WHEN coalesce(s.removed_on, '') = '' THEN NULL
           WHEN NOT coalesce(kyufu_ymd_valid(p.removed), false) THEN 'bad_date'
           WHEN kyufu_ymd_valid(p.born) AND coalesce(kyufu_ymd_valid(p.moved_in), true)
                AND p.removed < coalesce(p.moved_in, p.born) THEN 'removed_before_moved_in' END,
      CASE WHEN coalesce(s.removal_reason, '') = '' AND coalesce(s.removed_on, '') <> '' THEN 'removal_reason_missing'
           WHEN coalesce(s.removal_reason, '') = '' THEN NULL
           WHEN coalesce(s.removed_on, '') = '' THEN 'removal_without_date'
           WHEN s.removal_reason <> ALL ($2::text[]) THEN 'unknown_removal_reason' END,
      CASE WHEN (coalesce(s.prev_household_no, '') = '') <> (coalesce(s.household_changed_on, '') = '')
                THEN 'household_change_pair'
           WHEN coalesce(s.prev_household_no, '') <> ''
                AND (octet_length(s.prev_household_no) > 20 OR s.prev_household_no ~ '[^0-9A-Za-z-]') THEN 'digits' END,
      CASE WHEN coalesce(s.household_changed_on, '') <> ''
                AND NOT coalesce(kyufu_ymd_valid(p.changed), false) THEN 'bad_date' END
    ] AS reasons
    -- Each date is parsed once per line, in a subquery that OFFSET 0 keeps the planner from flattening
    -- (flattened, every check would repeat the parsing; as a LATERAL subquery it got a useless Memoize).
    FROM (SELECT s.*, {born} AS born, {moved_in} AS moved_in, {removed} AS removed, {changed} AS changed
          FROM resident_staging s OFFSET 0) s
    CROSS JOIN LATERAL (SELECT s.born, s.moved_in, s.removed, s.changed) p
    LEFT JOIN dup d ON d.resident_code = s.resident_code
    LEFT JOIN heads h ON h.household_no = s.household_no AND s.is_head = '1' AND coalesce(s.removed_on, '') = ''
), bad AS (
    -- Only lines with a problem are unnested (a clean million-line file unnests nothing).
    SELECT c.line_no, u.ord, ($4::text[])[u.ord] AS col, u.reason
    FROM checked c, unnest(c.reasons) WITH ORDINALITY AS u(reason, ord)
    WHERE num_nonnulls(VARIADIC c.reasons) > 0 AND u.reason IS NOT NULL
)
SELECT (SELECT count(*) FROM bad) AS total, line_no, col, reason
FROM (SELECT * FROM bad ORDER BY line_no, ord LIMIT $3) b
"""
REPORT_RESIDENTS = _LINE_CHECKS.format(
    born=_ymd("birth_date"),
    moved_in=_ymd("moved_in_on"),
    removed=_ymd("removed_on"),
    changed=_ymd("household_changed_on"),
)

# The snapshot's future partition, and its publication with the line rules (both SECURITY DEFINER
# functions of the owner, which check that the snapshot is the scoped municipality's and still being
# imported; migrations/0011_residents_partitioned.sql).
LOAD_BEGIN = "SELECT kyufu_residents_load_begin($1)"
LOAD_PUBLISH = "SELECT kyufu_residents_publish($1, $2, $3)"
PARTITION_SCHEMA = "registry_parts"
# The typed load (0012), for a body the C encoder has checked and encoded (app/registry/residentcsv.py);
# LOAD_PUBLISH publishes either load (0011's function tells them apart by the table).
LOAD_TYPED = "SELECT kyufu_residents_load_typed($1)"
# Columns that the partition generates from the file's text (typed, or NULL when empty) take the text
# in <name>_raw.
_GENERATED = {
    "is_head",
    "birth_date",
    "moved_in_on",
    "removed_on",
    "removal_reason",
    "prev_household_no",
    "household_changed_on",
}

CREATE_TAX_STAGING = """
CREATE TEMP TABLE tax_staging (
    line_no bigint GENERATED ALWAYS AS IDENTITY (START WITH 2),
    household_no text, resident_code text, tax_class text
) ON COMMIT DROP
"""
VALIDATE_TAX = """
WITH bad AS (
    SELECT s.line_no, v.ord, v.col, v.reason
    FROM tax_staging s,
    LATERAL (VALUES
      (1, '世帯番号', CASE WHEN (coalesce(s.household_no, '') = '') = (coalesce(s.resident_code, '') = '')
                               THEN 'one_key'
                          WHEN s.household_no !~ '^[0-9A-Za-z-]{1,20}$' THEN 'digits' END),
      (2, '住民票コード', CASE WHEN coalesce(s.resident_code, '') <> '' AND s.resident_code !~ '^[0-9]{11}$'
                                 THEN 'digits' END),
      (3, '課税区分', CASE WHEN coalesce(s.tax_class, '') <> ALL ($1::text[]) THEN 'bad_tax_class' END)
    ) AS v(ord, col, reason)
    WHERE v.reason IS NOT NULL
)
SELECT (SELECT count(*) FROM bad) AS total, line_no, col, reason
FROM (SELECT * FROM bad ORDER BY line_no, ord LIMIT $2) b
"""
INSERT_TAX = """
INSERT INTO tax_statuses (municipality_code, snapshot_id, line_no, fiscal_year, household_no, resident_code, tax_class)
SELECT $1, $2, line_no, $3, nullif(household_no, ''), nullif(resident_code, ''),
       (($4::text[])[array_position($5::text[], tax_class)])
FROM tax_staging
"""

# (field, CSV header, rule, reason code in the report) of the 公金受取口座 extract.
ACCOUNT_FIELDS = (
    ("bank_code", "金融機関コード", accounts.check_bank_code, "digits"),
    ("branch_code", "支店コード", accounts.check_branch_code, "digits"),
    ("account_type", "預金種目", accounts.check_account_type, "bad_account_type"),
    ("account_number", "口座番号", accounts.check_account_number, "digits"),
    ("holder_kana", "口座名義カナ", accounts.check_holder_kana, "kana"),
)
UPSERT_ACCOUNTS = """
INSERT INTO registered_accounts (municipality_code, resident_code, bank_code, branch_code, account_type,
    account_number_enc, holder_kana_enc, source, updated_at)
SELECT $1, r, b, br, t, n, k, 'koukin', now()
FROM unnest($2::text[], $3::text[], $4::text[], $5::int2[], $6::bytea[], $7::bytea[]) AS u(r, b, br, t, n, k)
ON CONFLICT (municipality_code, resident_code) DO UPDATE
SET bank_code = excluded.bank_code, branch_code = excluded.branch_code, account_type = excluded.account_type,
    account_number_enc = excluded.account_number_enc, holder_kana_enc = excluded.holder_kana_enc,
    source = excluded.source, updated_at = excluded.updated_at
"""


@dataclass(frozen=True)
class ImportResult:
    snapshot_id: int
    rows: int
    already_imported: bool


def _reported_by_file_line(import_function):
    """The import's rejection numbered by the file's physical lines, as the clerk's editor shows them: COPY,
    the staging tables and csv count records, which run behind once a quoted field holds a line break."""
    signature = inspect.signature(import_function)

    @functools.wraps(import_function)
    async def wrapper(*args, **kwargs):
        try:
            return await import_function(*args, **kwargs)
        except ImportRejected as exc:
            data = signature.bind(*args, **kwargs).arguments["data"]
            starts = await asyncio.to_thread(record_start_lines, data, {e.line for e in exc.errors})
            if not starts:
                raise
            raise exc.on_lines(starts) from None

    return wrapper


async def _claim(conn, code: str, kind: str, fiscal_year: int | None, sha: str) -> tuple[int, ImportResult | None]:
    """Claim the snapshot for this file, or return the earlier import of the same file (a no-op)."""
    snapshot_id = await conn.fetchval(CLAIM_SNAPSHOT, code, kind, fiscal_year, sha)
    if snapshot_id is not None:
        return snapshot_id, None
    row = await conn.fetchrow(EXISTING_SNAPSHOT, code, kind, sha)
    if row["fiscal_year"] != fiscal_year:
        raise SnapshotMismatch(f"同じファイルが年度 {row['fiscal_year']} として取込済みです。年度を確認してください。")
    return row["snapshot_id"], ImportResult(row["snapshot_id"], row["row_count"], True)


async def _rejected_if_any(rows: list[asyncpg.Record]) -> None:
    if rows:
        raise ImportRejected([LineError(r["line_no"], r["col"], r["reason"]) for r in rows], rows[0]["total"])


@_reported_by_file_line
async def import_residents(
    conn: asyncpg.Connection, code: str, data: bytes, progress: Report | None = None
) -> ImportResult:
    """Import a 住民基本台帳 extract (call inside tenant_transaction(conn, code)). `progress(done, total,
    stage)` hears of the bytes sent and of the stages (app/progress.py)."""
    body = read_header(data, RESIDENT_COLUMNS)
    sha = hashlib.sha256(data).hexdigest()
    snapshot_id, earlier = await _claim(conn, code, "residents", None, sha)
    if earlier:
        return earlier
    try:
        async with conn.transaction():  # a savepoint: a rejected file leaves no partition behind
            rows = await _load_partition(conn, snapshot_id, data, body, progress)
    except UNSPLITTABLE as exc:
        # Reading it again into the staging table would stop at the same line.
        raise copy_rejection(exc) from None
    except asyncpg.IntegrityConstraintViolationError:
        # kyufu_residents_publish found a broken line rule, a repeated 住民票コード or two current heads,
        # and says no more (its message names no row): the report names every bad line.
        await _report_residents(conn, data, body, progress)
        raise RegistryError("取込を中止しました（原因の行を特定できませんでした）。") from None
    await conn.execute(PUBLISH_SNAPSHOT, code, snapshot_id, rows)
    # Every unpaid entitlement against the new snapshot, in this transaction: a published snapshot is
    # always a screened one (deaths and moves after 基準日 are held for staff: app/registry/screening.py).
    await screening.screen(conn, code, snapshot_id)
    return ImportResult(snapshot_id, rows, False)


async def _load_partition(
    conn: asyncpg.Connection, snapshot_id: int, data: bytes, body: CsvBody, progress: Report | None
) -> int:
    """Load the body into the snapshot's future partition and publish it; returns the number of rows."""
    if progress is not None:
        progress(0, len(data) - body.body_offset, "読込・検査")
    payload = None
    if body.pg_encoding == "UTF8":
        # Seconds of CPU for a million lines: kept off the event loop. None (a line the encoder declines,
        # or no encoder built) means the text path below, which also builds the report of a bad file.
        payload = await asyncio.to_thread(
            residentcsv.encode, memoryview(data)[body.body_offset :], body.columns, RELATIONSHIPS, REMOVAL_REASONS
        )
    if payload is not None:
        try:
            async with conn.transaction():  # a savepoint: a refused typed load leaves nothing
                return await _load_typed(conn, snapshot_id, payload, len(data) - body.body_offset, progress)
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError):
            # Should not happen (the encoder checks every rule and writes the format): a rule broken all the
            # same at publish (a bare check_violation naming no row), or a payload PostgreSQL cannot read
            # (its error names a line and column of the COPY, never a value). The text path, the reference,
            # decides: it loads the file or is refused, and then the report names every bad line.
            pass
    table = await conn.fetchval(LOAD_BEGIN, snapshot_id)
    source = body_source(data, body, progress, "読込・検査")
    # FREEZE (allowed: the table was created in this subtransaction, and nobody else can see it yet)
    # writes the rows frozen and all-visible, so the first reader (eligibility) does not rewrite every
    # page to set hint bits, and vacuum has nothing to freeze later.
    status = await conn.copy_to_table(
        table,
        schema_name=PARTITION_SCHEMA,
        source=source,
        format="csv",
        encoding=body.pg_encoding,
        freeze=True,
        columns=[f"{c}_raw" if c in _GENERATED else c for c in body.columns],
    )
    return await _publish(conn, snapshot_id, status, progress)


async def _load_typed(
    conn: asyncpg.Connection, snapshot_id: int, payload: bytes, body_size: int, progress: Report | None
) -> int:
    """The typed path: binary COPY of the encoder's payload (FREEZE, as on the text path), then publish."""
    table = await conn.fetchval(LOAD_TYPED, snapshot_id)
    source = _PayloadSource(payload, body_size, progress, "読込・検査")
    status = await conn.copy_to_table(
        table,
        schema_name=PARTITION_SCHEMA,
        source=source,
        format="binary",
        columns=list(residentcsv.OUTPUT_COLUMNS),
        freeze=True,
    )
    return await _publish(conn, snapshot_id, status, progress)


async def _publish(conn: asyncpg.Connection, snapshot_id: int, copy_status: str, progress: Report | None) -> int:
    """Publish the loaded partition (either load: kyufu_residents_publish tells them apart); returns the rows
    the COPY wrote."""
    if progress is not None:
        progress(0, 1, "索引・公開")
    await conn.execute(LOAD_PUBLISH, snapshot_id, RELATIONSHIPS, REMOVAL_REASONS)
    if progress is not None:
        progress(1, 1)
    return int(copy_status.split()[-1])


class _PayloadSource(io.BytesIO):
    """The binary payload for COPY; reports progress in the file's body bytes (the bar's total) as asyncpg
    reads it, so both paths move the same bar."""

    def __init__(self, payload: bytes, body_size: int, progress: Report | None, stage: str):
        super().__init__(payload)
        self._scale = body_size / max(len(payload), 1)
        self._body_size, self._progress, self._stage = body_size, progress, stage

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if self._progress is not None:
            self._progress(min(round(self.tell() * self._scale), self._body_size), self._body_size, self._stage)
        return chunk


async def _report_residents(conn: asyncpg.Connection, data: bytes, body: CsvBody, progress: Report | None) -> None:
    """Read a rejected file into the text staging table and raise ImportRejected listing every bad line."""
    # Sorting and hashing a million staging rows spill to disk at the default 4 MB.
    await conn.execute("SET LOCAL work_mem = '256MB'")
    await conn.execute(CREATE_RESIDENT_STAGING)
    await copy_body(conn, "resident_staging", data, body, _staged(progress, "エラー行の特定"))
    # Row estimates for the aggregates (a fresh temp table has no statistics; ~0.1 s).
    await conn.execute("ANALYZE resident_staging")
    await _rejected_if_any(
        await conn.fetch(REPORT_RESIDENTS, RELATIONSHIPS, REMOVAL_REASONS, MAX_REPORTED_ERRORS, RESIDENT_CHECK_COLUMNS)
    )


def _staged(progress: Report | None, stage: str) -> Report | None:
    """`progress` with every report naming `stage`."""
    if progress is None:
        return None
    return lambda done, total, _stage=None: progress(done, total, stage)


@_reported_by_file_line
async def import_tax(
    conn: asyncpg.Connection, code: str, fiscal_year: int, data: bytes, progress: Report | None = None
) -> ImportResult:
    """Import 課税区分 per household or resident for one fiscal year (inside tenant_transaction)."""
    body = read_header(data, TAX_COLUMNS)
    sha = hashlib.sha256(data).hexdigest()
    snapshot_id, earlier = await _claim(conn, code, "tax", fiscal_year, sha)
    if earlier:
        return earlier
    await conn.execute(CREATE_TAX_STAGING)
    await copy_body(conn, "tax_staging", data, body, _staged(progress, "読込"))
    await _rejected_if_any(await conn.fetch(VALIDATE_TAX, list(TAX_CLASSES), MAX_REPORTED_ERRORS))
    status = await conn.execute(
        INSERT_TAX, code, snapshot_id, fiscal_year, list(TAX_CLASSES.values()), list(TAX_CLASSES)
    )
    rows = int(status.split()[-1])
    await conn.execute(PUBLISH_SNAPSHOT, code, snapshot_id, rows)
    await conn.execute("DROP TABLE tax_staging")
    return ImportResult(snapshot_id, rows, False)


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("cp932")
        except UnicodeDecodeError:
            raise ImportRejected([LineError(1, "(ファイル)", "encoding")]) from None


@_reported_by_file_line
async def import_accounts(conn: asyncpg.Connection, cipher: FieldCipher, code: str, data: bytes) -> ImportResult:
    """Import registered accounts (公金受取口座-style, one per resident), encrypting number and holder kana.

    Every row has to pass through Python anyway to be encrypted, so it is parsed there; the write is still
    one statement. A resident already on file gets the newer account.
    """
    read_header(data, ACCOUNT_COLUMNS)  # same header and encoding rules as the other files
    sha = hashlib.sha256(data).hexdigest()
    snapshot_id, earlier = await _claim(conn, code, "accounts", None, sha)
    if earlier:
        return earlier
    reader = csv.reader(io.StringIO(_decode(data)))
    header = [h.strip() for h in next(reader)]
    index = {c.header: header.index(c.header) for c in ACCOUNT_COLUMNS}
    cols: dict[str, list] = {k: [] for k in ("r", "b", "br", "t", "n", "k")}
    errors: list[LineError] = []
    seen: set[str] = set()
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            errors.append(LineError(line_no, "(行全体)", "column_count"))
            continue
        v = {h: row[i].strip() for h, i in index.items()}
        bad = len(errors)
        resident = v["住民票コード"]
        if not (len(resident) == 11 and resident.isascii() and resident.isdigit()):
            errors.append(LineError(line_no, "住民票コード", "digits"))
        elif resident in seen:
            errors.append(LineError(line_no, "住民票コード", "duplicate"))
        seen.add(resident)
        # The account rules of every entry point (payouts.accounts); each bad field is reported.
        account: dict[str, Any] = {}  # str codes and texts, an int account type
        for field, header_name, check, reason in ACCOUNT_FIELDS:
            try:
                account[field] = check(v[header_name])
            except AccountInvalid:
                errors.append(LineError(line_no, header_name, reason))
        if len(errors) > bad:
            continue
        cols["r"].append(resident)
        cols["b"].append(account["bank_code"])
        cols["br"].append(account["branch_code"])
        cols["t"].append(account["account_type"])
        cols["n"].append(cipher.encrypt("registered_accounts", "account_number", resident, account["account_number"]))
        cols["k"].append(cipher.encrypt("registered_accounts", "holder_kana", resident, account["holder_kana"]))
    if errors:
        raise ImportRejected(errors[:MAX_REPORTED_ERRORS], len(errors))
    if not cols["r"]:
        raise ImportRejected([LineError(2, "(ファイル)", "empty_file")])
    await conn.execute(UPSERT_ACCOUNTS, code, cols["r"], cols["b"], cols["br"], cols["t"], cols["n"], cols["k"])
    await conn.execute(PUBLISH_SNAPSHOT, code, snapshot_id, len(cols["r"]))
    return ImportResult(snapshot_id, len(cols["r"]), False)

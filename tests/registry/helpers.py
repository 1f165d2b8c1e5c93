"""Test helpers: small registry CSVs and applications written the way intake writes them."""

from __future__ import annotations

import csv
import io
import itertools
import secrets

import pytest

from app.crypto import FieldCipher
from app.registry.imports import RESIDENT_COLUMNS

_codes = itertools.count(10_000_000_000 + secrets.randbelow(10**9))


class ServerLog:
    """What the embedded PostgreSQL writes to its log from now on (a test is skipped against an external
    DATABASE_URL, whose log is not readable here)."""

    def __init__(self, servers):
        if servers.embedded is None:
            pytest.skip("the server log of an external DATABASE_URL is not readable here")
        self.path = servers.embedded.pgdata / "server.log"
        self.start = self.path.stat().st_size

    def written(self) -> str:
        with open(self.path, "rb") as fh:
            fh.seek(self.start)
            return fh.read().decode("utf-8", "replace")


DEFAULTS = dict(
    relationship="世帯主",
    is_head="1",
    family_name="山田",
    given_name="太郎",
    family_kana="ヤマダ",
    given_kana="タロウ",
    birth_date="1980-05-05",
    sex="1",
    address="東京都千代田区1-1",
    moved_in_on="2000-01-01",
    removed_on="",
    removal_reason="",
    prev_household_no="",
    household_changed_on="",
)


def person(**overrides) -> dict:
    """A resident row: a fresh 11-digit 住民票コード and a household of its own unless given."""
    resident_code = f"{next(_codes):011d}"
    row = dict(DEFAULTS, resident_code=resident_code, household_no="H" + resident_code)
    if overrides.get("relationship", "世帯主") != "世帯主":
        row["is_head"] = "0"
    row.update(overrides)
    return row


def residents_csv(rows: list[dict], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.header for c in RESIDENT_COLUMNS])
    for r in rows:
        writer.writerow([r[c.name] for c in RESIDENT_COLUMNS])
    return out.getvalue().encode(encoding)


def simple_csv(header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


INSERT_APPLICATION = """
INSERT INTO applications (application_id, municipality_code, entitlement_id, receipt_no, channel,
    applicant_resident_code, is_proxy, bank_code, branch_code, account_type, account_number_enc, holder_kana_enc,
    submitted_at)
OVERRIDING SYSTEM VALUE
VALUES ($1, $2, $3, $4, $5, $6, $7, '0001', '001', 1, $8, $9, coalesce($10, now()))
"""


async def create_application(
    conn,
    cipher: FieldCipher,
    code: str,
    entitlement_id: int,
    holder_kana: str,
    *,
    applicant: str | None = None,
    is_proxy: bool = False,
    account_number: str = "1234567",
    channel: str = "online",
    submitted_at=None,
    outbox_job: bool = True,
) -> int:
    """An application as intake creates it (status 'received', bank details encrypted per row), plus its
    outbox row. Call inside tenant_transaction."""
    app_id = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('applications', 'application_id'))")
    await conn.execute(
        INSERT_APPLICATION,
        app_id,
        code,
        entitlement_id,
        f"T{app_id}",
        channel,
        applicant,
        is_proxy,
        cipher.encrypt("applications", "account_number", app_id, account_number),
        cipher.encrypt("applications", "holder_kana", app_id, holder_kana),
        submitted_at,
    )
    if outbox_job:
        from app import outbox

        await outbox.add(conn, code, "verify_application", f"verify:{code}:{app_id}", code, app_id)
    return app_id

"""The audit trail: append one entry per staff action; verify the hash chain; export for auditors.

The database assigns seq, prev_hash, occurred_at and hash (trigger audit_log_chain in
migrations/0005_staff.sql). `entry_hash` below is the same formula written independently in Python, so
verification does not trust the function that wrote the rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from app import csvsafe
from app.db import fetch_always

if TYPE_CHECKING:
    from app.principals import Staff

GENESIS = "0" * 64

APPEND = """
INSERT INTO audit_log (municipality_code, seq, occurred_at, actor_staff_id, actor_label, action, object_type,
                       object_id, details, prev_hash, hash)
VALUES ($1, 1, now(), $2, $3, $4, $5, $6, $7, $8, $8)
RETURNING seq, hash
"""
# Every column the hash covers, in chain order.
ENTRIES = """
SELECT municipality_code, seq, occurred_at, actor_staff_id, actor_label, action, object_type, object_id,
       details, prev_hash, hash
FROM audit_log WHERE municipality_code = $1 ORDER BY seq
"""
RECENT = ENTRIES.replace("ORDER BY seq", "ORDER BY seq DESC LIMIT $2")


def canonical_details(details: dict[str, Any] | None) -> str:
    """One text per dict, so the hash is over exactly what is stored."""
    return json.dumps(details or {}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


async def append(
    conn: asyncpg.Connection,
    code: str,
    actor: Staff | None,
    action: str,
    object_type: str = "",
    object_id: object = "",
    details: dict[str, Any] | None = None,
    *,
    actor_label: str | None = None,
) -> int:
    """Append an entry inside the caller's tenant transaction (so it commits with the action); returns seq.

    `details` holds identifiers, counts and the staff member's own words, never a resident's data.
    """
    label = actor_label if actor_label is not None else (actor.login if actor else "system")
    # seq/prev_hash/hash are placeholders the trigger overwrites; the CHECKs need well-formed values.
    row = await fetch_always(
        conn,
        APPEND,
        code,
        actor.staff_id if actor else None,
        label,
        action,
        object_type,
        "" if object_id is None else str(object_id),
        canonical_details(details),
        GENESIS,
    )
    return row["seq"]


def _field(value: str) -> bytes:
    raw = value.encode("utf-8")
    return str(len(raw)).encode() + b":" + raw + b";"


def entry_hash(row: asyncpg.Record | dict) -> str:
    """The SHA-256 of one entry, as documented in migrations/0005_staff.sql."""
    occurred: dt.datetime = row["occurred_at"]
    stamp = occurred.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    actor = row["actor_staff_id"]
    parts = (
        row["municipality_code"],
        str(row["seq"]),
        row["prev_hash"],
        stamp,
        "" if actor is None else str(actor),
        row["actor_label"],
        row["action"],
        row["object_type"],
        row["object_id"],
        row["details"],
    )
    return hashlib.sha256(b"".join(_field(p) for p in parts)).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """Result of recomputing a municipality's chain. `broken_at` is the first seq that does not verify."""

    entries: int
    head_hash: str
    broken_at: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


async def verify_chain(conn: asyncpg.Connection, code: str) -> ChainReport:
    """Walk the chain in seq order (call inside a tenant transaction; a cursor streams the rows).

    Catches an edited row (its hash no longer matches its content, or the next row's prev_hash no longer
    matches it), a deleted row (a gap in seq and a prev_hash that points at nothing) and a forged insert.
    Deleting the newest rows leaves a valid shorter chain: compare `head_hash` with one recorded earlier
    (the export prints it) to catch that.
    """
    expected_seq, prev = 1, GENESIS
    count = 0
    async for row in conn.cursor(ENTRIES, code, prefetch=1000):
        seq = row["seq"]
        if seq != expected_seq:
            return ChainReport(count, prev, expected_seq, f"連番 {expected_seq} の記録がありません（削除された可能性）")
        if row["prev_hash"] != prev:
            return ChainReport(count, prev, seq, f"連番 {seq} の前ハッシュが直前の記録と一致しません")
        if entry_hash(row) != row["hash"]:
            return ChainReport(count, prev, seq, f"連番 {seq} の内容がハッシュと一致しません（改ざんの可能性）")
        prev, expected_seq, count = row["hash"], seq + 1, count + 1
    return ChainReport(count, prev)


def _export_dict(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "occurred_at": row["occurred_at"].astimezone(dt.UTC).isoformat(),
        "actor_staff_id": row["actor_staff_id"],
        "actor_label": row["actor_label"],
        "action": row["action"],
        "object_type": row["object_type"],
        "object_id": row["object_id"],
        "details": row["details"],
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }


EXPORT_COLUMNS = [
    "seq",
    "occurred_at",
    "actor_staff_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "details",
    "prev_hash",
    "hash",
]


async def export_lines(conn: asyncpg.Connection, code: str, fmt: str) -> AsyncIterator[str]:
    """The chain as CSV (with header) or JSON Lines, streamed.

    JSON Lines carry the exact hashed text. The CSV is for opening in a spreadsheet, so its text cells are
    neutralised (app/csvsafe.py: an unknown login typed as `=HYPERLINK(...)` is exported as `'=HYPERLINK(...)`);
    recompute hashes from the JSON Lines, or `csvsafe.restore()` each text cell first.
    """
    if fmt not in ("csv", "jsonl"):
        raise ValueError("形式は csv か jsonl を指定してください。")
    if fmt == "csv":
        buf = io.StringIO()
        writer = csvsafe.DictWriter(buf, EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        yield buf.getvalue()
    async for row in conn.cursor(ENTRIES, code, prefetch=1000):
        if fmt == "jsonl":
            yield json.dumps(_export_dict(row), ensure_ascii=False) + "\n"
        else:
            buf = io.StringIO()
            csvsafe.DictWriter(buf, EXPORT_COLUMNS, lineterminator="\n").writerow(_export_dict(row))
            yield buf.getvalue()


async def recent(conn: asyncpg.Connection, code: str, limit: int = 100) -> list[asyncpg.Record]:
    return await conn.fetch(RECENT, code, limit)

"""Screening unpaid entitlements against a newer 住民基本台帳 snapshot: deaths and moves after 基準日.

The household registered on 基準日 stays entitled, but the payee (the 世帯主 the entitlement names) may have
died or moved out since; the IRS paid about 1.1 million dead people in 2020 because early batches skipped
this check. So every residents snapshot, once published, is compared with every entitlement not yet paid:
one set-based statement (a snapshot is millions of rows; the entitlements are probed by the partition's
primary key), run in the import's own transaction (app/registry/imports.py) and again after each
eligibility run (whose new entitlements the import could not see). It never runs in a web request.

A payee whom the snapshot shows removed (消除日 set) gets a hold (payouts/holds.py, source 'screening')
for a staff decision, with what the snapshot says and the program's rule as a suggestion:

* died (死亡, 失踪宣告): the program's after_base_date_rule — pay the household's new 世帯主 (when the snapshot
  names one) or stop;
* moved out (転出, 国外転出): pay as applied (the household of 基準日 is entitled where it was registered);
* removed for another reason (職権消除, その他): no suggestion; staff investigate.

A payee the snapshot does not list at all is left alone: an evacuee's entitlement (DV 申出) names a person
registered elsewhere. A payee is screened once per finding: after staff decided, a later snapshot saying
the same does not hold the entitlement again (a new payee, after a 'new_head' decision, is screened anew).
Each run is recorded in registry_screenings; the approval page states the snapshot a batch's payments were
screened against (payout_batches.screened_snapshot_id, set when preparation ends: migration 0025).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from app import audit
from app.db import fetch_always
from app.errors import InvalidInput, NotFound
from app.principals import Staff

DIED = ("死亡", "失踪宣告")
# programs.after_base_date_rule: what the screening suggests when the payee died after 基準日.
RULES = {"new_head": "新しい世帯主に支給する", "stop": "支給を停止する"}
MOVED_OUT = ("転出", "国外転出")

# $1 municipality, $2 residents snapshot, $3 removal reasons meaning death, $4 meaning a move.
# unpaid: every entitlement no payment of which has gone to the bank (a 'ready' payment or one in a draft
# or approved batch is screened too: its hold stops the approval or the release).
SCREEN = """
WITH unpaid AS MATERIALIZED (
    SELECT e.entitlement_id, e.household_no, e.head_resident_code, pr.after_base_date_rule
    FROM entitlements e
    JOIN programs pr ON pr.municipality_code = e.municipality_code AND pr.program_id = e.program_id
    WHERE e.municipality_code = $1 AND e.status NOT IN ('paid', 'declined', 'withdrawn')
      AND NOT EXISTS (
        SELECT 1 FROM payments p
        LEFT JOIN payout_batches b ON b.municipality_code = p.municipality_code AND b.batch_id = p.batch_id
        WHERE p.municipality_code = e.municipality_code AND p.entitlement_id = e.entitlement_id
          AND (p.status IN ('released', 'paid') OR (p.status = 'in_batch' AND b.status = 'released')))
), gone AS MATERIALIZED (
    -- The snapshot's removed residents first (a few percent of it, one scan of its partition), so the
    -- unpaid entitlements meet them in one hash join instead of a million index probes.
    SELECT r.resident_code, r.removed_on, r.removal_reason FROM residents r
    WHERE r.municipality_code = $1 AND r.snapshot_id = $2 AND r.removed_on IS NOT NULL
), removed AS (
    SELECT u.*, g.removed_on,
           CASE WHEN g.removal_reason = ANY ($3::text[]) THEN 'died'
                WHEN g.removal_reason = ANY ($4::text[]) THEN 'moved_out'
                ELSE 'removed' END AS finding
    FROM unpaid u
    JOIN gone g ON g.resident_code = u.head_resident_code
    WHERE NOT EXISTS (SELECT 1 FROM payment_holds h
                      WHERE h.municipality_code = $1 AND h.entitlement_id = u.entitlement_id
                        AND h.source = 'screening' AND h.payee_resident_code = u.head_resident_code)
), placed AS (
    INSERT INTO payment_holds (municipality_code, entitlement_id, reason, source, snapshot_id, payee_resident_code,
                               finding, removed_on, suggestion, new_head_resident_code)
    SELECT $1, m.entitlement_id,
           CASE m.finding WHEN 'died' THEN 'death' WHEN 'moved_out' THEN 'moved_out' ELSE 'investigation' END,
           'screening', $2, m.head_resident_code, m.finding, m.removed_on,
           CASE m.finding
             WHEN 'died' THEN CASE WHEN m.after_base_date_rule = 'new_head' AND nh.resident_code IS NOT NULL
                                   THEN 'new_head' ELSE 'stop' END
             WHEN 'moved_out' THEN 'release' END,
           CASE WHEN m.after_base_date_rule = 'new_head' THEN nh.resident_code END
    FROM removed m
    -- The household's 世帯主 now: the head of the same 世帯番号 (or of the one it became) in this snapshot.
    LEFT JOIN LATERAL (
        SELECT r2.resident_code FROM residents r2
        WHERE r2.municipality_code = $1 AND r2.snapshot_id = $2 AND r2.is_head AND r2.removed_on IS NULL
          AND r2.resident_code <> m.head_resident_code
          AND (r2.household_no = m.household_no OR r2.prev_household_no = m.household_no)
        ORDER BY r2.resident_code LIMIT 1
    ) nh ON m.finding = 'died'
    ON CONFLICT (municipality_code, entitlement_id, reason) WHERE released_at IS NULL DO NOTHING
    RETURNING hold_id
)
SELECT (SELECT count(*) FROM unpaid) AS checked, (SELECT count(*) FROM placed) AS held
"""
RECORD = """
INSERT INTO registry_screenings (municipality_code, snapshot_id, checked, held)
VALUES ($1, $2, $3, $4)
ON CONFLICT (municipality_code, snapshot_id) DO UPDATE
SET screened_at = now(), checked = excluded.checked, held = registry_screenings.held + excluded.held
"""
LATEST_RESIDENTS = """
SELECT max(snapshot_id) FROM registry_snapshots
WHERE municipality_code = $1 AND kind = 'residents' AND status = 'published'
"""
PROGRAM_RULES = (
    "SELECT program_id, name, after_base_date_rule FROM programs WHERE municipality_code = $1 ORDER BY program_id"
)
SET_RULE = """
UPDATE programs SET after_base_date_rule = $3 WHERE municipality_code = $1 AND program_id = $2
RETURNING (SELECT p.after_base_date_rule FROM programs p WHERE p.municipality_code = $1 AND p.program_id = $2)
"""
LATEST_SCREENING = """
SELECT s.snapshot_id, s.screened_at, s.checked, s.held, sn.published_at
FROM registry_screenings s
JOIN registry_snapshots sn ON sn.municipality_code = s.municipality_code AND sn.snapshot_id = s.snapshot_id
WHERE s.municipality_code = $1 ORDER BY s.snapshot_id DESC LIMIT 1
"""


@dataclass(frozen=True)
class Screening:
    snapshot_id: int
    checked: int  # unpaid entitlements compared with the snapshot
    held: int  # holds placed by this run


async def screen(conn: asyncpg.Connection, code: str, snapshot_id: int) -> Screening:
    """Screen every unpaid entitlement of the municipality against residents snapshot `snapshot_id` (inside
    the caller's tenant_transaction); record the run and audit it."""
    # The hash of a million entitlements against the snapshot's partition spills at the default 4 MB.
    await conn.execute("SET LOCAL work_mem = '256MB'")
    row = await fetch_always(conn, SCREEN, code, snapshot_id, list(DIED), list(MOVED_OUT))
    result = Screening(snapshot_id, row["checked"], row["held"])
    await conn.execute(RECORD, code, snapshot_id, result.checked, result.held)
    await audit.append(
        conn,
        code,
        None,
        "screening.run",
        "registry_snapshot",
        snapshot_id,
        {"checked": result.checked, "held": result.held},
    )
    return result


async def screen_latest(conn: asyncpg.Connection, code: str) -> Screening | None:
    """Screen against the newest published residents snapshot (None when there is none)."""
    snapshot_id = await conn.fetchval(LATEST_RESIDENTS, code)
    if snapshot_id is None:
        return None
    return await screen(conn, code, snapshot_id)


async def latest(conn: asyncpg.Connection, code: str) -> asyncpg.Record | None:
    """The newest screening of the municipality (snapshot, when, counts), or None."""
    return await conn.fetchrow(LATEST_SCREENING, code)


async def program_rules(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    """Each program's rule for a payee who died after 基準日."""
    return await conn.fetch(PROGRAM_RULES, code)


async def set_rule(conn: asyncpg.Connection, code: str, staff: Staff, program_id: int, rule: str) -> None:
    """An admin sets the program's rule (what later screenings suggest; holds already placed keep theirs)."""
    staff.require("admin")
    if rule not in RULES:
        raise InvalidInput("死亡した場合の扱い（rule）を選んでください。")
    before = await conn.fetchval(SET_RULE, code, program_id, rule)
    if before is None:
        raise NotFound()
    await audit.append(
        conn, code, staff, "programs.after_base_date_rule", "program", program_id, {"rule": rule, "before": before}
    )

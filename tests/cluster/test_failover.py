"""Machines lost for good in the one-machine HA cluster (issue 17), each while residents submit through
HAProxy and two workers verify; each ends with tests/chaos/invariants.check (every receipt exactly one
application, every application verified exactly once, nothing paid twice).

The figures each prints are the ones in docs/reliability.md (`make cluster-chaos`)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos import invariants
from tests.cluster.conftest import CODE
from tests.cluster.residents import Log, apply_all
from tests.intake.helpers import make_letters

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

RESIDENTS = 600


async def _until(what: str, check, timeout: float, poll: float = 0.1) -> float:
    """Seconds until check() is true (sync or async), or fail naming what never happened."""
    started = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(poll)


async def _submitting(ha, n: int = RESIDENTS, concurrency: int = 16) -> tuple[asyncio.Task, Log]:
    """Residents start submitting; returns once a fifth of them have receipts and verification has begun."""
    letters = await make_letters(ha.pool, ha.settings.master_key_bytes, CODE, n)
    log = Log()
    task = asyncio.create_task(apply_all(ha.http_url, letters, log, concurrency=concurrency))

    async def underway():
        c = await invariants.counts(ha.pool, CODE)
        return c["applications"] >= n // 5 and c["applications"] - c["unverified"] >= 10

    await _until("intake and verification under way", underway, 120, poll=0.05)
    assert not task.done(), "intake finished before the fault; use more residents"
    return task, log


def _outage(log: Log, t0: float) -> tuple[float | None, int]:
    """(seconds from t0 until a receipt came back after the first refused request, requests shed between)."""
    refused = [when for when, s in log.since(t0) if s not in (200, 201)]
    if not refused:
        return 0.0, 0
    back = [when for when, s in log.since(refused[0]) if s in (200, 201)]
    end = back[0] if back else None
    shed = sum(1 for when, s in log.since(t0) if s not in (200, 201) and (end is None or when <= end))
    return (end - t0 if end else None), shed


async def test_postgres_leader_sigkilled_during_intake_no_receipt_lost(ha):
    """SIGKILL of the leader's Patroni and postmaster (the machine gone) while 16 clients submit: Patroni
    promotes the synchronous standby, HAProxy follows it, clients retrying with their Idempotency-Key all end
    with one receipt, every receipt is in the database once, and service is back within 25 s. The lost node
    then returns as a standby (pg_rewind) and is synchronous again."""
    old, standby = ha.leader(), ha.sync_standby()
    assert old and standby and old != standby
    task, log = await _submitting(ha)
    t0 = time.monotonic()
    ha.kill(old)
    await _until("the old leader's postmaster gone", lambda: ha.postmaster_pid(old) is None, 5)
    promoted_s = await _until("the standby promoted", lambda: ha.leader() == standby, 60, poll=0.2)
    receipts = await task
    back_s, shed = _outage(log, t0)
    await ha.fresh_pool()
    c = await invariants.check(ha.pool, CODE, receipts, RESIDENTS, timeout=150)
    assert len(set(receipts)) == RESIDENTS
    assert 500 not in log.statuses(), log.statuses()
    assert back_s is not None and back_s < 25, f"service back after {back_s} s"
    assert all(ha.pid(n) for n in ("app1", "app2", "worker1", "worker2"))  # recovered, not restarted

    ha.start(old)  # the machine comes back: Patroni rewinds it and it follows the new leader
    rejoin_s = await _until("the old leader back as synchronous standby", lambda: ha.sync_standby() == old, 120, 0.5)
    print(
        f"\nPG leader SIGKILL: promoted in {promoted_s:.1f} s, service back (first receipt) {back_s:.1f} s,"
        f" {shed} requests shed (retried), clients saw {log.statuses()}; old leader rejoined as sync standby"
        f" {rejoin_s:.1f} s after its restart; {c}"
    )


async def test_valkey_primary_killed_sentinel_promotes_nothing_left_unverified(ha):
    """SIGKILL of the Valkey primary while residents submit and workers verify: the Sentinels promote the
    replica, app and workers follow it (redis+sentinel://), and the outbox sweeper re-enqueues whatever jobs
    the dead primary took with it: no application is left unverified, none verified twice."""
    primary = ha.valkey_primary()
    assert primary is not None
    old = ha.valkey_node(primary[1])
    task, log = await _submitting(ha)
    t0 = time.monotonic()
    ha.kill(old)
    await _until("the old leader's postmaster gone", lambda: ha.postmaster_pid(old) is None, 5)
    promoted_s = await _until(
        "Sentinel promoted the replica", lambda: (ha.valkey_primary() or primary) != primary, 60, poll=0.2
    )
    receipts = await task
    c = await invariants.check(ha.pool, CODE, receipts, RESIDENTS, timeout=150)
    verified_s = time.monotonic() - t0
    assert 500 not in log.statuses(), log.statuses()
    # The nodes rode through the failover (Sentinel-aware clients): none of them died of it.
    assert all(ha.pid(n) for n in ("app1", "app2", "worker1", "worker2")), ha.log_tail("worker1")
    _, shed = _outage(log, t0)
    print(
        f"\nValkey primary SIGKILL: Sentinel promoted the replica in {promoted_s:.1f} s; every application"
        f" verified {verified_s:.1f} s after the kill; {shed} requests shed; clients saw {log.statuses()}; {c}"
    )


async def test_app_node_killed_under_load_haproxy_routes_around_it(ha):
    """SIGKILL of one app node mid-load: HAProxy replays what the dead node dropped on the other one
    (retry-on conn-failure empty-response) and stops sending it new requests; no client is left with a 5xx
    a retry does not fix, and every receipt is in the database once."""
    task, log = await _submitting(ha, concurrency=32)
    t0 = time.monotonic()
    ha.kill("app1")
    receipts = await task
    c = await invariants.check(ha.pool, CODE, receipts, RESIDENTS, timeout=150)
    statuses = log.statuses()
    assert 500 not in statuses, statuses
    five_xx = sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500)
    after = Log(log.since(t0)).statuses()
    ha.start("app1")
    back_s = await _until("app1 back in HAProxy", lambda: _haproxy_up(ha, "app_http", "app1"), 60, poll=0.5)
    print(
        f"\napp node SIGKILL: {five_xx} 5xx answers in all, each fixed by a retry; after the kill clients saw"
        f" {after}; app1 restarted and back in rotation in {back_s:.1f} s; {c}"
    )


def _haproxy_up(ha, backend: str, server: str) -> bool:
    return ha.haproxy_servers(backend).get(server) == "UP"


async def test_worker_killed_mid_verification_the_other_finishes_nothing_decided_twice(ha):
    """SIGKILL of one of the two worker nodes while both verify: the other goes on; the killed one's jobs
    run again once arq's in-progress lock expires (job timeout + 10 s), the outbox sweeper making sure none
    is lost; every application is decided exactly once."""
    task, log = await _submitting(ha)
    t0 = time.monotonic()
    ha.kill("worker1")
    receipts = await task
    # The killed node's jobs wait for arq's in-progress key: the longest job timeout + 10 s (310 s now).
    c = await invariants.check(ha.pool, CODE, receipts, RESIDENTS, timeout=480)
    print(f"\nworker SIGKILL mid-verification: all verified {time.monotonic() - t0:.1f} s after the kill; {c}")

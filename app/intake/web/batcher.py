"""Group concurrent API submissions into one transaction per municipality.

A surge is thousands of small, independent inserts a second; one transaction each would spend the
machine on round trips and commits. Requests put their claim here and await the answer; a collector
takes whatever has queued up (at most MAX_BATCH) and writes it with array statements in one tenant
transaction — sign-in checks, applications, idempotency keys and outbox rows together, so a batch
commits or fails as a whole and every request in it gets its answer only after the commit.
Under light load a batch is one request and nothing waits.

What sets the throughput is the number of round trips per batch, not the rows: under load every
await costs a turn of an event loop that is busy parsing requests, so a batch is a handful of
statements whatever its size (see claims.insert_claims), and only two batches run at once so that
each is large.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from app import outbox
from app.intake.claims import Claim, Outcome, insert_claims
from app.intake.signin import Letter, authenticate, limited_ips, municipality_keys
from app.tenancy.transaction import tenant_transaction

log = logging.getLogger("kyufu.intake")

MAX_BATCH = 512
# Two batches in flight per process: one in the database while the next fills. With one the process
# idles during every round trip; with four the batches get small. Measured with loadtests/submit.lua
# on a shared 2-core machine, two did best on average, but by less than the run-to-run spread.
MAX_CONCURRENT_BATCHES = 2
# After a commit the dispatcher waits this long, so that under a surge one dispatch (one query, one
# Redis round trip) picks up every row committed meanwhile.
DISPATCH_DELAY_S = 0.5
DISPATCH_LIMIT = 1000
# At most one statistics refresh (migrations/0013_intake_statistics.sql) per this many seconds per process:
# the first plans of a surge are made on near-empty tables, and every batch until the refresh pays for them.
STATISTICS_EVERY_S = 0.5
REFRESH_STATISTICS = "SELECT kyufu_refresh_intake_statistics()"


@dataclass
class Pending:
    code: str
    access_code: str
    pin: str
    claim: Claim  # entitlement_id is filled after sign-in
    ip: str
    future: asyncio.Future


class SignInRejected:
    """Result for a submission whose code/PIN did not match (the handler answers 401)."""


class RateLimited:
    """Result for a submission from an address with too many recent sign-in failures (429)."""


REJECTED = SignInRejected()
LIMITED = RateLimited()
Result = Outcome | SignInRejected | RateLimited


class _Slot:
    """A batch's hold on one of MAX_CONCURRENT_BATCHES, given back once: as soon as every request of the
    batch has its answer (the next batch should not wait for connection clean-up), or at the end."""

    def __init__(self, semaphore: asyncio.Semaphore):
        self.semaphore = semaphore
        self.held = True

    def free(self) -> None:
        if self.held:
            self.held = False
            self.semaphore.release()


class SubmitBatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis,
        master_key: bytes,
        *,
        verify_batch_size: int = 250,
        dispatch_delay_s: float = DISPATCH_DELAY_S,
    ):
        self.pool = pool
        self.redis = redis
        self.master_key = master_key
        self.verify_batch_size = verify_batch_size
        self.dispatch_delay_s = dispatch_delay_s
        self.queue: asyncio.Queue[Pending] = asyncio.Queue()
        self.slots = asyncio.Semaphore(MAX_CONCURRENT_BATCHES)
        self.collector: asyncio.Task | None = None
        self.tasks: set[asyncio.Task] = set()
        self.dispatching: dict[str, bool] = {}
        # Connections kept between batches (at most MAX_CONCURRENT_BATCHES): giving one back to the pool
        # costs a reset round trip (advisory unlock, CLOSE ALL, RESET ALL) per batch, and the batches' own
        # state is transaction-local (set_config(..., true), xact advisory locks), so nothing carries over.
        self.idle: list[PoolConnectionProxy] = []
        self.statistics_at = 0.0
        self.statistics_task: asyncio.Task | None = None

    def start(self) -> None:
        self.collector = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        if self.collector:
            self.collector.cancel()
            await asyncio.gather(self.collector, return_exceptions=True)
        await asyncio.gather(*self.tasks, return_exceptions=True)
        while self.idle:
            await self.pool.release(self.idle.pop())

    async def submit(self, code: str, access_code: str, pin: str, claim: Claim, ip: str) -> Result:
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(Pending(code, access_code, pin, claim, ip, future))
        return await future

    async def _collect(self) -> None:
        while True:
            first = await self.queue.get()
            # Wait for a free slot first: while all slots are busy, requests pile up into the next batch.
            await self.slots.acquire()
            batch = [first]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            task = asyncio.create_task(self._run(batch, _Slot(self.slots)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run(self, batch: list[Pending], slot: _Slot) -> None:
        try:
            # The per-address limit of the whole batch in one Redis round trip (a GET per request queued
            # every request behind redis-py's connection-pool lock), overlapping the transaction's start.
            limited = asyncio.ensure_future(limited_ips(self.redis, {p.ip for p in batch}))
            by_code: dict[str, list[Pending]] = {}
            for p in batch:
                by_code.setdefault(p.code, []).append(p)
            for code, items in by_code.items():
                try:
                    try:
                        created = await self._write(code, items, limited, batch, slot)
                    except asyncpg.DeadlockDetectedError:  # lock order differs only across batches; once more
                        created = await self._write(code, items, limited, batch, slot)
                except Exception as exc:  # every waiter gets the failure; the handler answers 503
                    log.error("intake batch of %d failed: %s", len(items), type(exc).__name__)
                    for p in items:
                        if not p.future.done():
                            p.future.set_exception(exc)
                    continue
                if created:
                    self.after_created(code)
        finally:
            slot.free()

    async def _write(
        self, code: str, items: list[Pending], limited: asyncio.Future, batch: list[Pending], slot: _Slot
    ) -> bool:
        """Write one municipality's part of a batch and answer its requests; True if any was created."""
        # Sorted by access code so two batches touching the same letters lock them in the same order.
        items = sorted(items, key=lambda p: p.access_code)
        results: list[Result] = [REJECTED] * len(items)
        proxy = self.idle.pop() if self.idle else await self.pool.acquire()
        # The pool's proxy forwards every Connection method; asyncpg's types do not make it one.
        conn = cast(asyncpg.Connection, proxy)
        reusable = False
        try:
            async with tenant_transaction(conn, code):
                refused = await limited
                todo = [i for i, p in enumerate(items) if p.ip not in refused]
                for i in range(len(items)):
                    if items[i].ip in refused:
                        results[i] = LIMITED
                keys = await municipality_keys(conn, self.master_key, code)
                letters: list[Letter | None] = await authenticate(
                    conn, keys, code, [(items[i].access_code, items[i].pin) for i in todo]
                )
                ok = [i for i, letter in zip(todo, letters) if letter is not None]
                for i, letter in zip(todo, letters):
                    if letter is not None:
                        items[i].claim.entitlement_id = letter.entitlement_id
                if ok:
                    for i, outcome in zip(ok, await insert_claims(conn, keys, code, [items[i].claim for i in ok])):
                        results[i] = outcome
            reusable = True
        finally:
            if reusable:
                self.idle.append(proxy)
            else:  # the transaction failed: the pool resets the connection, or drops it if it is broken
                await self.pool.release(proxy)
        # Committed: answer now.
        for p, result in zip(items, results):
            if not p.future.done():
                p.future.set_result(result)
        if all(p.future.done() for p in batch):
            slot.free()
        return any(isinstance(r, Outcome) and r.kind == "created" for r in results)

    def after_created(self, code: str) -> None:
        """After a commit that created applications (here or on the resident pages): enqueue their outbox
        rows and keep the intake tables' statistics current."""
        self.schedule_dispatch(code)
        self.refresh_statistics()

    def refresh_statistics(self) -> None:
        """Let the planner see the intake tables grow (why: migrations/0013_intake_statistics.sql). In the
        background, one at a time, at most once every STATISTICS_EVERY_S; the function itself analyzes only
        a table that has doubled since its last analyze, so almost every call is one cheap query."""
        now = time.monotonic()
        if now - self.statistics_at < STATISTICS_EVERY_S or (self.statistics_task and not self.statistics_task.done()):
            return
        self.statistics_at = now
        self.statistics_task = asyncio.create_task(self._refresh_statistics())
        self.tasks.add(self.statistics_task)
        self.statistics_task.add_done_callback(self.tasks.discard)

    async def _refresh_statistics(self) -> None:
        try:
            await self.pool.fetchval(REFRESH_STATISTICS)
        except Exception as exc:  # only speed is at stake; autovacuum analyzes these tables too
            log.warning("intake statistics refresh skipped (%s)", type(exc).__name__)

    def schedule_dispatch(self, code: str) -> None:
        """Enqueue the new outbox rows after commit, best effort: one dispatcher per municipality at a
        time; if Redis is down the rows wait for the sweeper and the residents already have receipts."""
        if code in self.dispatching:
            self.dispatching[code] = True  # run once more when the current one finishes
            return
        self.dispatching[code] = False
        task = asyncio.create_task(self._dispatch(code))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _dispatch(self, code: str) -> None:
        try:
            while True:
                self.dispatching[code] = False
                # Debounce: under a surge one dispatch picks up every row committed meanwhile, instead of
                # one transaction per batch competing with the submissions for the same CPU.
                await asyncio.sleep(self.dispatch_delay_s)
                try:
                    while (
                        await outbox.dispatch(
                            self.pool, self.redis, code, limit=DISPATCH_LIMIT, batch_size=self.verify_batch_size
                        )
                        == DISPATCH_LIMIT
                    ):
                        pass  # a full page: more rows are due right now
                except Exception as exc:  # Redis down or slow: the sweeper re-derives these jobs
                    log.warning("dispatch for %s deferred to the sweeper (%s)", code, type(exc).__name__)
                    return
                if not self.dispatching.get(code):
                    return
        finally:
            self.dispatching.pop(code, None)


def for_app(request) -> SubmitBatcher:
    """The app's batcher, started on first use (it needs the running loop and the lifespan's pool) and
    stopped by the shutdown hooks that app.web.setup runs before the pool closes."""
    state = request.app.state
    batcher = getattr(state, "intake_batcher", None)
    if batcher is None:
        settings = state.settings
        batcher = SubmitBatcher(
            state.pool,
            state.redis,
            settings.master_key_bytes,
            verify_batch_size=settings.verify_batch_size,
            dispatch_delay_s=settings.verify_batch_linger_ms / 1000,
        )
        batcher.start()
        state.intake_batcher = batcher
        state.shutdown_hooks.append(batcher.stop)
    return batcher

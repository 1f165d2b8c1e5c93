"""Group concurrent API submissions into one transaction per municipality.

A surge is thousands of small, independent inserts a second; one transaction each would spend the
machine on round trips and commits. Requests put their claim here and await the answer; a collector
takes whatever has queued up (at most MAX_BATCH) and writes it with array statements in one tenant
transaction — sign-in checks, applications, idempotency keys and outbox rows together, so a batch
commits or fails as a whole and every request in it gets its answer only after the commit.
Under light load a batch is one request and nothing waits.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg

from app.intake.claims import Claim, Outcome, insert_claims
from app.intake.signin import Letter, authenticate, limited_ips, municipality_keys
from app.tenancy.transaction import tenant_transaction
from workers import outbox

log = logging.getLogger("kyufu.intake")

MAX_BATCH = 256
import os as _os; MAX_CONCURRENT_BATCHES = int(_os.environ.get("XB", "4"))
# After a commit the dispatcher waits this long, so that under a surge one dispatch (one query, one
# Redis round trip) picks up every row committed meanwhile.
DISPATCH_DELAY_S = 0.5
DISPATCH_LIMIT = 1000


@dataclass
class Pending:
    code: str
    access_code: str
    pin: str
    claim: Claim                 # entitlement_id is filled after sign-in
    ip: str
    future: asyncio.Future


class SignInRejected:
    """Result for a submission whose code/PIN did not match (the handler answers 401)."""


class RateLimited:
    """Result for a submission from an address with too many recent sign-in failures (429)."""


REJECTED = SignInRejected()
LIMITED = RateLimited()


class SubmitBatcher:
    def __init__(self, pool: asyncpg.Pool, redis, master_key: bytes):
        self.pool = pool
        self.redis = redis
        self.master_key = master_key
        self.queue: asyncio.Queue[Pending] = asyncio.Queue()
        self.slots = asyncio.Semaphore(MAX_CONCURRENT_BATCHES)
        self.collector: asyncio.Task | None = None
        self.tasks: set[asyncio.Task] = set()
        self.dispatching: dict[str, bool] = {}

    def start(self) -> None:
        self.collector = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        if self.collector:
            self.collector.cancel()
            await asyncio.gather(self.collector, return_exceptions=True)
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def submit(
        self, code: str, access_code: str, pin: str, claim: Claim, ip: str
    ) -> Outcome | SignInRejected | RateLimited:
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
            task = asyncio.create_task(self._run(batch))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run(self, batch: list[Pending]) -> None:
        try:
            # The per-address limit for the whole batch in one Redis round trip (one GET per request
            # queued every request behind redis-py's connection-pool lock).
            limited = await limited_ips(self.redis, {p.ip for p in batch})
            by_code: dict[str, list[Pending]] = {}
            for p in batch:
                if p.ip in limited:
                    p.future.set_result(LIMITED)
                else:
                    by_code.setdefault(p.code, []).append(p)
            for code, items in by_code.items():
                try:
                    results = await self._write(code, items)
                except asyncpg.DeadlockDetectedError:
                    results = await self._write(code, items)  # lock order differs only across batches; once more
                except Exception as exc:  # every waiter gets the failure; the handler answers 503
                    log.error("intake batch of %d failed: %s", len(items), type(exc).__name__)
                    for p in items:
                        if not p.future.done():
                            p.future.set_exception(exc)
                    continue
                for p, result in zip(items, results):
                    if not p.future.done():
                        p.future.set_result(result)
                if any(isinstance(r, Outcome) and r.kind == "created" for r in results):
                    self.schedule_dispatch(code)
        finally:
            self.slots.release()

    async def _write(self, code: str, items: list[Pending]) -> list[Outcome | SignInRejected]:
        # Sorted by access code so two batches touching the same letters lock them in the same order.
        order = sorted(range(len(items)), key=lambda i: items[i].access_code)
        async with tenant_transaction(self.pool, code) as conn:
            keys = await municipality_keys(conn, self.master_key, code)
            letters: list[Letter | None] = await authenticate(
                conn, keys, code, [(items[i].access_code, items[i].pin) for i in order])
            results: list[Outcome | SignInRejected] = [REJECTED] * len(items)
            ok = [(i, letter) for i, letter in zip(order, letters) if letter is not None]
            claims = []
            for i, letter in ok:
                items[i].claim.entitlement_id = letter.entitlement_id
                claims.append(items[i].claim)
            if claims:
                for (i, _), outcome in zip(ok, await insert_claims(conn, keys, code, claims)):
                    results[i] = outcome
        return results

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
                await asyncio.sleep(DISPATCH_DELAY_S)
                try:
                    while await outbox.dispatch(self.pool, self.redis, code, limit=DISPATCH_LIMIT) == DISPATCH_LIMIT:
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
        batcher = SubmitBatcher(state.pool, state.redis, state.settings.master_key_bytes)
        batcher.start()
        state.intake_batcher = batcher
        state.shutdown_hooks.append(batcher.stop)
    return batcher

"""Rendering a payout batch: database rows → the exact bytes of its 総合振込 file.

`render_in_transaction` is what the worker's `hash_batch` job calls after drafting (to record the SHA-256
the approver approves, payouts/batches.py) and what `payouts.release` calls to regenerate the file it
seals; no web request renders a file. The same batch always yields
the same bytes: rows in payment_id order, header from the municipality's bank settings and the batch's
transfer date, no clock and no randomness.

How it is fast (the bench: `kyufu payouts bench`): one `COPY ... TO STDOUT` streams the batch; the event
loop cuts the stream into chunks of whole rows and hands them to a pool (payouts/_chunk.py: decrypt,
check, format, encode — in C, payouts/_fastrender.c, on threads that do not hold the GIL), then hashes
the results and passes them to the sink strictly in order.
At most a few chunks are in flight, so memory does not grow with the batch. Small batches skip the pool.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import datetime as dt
import hashlib
import inspect
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from app.metrics import BATCH_PROGRESS
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from payouts import settings_store, zengin
from payouts._chunk import STAGE_COLUMNS, ChunkJob, ChunkResult, _fastrender, render_chunk

# Rows of one batch, in file order; asyncpg wraps it as `COPY (...) TO STDOUT` (text format). RLS scopes it
# too; the municipality filter lets the planner use payments_batch_order (0006) and skip the sort.
STAGE_QUERY = f"SELECT {STAGE_COLUMNS} FROM payments WHERE municipality_code = $1 AND batch_id = $2 ORDER BY payment_id"
BATCH = """
SELECT batch_id, program_id, transfer_date, status, record_count, total_yen, drafted_by, approved_by,
       approved_sha256, plaintext_sha256
FROM payout_batches WHERE municipality_code = $1 AND batch_id = $2
"""
# Text COPY must write bytea as hex for _chunk's parser, whatever the server's default is.
HEX_BYTEA = "SET LOCAL bytea_output = 'hex'"

CHUNK_BYTES = 2 * 1024 * 1024  # ~8,000 rows of COPY text per task
INLINE_MAX_ROWS = 20_000  # below this the pool's start-up and IPC cost more than they save


class BatchNotFound(LookupError):
    """No such batch in this municipality."""

    def __init__(self) -> None:
        super().__init__("指定された振込バッチが見つかりません。")


@dataclass(frozen=True)
class RenderResult:
    sha256: str | None  # hex, of the whole plaintext file; None if the caller's sink hashes (hash_output=False)
    record_count: int
    total_yen: int
    size_bytes: int
    transfer_date: dt.date


@dataclass(frozen=True)
class BatchRow:
    batch_id: int
    program_id: int
    transfer_date: dt.date
    status: str
    record_count: int
    total_yen: int
    drafted_by: int
    approved_by: int | None
    approved_sha256: str | None
    plaintext_sha256: str | None


async def load_batch(conn: asyncpg.Connection, code: str, batch_id: int, *, for_update: bool = False) -> BatchRow:
    row = await conn.fetchrow(BATCH + (" FOR UPDATE" if for_update else ""), code, batch_id)
    if row is None:
        raise BatchNotFound()
    return BatchRow(**dict(row))


# --- the worker pool ----------------------------------------------------------------------------

_pool: concurrent.futures.Executor | None = None
_pool_lock = threading.Lock()


def worker_count() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def uses_threads() -> bool:
    """True when the C loop is built: it releases the GIL for its whole chunk, so threads in this
    process run chunks in parallel with no pickling and no copies between processes (measured: less
    CPU and about half the memory of the process pool). Without it, pure Python needs processes."""
    return _fastrender is not None


def get_pool() -> concurrent.futures.Executor:
    """The process-wide pool, started on first use and kept (a worker process of the app or of arq
    renders many batches). Threads if the C loop is built; otherwise 'spawn' processes, whose children
    import only payouts._chunk: no inherited event loop, sockets or keys from the parent."""
    global _pool
    with _pool_lock:
        if _pool is None:
            if uses_threads():
                _pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=worker_count(), thread_name_prefix="kyufu-render"
                )
            else:
                _pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=worker_count(), mp_context=multiprocessing.get_context("spawn")
                )
            atexit.register(shutdown_pool)
        return _pool


def shutdown_pool() -> None:
    """Stop the workers (at exit, before the interpreter tears down the modules they need)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
            _pool = None


def warm_pool() -> None:
    """Start every worker now (imports included), e.g. at worker start-up."""
    pool = get_pool()
    list(pool.map(_noop, range(worker_count() * 2)))


def _noop(_: int) -> None:
    import payouts._chunk  # noqa: F401  (the import is the warm-up)


# --- rendering ----------------------------------------------------------------------------------


Sink = Callable[[bytes], object]


Progress = Callable[[int, int], None]  # (records rendered so far, records in the batch)


async def render_batch(
    db, settings, code: str, batch_id: int, sink: Sink | None = None, *, progress: Progress | None = None
) -> RenderResult:
    """Render one batch's file; `sink` (optional, sync or async) receives the bytes in order.

    `db` is a pool (a read-only repeatable-read tenant transaction is opened) or a connection (used
    as is when already inside tenant_transaction for `code`, otherwise a transaction is opened).
    Raises zengin.InvalidPayments listing every payment that cannot be written (nothing is partial:
    the sink may have received a prefix, and callers discard it), BatchNotFound,
    settings_store.BankSettingsMissing, zengin.TotalsOverflow.
    """
    if isinstance(db, asyncpg.Pool):
        async with tenant_transaction(db, code, isolation="repeatable_read", readonly=True) as conn:
            return await render_in_transaction(conn, settings.master_key_bytes, code, batch_id, sink, progress=progress)
    if db.is_in_transaction():
        return await render_in_transaction(db, settings.master_key_bytes, code, batch_id, sink, progress=progress)
    async with tenant_transaction(db, code, isolation="repeatable_read", readonly=True):
        return await render_in_transaction(db, settings.master_key_bytes, code, batch_id, sink, progress=progress)


async def render_in_transaction(
    conn: asyncpg.Connection,
    master_key: bytes,
    code: str,
    batch_id: int,
    sink: Sink | None = None,
    *,
    batch: BatchRow | None = None,
    parallel: bool | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Progress | None = None,
    hash_output: bool = True,
) -> RenderResult:
    """render_batch on a connection already in tenant_transaction(conn, code).

    `parallel` forces (True) or forbids (False) the process pool; by default the pool is used for
    batches larger than INLINE_MAX_ROWS."""
    batch = batch or await load_batch(conn, code, batch_id)
    stored = await settings_store.get_bank_settings(conn, code)
    cipher = await load_field_cipher(conn, master_key, code)
    await conn.execute(HEX_BYTEA)
    if parallel is None:
        parallel = batch.record_count > INLINE_MAX_ROWS and worker_count() > 1

    bank = stored.bank
    writer = zengin.FileWriter(bank, batch.transfer_date)
    # A sink that hashes what it receives (the sealer: it refuses a plaintext whose SHA-256 is not the
    # approved one) makes a second pass over every byte here pointless; the caller says so.
    digest = hashlib.sha256() if hash_output else None
    size = 0
    count = total = 0
    problems: list[zengin.Problem] = []
    emit_sink = sink

    async def emit(data: bytes) -> None:
        nonlocal size
        if digest is not None:
            digest.update(data)
        size += len(data)
        if emit_sink is not None:
            result = emit_sink(data)
            if inspect.isawaitable(result):
                await result

    def job(data: bytes) -> ChunkJob:
        return ChunkJob(
            cipher.key,
            cipher.key_version,
            code,
            zengin._data_format(bank),
            "\r\n" if bank.separator == "crlf" else "",
            bank.allow_wo,
            data,
        )

    async def take(result: ChunkResult) -> None:
        nonlocal count, total, emit_sink
        count += result.count
        total += result.total_yen
        gauge.set(count)  # /metrics: kyufu_batch_generation_records{municipality, batch}
        if progress is not None:  # e.g. a rich progress bar in a terminal (app/progress.py)
            progress(count, batch.record_count)
        if result.problems:
            problems.extend(result.problems)
            emit_sink = None  # the file is refused: nothing more goes to the encryptor
        elif not problems:
            if count > zengin.MAX_COUNT:
                raise zengin.TotalsOverflow("合計件数が999,999件を超えます。バッチを分割してください。")
            await emit(result.records)

    gauge = BATCH_PROGRESS.labels(code)
    gauge.set(0)
    await emit(writer.header())
    pool = get_pool() if parallel else None
    pending: deque[asyncio.Future] = deque()
    max_pending = 2 * worker_count() + 1
    pieces: list[bytes] = []
    buffered = 0

    async def submit(data: bytes) -> None:
        if pool is None:
            await take(render_chunk(job(data)))
            return
        pending.append(asyncio.wrap_future(pool.submit(render_chunk, job(data))))
        while len(pending) > max_pending:
            await take(await pending.popleft())

    async def on_copy_data(data: bytes) -> None:
        nonlocal buffered, pieces
        pieces.append(data)
        buffered += len(data)
        if buffered >= chunk_bytes:
            blob = b"".join(pieces)
            cut = blob.rfind(b"\n") + 1
            if cut == len(blob):
                # The usual case (asyncpg hands over whole CopyData messages, one row each): no second copy.
                pieces, buffered = [], 0
                await submit(blob)
                return
            pieces = [blob[cut:]]
            buffered = len(pieces[0])
            await submit(blob[:cut])

    try:
        await conn.copy_from_query(STAGE_QUERY, code, batch_id, output=on_copy_data)
        if buffered:
            await submit(b"".join(pieces))
        while pending:
            await take(await pending.popleft())
    finally:
        for future in pending:  # an error part-way: do not leave work running for nobody
            future.cancel()

    if problems:
        bad = len({p.reference for p in problems})
        raise zengin.InvalidPayments(sorted(problems, key=lambda p: (p.reference, p.field)), bad)
    writer.count, writer.total_yen = count, total
    await emit(writer.finish())
    return RenderResult(digest.hexdigest() if digest else None, count, total, size, batch.transfer_date)

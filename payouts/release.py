"""Releasing an approved batch: regenerate, check against the approval, seal, record — once.

Order of events, and what a crash at each point leaves:

1. Lock the batch row (FOR UPDATE NOWAIT): a second release of the same batch, from another request or
   a retried job, is refused at once instead of racing for the outbox file.
2. Render the file from the rows (payouts.pipeline) straight into the age encryptor, in a thread, while
   hashing; the ciphertext goes to a temp file in outbox/<code>/. If the SHA-256 is not the approved
   one, or count/total differ from the batch, the temp file is discarded: nothing appears. The same when
   PostgreSQL goes away mid-stream or the outbox's disk fills up (DatabaseUnavailable, OutboxFull:
   tests/chaos/test_postgres.py, tests/chaos/test_outbox_disk.py).
3. Write `<name>.age` (rename) and the signed `<name>.manifest.json` (rename).
4. In the same transaction as the lock: the batch becomes 'released' with the hashes and file name,
   and payout_releases keeps the signed manifest. Commit. The payments' rows are not touched: they stay
   'in_batch' and their batch's state says they were sent (migration 0009; rewriting every payment's
   status cost 24-37 s per million rows of index churn for a fact the batch row records once).

A crash between 3 and 4 leaves a complete, signed file for a batch that is still 'approved'. Re-running
the release then finds it: if its manifest verifies with the municipality's key and names this batch and
the approved SHA-256, and the ciphertext matches the manifest, that file is adopted as it is (it may
already have been picked up by the bank's transport, so it must not be replaced by a second encryption
of the same plaintext); the rows are still regenerated first and must hash to the approved value.
Anything else under those names (a lone .age, a manifest that does not verify) cannot have been accepted
by the bank, whose verify needs both, and is replaced. So there is never more than one file per batch,
and it always decrypts to the approved plaintext.

The manifest names the file for the bank's ledger (payouts/bank.py: the bank refuses a file it has accepted
before, and a different file repeating 支払番号 it has executed): `file_id` is drawn when the file is first
written and an adopted file keeps its manifest, so a retried release hands the bank the same file under the
same id; `payment_references_sha256` is taken from the plaintext as it streams to the encryptor (the rows
come in payment_id order, so it keeps only a running hash).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from app.db import DATABASE_UNAVAILABLE, connection_lost
from app.tenancy.municipalities import load_signing_key
from app.tenancy.transaction import tenant_transaction
from payouts import pipeline, sealing, settings_store

log = logging.getLogger("kyufu.payouts.release")

MARK_BATCH_RELEASED = """
UPDATE payout_batches SET status = 'released', released_at = now(), released_sha256 = $3,
       ciphertext_sha256 = $4, file_name = $5
WHERE municipality_code = $1 AND batch_id = $2 AND status = 'approved' AND approved_sha256 = $3
"""
RECORD_RELEASE = """
INSERT INTO payout_releases (municipality_code, batch_id, released_by, file_name, plaintext_sha256,
    ciphertext_sha256, signed_manifest, recovered)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
STAFF_LABEL = "SELECT login FROM staff_users WHERE municipality_code = $1 AND staff_id = $2"
LOCK_NOWAIT = """
SELECT batch_id FROM payout_batches WHERE municipality_code = $1 AND batch_id = $2 FOR UPDATE NOWAIT
"""


class ReleaseError(Exception):
    """Base: the batch was not released; the message says why (Japanese, no personal data)."""


class BatchAlreadyReleased(ReleaseError):
    """The batch's file was released before; a batch is released once."""

    def __init__(self) -> None:
        super().__init__("この振込バッチは既に送信（リリース）済みです。二度は送信できません。")


class BatchNotApproved(ReleaseError):
    """Only an approved batch can be released."""

    def __init__(self, status: str) -> None:
        super().__init__(f"承認済みの振込バッチだけを送信できます（現在の状態: {status}）。")


class ReleaseInProgress(ReleaseError):
    """Another process holds the batch (its release is running)."""

    def __init__(self) -> None:
        super().__init__("この振込バッチは別の処理で送信中です。しばらくしてから状態を確認してください。")


class OutboxFull(ReleaseError):
    """The outbox's filesystem ran out of space (or quota) while the sealed file was written. The temp file
    was removed (payouts.sealing.atomic_file), nothing was renamed into place, nothing was recorded."""

    def __init__(self) -> None:
        super().__init__(
            "送信用フォルダ（outbox）のディスクに空きがないため、ファイルを書き出せませんでした。"
            "ファイルは出力されておらず、送信も記録されていません。空きを確保してから、もう一度送信してください。"
        )


class DatabaseUnavailable(ReleaseError):
    """PostgreSQL went away during the release (restart, crash, network): its transaction did not commit,
    or, if the COMMIT's reply was lost, may have. Either way a re-run is safe and says which."""

    def __init__(self) -> None:
        super().__init__(
            "データベースとの接続が切れたため、送信を完了できませんでした。復旧後にもう一度送信してください"
            "（記録済みであれば「既に送信済み」と表示され、未記録であれば承認済みと同一のファイルであることを"
            "確かめてから記録します）。"
        )


class ApprovalMismatch(ReleaseError):
    """The regenerated file is not the one the approver approved."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"承認後に振込データが変わりました（{what}）。送信を中止しました。差し戻して起案し直してください。"
        )


def file_stem(code: str, batch: pipeline.BatchRow) -> str:
    """Deterministic per batch, so a re-run after a crash finds what an earlier run wrote."""
    return _stem(code, batch.batch_id, batch.transfer_date)


def _stem(code: str, batch_id: int, transfer_date) -> str:
    return f"zengin21-{code}-b{batch_id:08d}-{transfer_date:%Y%m%d}.txt"


def written_files(settings, code: str, batch_id: int, transfer_date) -> list[Path]:
    """Files an earlier, uncommitted release of this batch left in the outbox (a crash between writing
    and committing). While any exists the batch must not go back to draft: the bank's transport may
    already have the file, and a re-draft would send the same payments again under a new batch id."""
    stem = _stem(code, batch_id, transfer_date)
    directory = Path(settings.outbox_path) / code
    return [p for p in (directory / f"{stem}.age", directory / f"{stem}.manifest.json") if p.exists()]


def outbox_dir(settings, code: str) -> Path:
    path = Path(settings.outbox_path) / code
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@dataclass(frozen=True)
class SealedFiles:
    manifest: sealing.Manifest
    signed_manifest: bytes
    age_path: Path
    manifest_path: Path
    recovered: bool


# --- the encryptor thread -------------------------------------------------------------------------


class _Abort(Exception):
    """Sent to the encryptor thread when rendering failed: the temp file is discarded."""


class ThreadedSealer:
    """Runs sealing.seal_batch in a thread, fed by `put(chunk)` from the event loop.

    pyrage pulls plaintext through a file-like reader; the renderer pushes. A bounded queue joins the
    two so memory stays flat: the renderer waits when the encryptor is behind."""

    _END = object()

    def __init__(self, **seal_kwargs) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._result: sealing.Manifest | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, kwargs=seal_kwargs, name="kyufu-sealer", daemon=True)
        self._thread.start()

    def _chunks(self):
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _run(self, **seal_kwargs) -> None:
        try:
            self._result = sealing.seal_batch(plaintext_chunks=self._chunks(), **seal_kwargs)
        except BaseException as exc:  # handed to the caller by finish()
            self._error = exc
            # Drain so a producer blocked on put() is released.
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()

    async def put(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        try:
            self._queue.put_nowait(chunk)
        except queue.Full:
            await asyncio.to_thread(self._put_blocking, chunk)

    def _put_blocking(self, chunk: object) -> None:  # a chunk (bytes), _END or an _Abort for the thread
        while self._thread.is_alive():
            try:
                self._queue.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue

    async def finish(self) -> sealing.Manifest:
        await asyncio.to_thread(self._put_blocking, self._END)
        await asyncio.to_thread(self._thread.join)
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    async def abort(self) -> None:
        await asyncio.to_thread(self._put_blocking, _Abort())
        await asyncio.to_thread(self._thread.join)


# --- release --------------------------------------------------------------------------------------


async def render_and_seal(
    conn: asyncpg.Connection,
    settings,
    code: str,
    batch: pipeline.BatchRow,
    *,
    parallel: bool | None = None,
    progress=None,
) -> SealedFiles:
    """Steps 2-3 (the benchmarked stage): rows → encrypted file and signed manifest on disk.

    `conn` is inside tenant_transaction(conn, code). Adopts a valid leftover file (module docstring)."""
    stored = await settings_store.get_bank_settings(conn, code)
    signing_key = await load_signing_key(conn, settings.master_key_bytes, code)
    approver = await conn.fetchval(STAFF_LABEL, code, batch.approved_by) or str(batch.approved_by)
    directory = outbox_dir(settings, code)
    stem = file_stem(code, batch)
    age_path = directory / (stem + sealing.AGE_SUFFIX)
    manifest_path = directory / (stem + sealing.MANIFEST_SUFFIX)

    leftover = _adoptable(age_path, manifest_path, signing_key, code, batch)
    if leftover is not None:
        # Still prove the rows give the approved bytes before recording the release.
        rendered = await pipeline.render_in_transaction(
            conn, settings.master_key_bytes, code, batch.batch_id, batch=batch, parallel=parallel
        )
        _check(rendered, batch)
        manifest, signed = leftover
        log.warning("batch %s of %s: adopting the sealed file left by an interrupted release", batch.batch_id, code)
        return SealedFiles(manifest, signed, age_path, manifest_path, recovered=True)
    for stale in (age_path, manifest_path):
        # Not adoptable (see module docstring): the bank cannot have accepted it.
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            log.warning("batch %s of %s: removed an incomplete sealed file %s", batch.batch_id, code, stale.name)
    for temp in directory.glob(f".{stem}*.tmp"):
        # Left by a release that was killed while writing (SIGKILL leaves no chance to clean up). This release
        # holds the batch row's lock (step 1), so no other writer of this batch owns it.
        temp.unlink(missing_ok=True)
        log.warning("batch %s of %s: removed a temp file left by an interrupted release", batch.batch_id, code)

    sealer = ThreadedSealer(
        outbox_dir=directory,
        name=stem,
        recipients=list(stored.age_recipients),
        signing_key=signing_key,
        municipality_code=code,
        batch_id=str(batch.batch_id),
        transfer_date=batch.transfer_date,
        record_count=batch.record_count,
        total_yen=batch.total_yen,
        approved_by=approver,
        approved_sha256=batch.approved_sha256,
        reference_digest=True,
    )
    try:
        rendered = await pipeline.render_in_transaction(
            conn,
            settings.master_key_bytes,
            code,
            batch.batch_id,
            sealer.put,
            batch=batch,
            parallel=parallel,
            progress=progress,
            hash_output=False,  # the sealer hashes the plaintext and refuses one that is not the approved file
        )
        _check(rendered, batch)
    except BaseException:
        await sealer.abort()
        raise
    try:
        manifest = await sealer.finish()
    except sealing.PlaintextMismatch:  # the sealer's own hash of what it encrypted (hash_output=False above)
        raise ApprovalMismatch("SHA-256 が承認時と異なります") from None
    return SealedFiles(manifest, manifest_path.read_bytes(), age_path, manifest_path, recovered=False)


def _check(rendered: pipeline.RenderResult, batch: pipeline.BatchRow) -> None:
    """Counts, totals and (when the renderer hashed; otherwise the sealer checks it) the SHA-256."""
    if rendered.sha256 is not None and rendered.sha256 != batch.approved_sha256:
        raise ApprovalMismatch("SHA-256 が承認時と異なります")
    if (rendered.record_count, rendered.total_yen) != (batch.record_count, batch.total_yen):
        raise ApprovalMismatch("件数・合計金額が起案と異なります")


def _adoptable(age_path: Path, manifest_path: Path, signing_key, code: str, batch: pipeline.BatchRow):
    """(manifest, signed bytes) of a complete sealed file of exactly this approved batch, else None."""
    if not (age_path.exists() and manifest_path.exists()):
        return None
    try:
        signed = manifest_path.read_bytes()
        manifest = sealing.verify_manifest(signed, signing_key.public_key())
    except (OSError, sealing.ManifestError):
        return None
    if (
        manifest.municipality_code != code
        or manifest.batch_id != str(batch.batch_id)
        or manifest.approved_sha256 != batch.approved_sha256
        or manifest.plaintext_sha256 != batch.approved_sha256
        or manifest.transfer_date != batch.transfer_date
        or (manifest.record_count, manifest.total_yen) != (batch.record_count, batch.total_yen)
    ):
        return None
    digest, size = hashlib.sha256(), 0
    with open(age_path, "rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    if (digest.hexdigest(), size) != (manifest.ciphertext_sha256, manifest.ciphertext_size):
        return None
    return manifest, signed


async def mark_released(
    conn: asyncpg.Connection,
    code: str,
    batch: pipeline.BatchRow,
    sealed: SealedFiles,
    released_by: int,
) -> None:
    """Step 4, inside the caller's transaction. The payments need no write: render_and_seal, in this
    transaction and under the batch's lock, found exactly the approved rows (count, total, SHA-256)."""
    m = sealed.manifest
    status = await conn.execute(
        MARK_BATCH_RELEASED, code, batch.batch_id, m.plaintext_sha256, m.ciphertext_sha256, m.file_name
    )
    if status != "UPDATE 1":
        raise ApprovalMismatch("バッチの状態が変わりました")
    await conn.execute(
        RECORD_RELEASE,
        code,
        batch.batch_id,
        released_by,
        m.file_name,
        m.plaintext_sha256,
        m.ciphertext_sha256,
        sealed.signed_manifest,
        sealed.recovered,
    )


# What may cut a release off from the database (connection_lost then tells whether it did).
_INTERRUPTED: tuple[type[BaseException], ...] = (*DATABASE_UNAVAILABLE, asyncpg.InterfaceError)


async def release_batch(
    db, settings, code: str, batch_id: int, released_by: int | None = None, progress=None
) -> sealing.Manifest:
    """Release an approved batch (see the module docstring); returns the signed manifest's content.

    `db` is a pool (this opens and commits its own transaction) or a connection: inside the caller's
    tenant_transaction it joins that transaction (the caller commits), otherwise it opens one.
    `released_by` defaults to the approver."""
    try:
        if isinstance(db, asyncpg.Pool):
            async with tenant_transaction(db, code) as conn:
                return await _release(conn, settings, code, batch_id, released_by, progress)
        if db.is_in_transaction():
            return await _release(db, settings, code, batch_id, released_by, progress)
        async with tenant_transaction(db, code):
            return await _release(db, settings, code, batch_id, released_by, progress)
    except _INTERRUPTED as exc:
        if not connection_lost(exc):
            raise
        # Before the commit nothing is recorded; a file already renamed into place is adopted by the re-run.
        log.error(
            "release of batch %s of %s interrupted: database unavailable (%s)", batch_id, code, type(exc).__name__
        )
        raise DatabaseUnavailable() from exc


async def _release(conn, settings, code, batch_id, released_by, progress=None) -> sealing.Manifest:
    try:
        async with conn.transaction():  # a savepoint: NOWAIT's refusal leaves the caller's transaction usable
            if await conn.fetchval(LOCK_NOWAIT, code, batch_id) is None:
                raise pipeline.BatchNotFound()
    except asyncpg.LockNotAvailableError:
        raise ReleaseInProgress() from None
    batch = await pipeline.load_batch(conn, code, batch_id)
    if batch.status == "released":
        raise BatchAlreadyReleased()
    if batch.status != "approved":
        raise BatchNotApproved(batch.status)
    try:
        sealed = await render_and_seal(conn, settings, code, batch, progress=progress)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        log.error("release of batch %s of %s: the outbox is full (%s)", batch_id, code, errno.errorcode[exc.errno])
        raise OutboxFull() from exc
    releaser = released_by or batch.approved_by
    assert releaser is not None, "an approved batch has its approver (CHECK payout_batches_approved_has_hash)"
    await mark_released(conn, code, batch, sealed, releaser)
    log.info(
        "batch %s of %s released: %d records, file %s", batch_id, code, batch.record_count, sealed.manifest.file_name
    )
    return sealed.manifest


__all__ = [
    "ApprovalMismatch",
    "BatchAlreadyReleased",
    "BatchNotApproved",
    "DatabaseUnavailable",
    "OutboxFull",
    "ReleaseError",
    "ReleaseInProgress",
    "SealedFiles",
    "file_stem",
    "mark_released",
    "outbox_dir",
    "release_batch",
    "render_and_seal",
]

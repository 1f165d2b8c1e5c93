"""Delivering released bank files from PostgreSQL, so that a file outlives the node that sealed it (issue 17,
fault 6; migration 0027).

Without a delivery stage (KYUFU_BANK_DROP_DIR unset: one machine, local development) the bank's transport
picks the sealed pair up from the outbox directory, as before. With several worker nodes each one's outbox
is its own disk, and a node may die after the release committed and before the bank fetched the file.
Then:

1. `keep`, in the release's transaction (payouts.batches.perform_release, right after the release marks
   the batch released): the sealed file just written is copied into released_files / released_file_parts
   with the signed manifest, checked against the manifest's SHA-256 and size, and an outbox row asks for
   `deliver_file`. The commit is acknowledged once the synchronous standby has it (Patroni), so the file
   now survives any one machine.
2. `deliver` (job `deliver_file`, any worker): under the file row's lock, writes the exact bytes that were
   signed to `<drop>/<code>/` (temp file, fsync, rename; the manifest last, since the bank's verify needs
   both), records delivered_at and marks its outbox row done. An identical file already there is left as it
   is (a delivery that crashed after the rename); a different one is never overwritten (DeliveryConflict).
   A drop directory that cannot be written raises OSError: the job is retried and the sweeper re-derives it.

Why a drop directory and not SFTP here: the bank's side of the transfer (SFTP, 全銀TX, an LGWAN relay) is
the bank's and the municipality's contract; what kyufu must guarantee is that the bytes it signed reach
whatever that endpoint is, once and unchanged, from any surviving node. The directory stands for the
endpoint's inbox; an SFTP client would replace `_write_atomically` and nothing else (docs/cluster.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path

import asyncpg

from app import outbox
from app.errors import DomainError
from app.tenancy.transaction import tenant_transaction
from payouts import sealing

log = logging.getLogger("kyufu.payouts.delivery")

DELIVER_JOB = "deliver_file"
# Parts of the kept ciphertext: bounded memory on both sides for a file of a few hundred MB.
PART_BYTES = 8 * 1024 * 1024

KEEP_FILE = """
INSERT INTO released_files (municipality_code, batch_id, file_name, ciphertext_sha256, ciphertext_bytes,
                            signed_manifest)
VALUES ($1, $2, $3, $4, $5, $6)
"""
KEEP_PART = "INSERT INTO released_file_parts (municipality_code, batch_id, part, bytes) VALUES ($1, $2, $3, $4)"
# FOR UPDATE: two workers handed the same job (a sweeper's re-enqueue racing a slow run) deliver one at a time.
LOCK_FILE = """
SELECT file_name, ciphertext_sha256, ciphertext_bytes, signed_manifest, delivered_at
FROM released_files WHERE municipality_code = $1 AND batch_id = $2
FOR UPDATE
"""
PART = "SELECT bytes FROM released_file_parts WHERE municipality_code = $1 AND batch_id = $2 AND part = $3"
MARK_DELIVERED = """
UPDATE released_files SET delivered_at = now()
WHERE municipality_code = $1 AND batch_id = $2 AND delivered_at IS NULL
"""


class DeliveryConflict(DomainError):
    """The bank's drop directory already holds a different file under the released file's name: nothing is
    overwritten (the bank may have read it); an operator must look."""

    def __init__(self, file_name: str) -> None:
        super().__init__(f"銀行の受け渡し先に同じ名前の別のファイルがあります（{file_name}）。上書きしません。")


class KeptFileMismatch(DomainError):
    """The sealed file on the worker's disk is not the one its signed manifest describes."""

    def __init__(self) -> None:
        super().__init__("送信ファイルが署名済みの内容と一致しないため、保存できませんでした。")


def enabled(settings) -> bool:
    return settings.bank_drop_dir is not None


def deliver_job_id(code: str, batch_id: int) -> str:
    return outbox.job_id("deliver", code, batch_id)


def _read_parts(path: Path) -> list[bytes]:
    with open(path, "rb") as fh:
        return list(iter(lambda: fh.read(PART_BYTES), b""))


async def keep(conn: asyncpg.Connection, settings, code: str, batch_id: int, manifest: sealing.Manifest) -> None:
    """In the release's transaction: keep the sealed pair in PostgreSQL and ask for its delivery. A no-op
    without a delivery stage."""
    if not enabled(settings):
        return
    directory = Path(settings.outbox_path) / code
    age_path = directory / (manifest.file_name + sealing.AGE_SUFFIX)
    signed = await asyncio.to_thread((directory / (manifest.file_name + sealing.MANIFEST_SUFFIX)).read_bytes)
    await conn.execute(
        KEEP_FILE, code, batch_id, manifest.file_name, manifest.ciphertext_sha256, manifest.ciphertext_size, signed
    )
    digest, size, part = hashlib.sha256(), 0, 0
    with open(age_path, "rb") as fh:
        while chunk := await asyncio.to_thread(fh.read, PART_BYTES):
            digest.update(chunk)
            size += len(chunk)
            await conn.execute(KEEP_PART, code, batch_id, part, chunk)
            part += 1
    if digest.hexdigest() != manifest.ciphertext_sha256 or size != manifest.ciphertext_size:
        raise KeptFileMismatch()
    await outbox.add(conn, code, DELIVER_JOB, deliver_job_id(code, batch_id), code, batch_id)


def _fsync(fh) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _rename_durably(tmp: Path, target: Path) -> None:
    os.rename(tmp, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def _write_atomically(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            _fsync(fh)
        _rename_durably(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


async def _write_parts(conn: asyncpg.Connection, code: str, batch_id: int, row, target: Path) -> None:
    """The kept ciphertext into `target`, one part in memory at a time, checked against its SHA-256 before
    the rename makes it visible."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            digest = hashlib.sha256()
            for part in range((row["ciphertext_bytes"] + PART_BYTES - 1) // PART_BYTES):
                chunk = await conn.fetchval(PART, code, batch_id, part)
                digest.update(chunk)
                await asyncio.to_thread(fh.write, chunk)
            if digest.hexdigest() != row["ciphertext_sha256"]:
                raise KeptFileMismatch()
            await asyncio.to_thread(_fsync, fh)
        await asyncio.to_thread(_rename_durably, tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(PART_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


async def deliver(pool: asyncpg.Pool, settings, code: str, batch_id: int) -> str:
    """Job `deliver_file`: put a kept file into the bank's drop directory, once. Returns the outcome."""
    job = deliver_job_id(code, batch_id)
    async with tenant_transaction(pool, code) as conn:
        row = await conn.fetchrow(LOCK_FILE, code, batch_id)
        if row is None or row["delivered_at"] is not None:
            await outbox.mark_done(conn, code, job)
            return "already delivered" if row is not None else "nothing kept"
        drop = Path(settings.bank_drop_dir) / code
        await asyncio.to_thread(drop.mkdir, parents=True, exist_ok=True, mode=0o700)
        age_target = drop / (row["file_name"] + sealing.AGE_SUFFIX)
        manifest_target = drop / (row["file_name"] + sealing.MANIFEST_SUFFIX)
        if age_target.exists():
            if await asyncio.to_thread(_sha256_of, age_target) != row["ciphertext_sha256"]:
                raise DeliveryConflict(age_target.name)
        else:
            await _write_parts(conn, code, batch_id, row, age_target)
        if manifest_target.exists():
            if manifest_target.read_bytes() != bytes(row["signed_manifest"]):
                raise DeliveryConflict(manifest_target.name)
        else:
            await asyncio.to_thread(_write_atomically, manifest_target, bytes(row["signed_manifest"]))
        await conn.execute(MARK_DELIVERED, code, batch_id)
        await outbox.mark_done(conn, code, job)
    log.info("released file of batch %s of %s delivered to the bank's drop directory", batch_id, code)
    return f"delivered {row['file_name']}"

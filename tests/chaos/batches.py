"""An approved payout batch of n payments in the chaos cluster, built with array statements (the one-row-
at-a-time builder of tests/payouts/_batches.py would take minutes for the sizes a fault needs)."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import asyncpg

from app.tenancy.municipalities import load_field_cipher, load_signing_key
from app.tenancy.transaction import tenant_transaction
from payouts import bank, pipeline, sealing, settings_store
from payouts.payments import seal_bank
from tests.payouts._batches import ROWS, TRANSFER_DATE, Batch, approve_batch, bank_settings

# The batch's drafter and approver, as the rows its columns point at: no roles (a role needs a grant
# confirmed by a second admin, migration 0014) and no credentials; nobody signs in as them.
INSERT_STAFF = """
INSERT INTO staff_users (municipality_code, login, display_name, roles, password_hash)
VALUES ($1, $2, 'カオス', '{}', 'x') RETURNING staff_id
"""
INSERT_SNAPSHOT = """
INSERT INTO registry_snapshots (municipality_code, kind, file_sha256, status)
VALUES ($1, 'residents', $2, 'published') RETURNING snapshot_id
"""
INSERT_PROGRAM = """
INSERT INTO programs (municipality_code, name, base_date, unit, amount_yen, payment_mode)
VALUES ($1, 'カオス給付金', '2026-01-01', 'household', 100000, 'application') RETURNING program_id
"""
INSERT_BATCH = """
INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by, record_count, total_yen,
                            status)
VALUES ($1, $2, $3, $4, $5, $6, 'preparing') RETURNING batch_id
"""
INSERT_ENTITLEMENTS = """
INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no, head_resident_code,
                          members_counted, amount_yen, rule)
SELECT $1, $2, $3, h, '12345678901', 1, y, 'chaos' FROM unnest($4::text[], $5::bigint[]) AS t(h, y)
RETURNING entitlement_id, household_no
"""
PREPARED = "UPDATE payout_batches SET status = 'draft' WHERE municipality_code = $1 AND batch_id = $2"
RELEASE_STATE = """
SELECT b.status, b.approved_sha256, b.released_sha256,
       (SELECT count(*) FROM payout_releases r WHERE r.municipality_code = b.municipality_code
                                                 AND r.batch_id = b.batch_id) AS releases
FROM payout_batches b WHERE b.municipality_code = $1 AND b.batch_id = $2
"""
NEXT_PAYMENT_IDS = "SELECT nextval('payments_payment_id_seq') FROM generate_series(1, $1)"
INSERT_PAYMENTS = """
INSERT INTO payments (municipality_code, payment_id, entitlement_id, amount_yen, bank_code, branch_code,
                      account_type, bank_enc, status, batch_id) OVERRIDING SYSTEM VALUE
SELECT $1, p, e, y, b, br, k, enc, 'in_batch', $2
FROM unnest($3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::int[], $9::bytea[])
     AS t(p, e, y, b, br, k, enc)
"""


def amount_yen(i: int) -> int:
    return 10_000 + (i % 7) * 1_000


async def make_approved_batch(owner_url: str, settings, code: str, n: int, scratch: Path) -> Batch:
    """n payments (each its own entitlement) in one batch, drafted and approved by two staff members;
    the bank's age identity is written under `scratch`."""
    identity = scratch / f"bank-{code}.txt"
    recipient = bank.write_identity_file(identity)
    conn = await asyncpg.connect(owner_url)
    try:
        async with tenant_transaction(conn, code) as tx:
            await settings_store.put_bank_settings(
                tx, code, settings_store.StoredBankSettings(bank=bank_settings(), age_recipients=(recipient,))
            )
            drafter, approver = [
                await tx.fetchval(INSERT_STAFF, code, f"{role}-{secrets.token_hex(3)}")
                for role in ("drafter", "approver")
            ]
            snapshot = await tx.fetchval(INSERT_SNAPSHOT, code, secrets.token_hex(32))
            program = await tx.fetchval(INSERT_PROGRAM, code)
            amounts = [amount_yen(i) for i in range(n)]
            batch_id = await tx.fetchval(INSERT_BATCH, code, program, TRANSFER_DATE, drafter, n, sum(amounts))
            households = [f"c{i}" for i in range(n)]
            ents = {
                r["household_no"]: r["entitlement_id"]
                for r in await tx.fetch(INSERT_ENTITLEMENTS, code, program, snapshot, households, amounts)
            }
            ids = [r[0] for r in await tx.fetch(NEXT_PAYMENT_IDS, n)]
            cipher = await load_field_cipher(tx, settings.master_key_bytes, code)
            rows = [ROWS[i % len(ROWS)] for i in range(n)]
            await tx.execute(
                INSERT_PAYMENTS,
                code,
                batch_id,
                ids,
                [ents[h] for h in households],
                amounts,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                [seal_bank(cipher, pid, f"{1_000_000 + i:07d}", r[4]) for i, (pid, r) in enumerate(zip(ids, rows))],
            )
            await tx.execute(PREPARED, code, batch_id)  # payments join a batch only while it is preparing (0018)
        batch = Batch(code, batch_id, ids, identity, drafter, approver)
        await approve_batch(conn, settings, batch)
    finally:
        await conn.close()
    return batch


async def release_state(pool, code: str, batch_id: int) -> dict:
    """The batch's status and hashes, and how many releases payout_releases recorded for it."""
    async with tenant_transaction(pool, code, readonly=True) as conn:
        return dict(await conn.fetchrow(RELEASE_STATE, code, batch_id))


async def reference_file(pool, settings, code: str, batch_id: int) -> bytes:
    """The batch's plaintext file as the staff console renders it (the bytes the approver approved)."""
    pieces: list[bytes] = []
    await pipeline.render_batch(pool, settings, code, batch_id, pieces.append)
    return b"".join(pieces)


async def approved_release(cluster, code: str, n: int) -> tuple[Batch, bytes, str, tuple[str, ...]]:
    """An approved batch of n payments in the chaos cluster: (batch, its reference plaintext — checked to
    hash to the approved SHA-256 —, that SHA-256, the `kyufu` arguments that release it)."""
    settings = cluster.settings
    batch = await make_approved_batch(settings.database_owner_url, settings, code, n, cluster.root)
    reference = await reference_file(cluster.pool, settings, code, batch.batch_id)
    approved = (await release_state(cluster.pool, code, batch.batch_id))["approved_sha256"]
    assert hashlib.sha256(reference).hexdigest() == approved
    return batch, reference, approved, ("payouts", "release", "--municipality", code, "--batch", str(batch.batch_id))


async def as_the_bank(owner_url: str, settings, batch: Batch, outbox: Path, scratch: Path) -> tuple[bytes, str]:
    """What the bank does with the released pair (payouts.bank): verify the signed manifest with the
    municipality's public key and the ciphertext against it, decrypt. Returns (plaintext, file name)."""
    conn = await asyncpg.connect(owner_url)
    try:
        async with tenant_transaction(conn, batch.code) as tx:
            key = await load_signing_key(tx, settings.master_key_bytes, batch.code)
    finally:
        await conn.close()
    public = scratch / "municipality.pub.pem"
    public.write_bytes(sealing.public_key_pem(key))
    (age_file,) = outbox.glob("*" + sealing.AGE_SUFFIX)
    manifest = age_file.with_name(age_file.name.removesuffix(sealing.AGE_SUFFIX) + sealing.MANIFEST_SUFFIX)
    report = bank.verify(age_file, manifest, public, batch.identity_path)
    plain = bank.decrypt(age_file, batch.identity_path, scratch / "plain.txt")
    try:
        return plain.read_bytes(), report.manifest.file_name
    finally:
        plain.unlink()

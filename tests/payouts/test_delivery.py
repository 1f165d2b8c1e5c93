"""Released files kept in PostgreSQL and delivered to the bank's drop directory (payouts/delivery.py,
migration 0027): the exact signed bytes, once, never over a different file; nothing kept without a
delivery stage. The whole fault (the sealing node lost) runs in tests/cluster/test_delivery.py."""

from __future__ import annotations

import hashlib

import pytest

from app.tenancy.transaction import tenant_transaction
from payouts import delivery, release, sealing
from tests.payouts._batches import make_batch

KEPT = "SELECT delivered_at, ciphertext_bytes FROM released_files WHERE municipality_code = $1 AND batch_id = $2"
PARTS = "SELECT count(*) FROM released_file_parts WHERE municipality_code = $1 AND batch_id = $2"
JOB_DONE = "SELECT done_at IS NOT NULL FROM outbox WHERE municipality_code = $1 AND job_id = $2"


async def _release_and_keep(app_pool, settings, code, batch):
    """What perform_release does: the release and the keeping in one transaction."""
    async with tenant_transaction(app_pool, code) as conn:
        manifest = await release.release_batch(conn, settings, code, batch.batch_id, batch.approver)
        await delivery.keep(conn, settings, code, batch.batch_id, manifest)
    return manifest


@pytest.fixture
def drop_settings(settings, tmp_path):
    return settings.model_copy(update={"bank_drop_dir": tmp_path / "bank-drop"})


async def test_kept_file_is_delivered_byte_for_byte_once(
    owner_conn, app_pool, drop_settings, municipality, tmp_path, monkeypatch
):
    monkeypatch.setattr(delivery, "PART_BYTES", 256)  # several parts even for a small batch
    code = await municipality()
    batch = await make_batch(owner_conn, drop_settings, code, tmp_path)
    manifest = await _release_and_keep(app_pool, drop_settings, code, batch)
    sealed = (drop_settings.outbox_path / code / (manifest.file_name + sealing.AGE_SUFFIX)).read_bytes()
    signed = (drop_settings.outbox_path / code / (manifest.file_name + sealing.MANIFEST_SUFFIX)).read_bytes()
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        kept = await conn.fetchrow(KEPT, code, batch.batch_id)
        assert kept["delivered_at"] is None and kept["ciphertext_bytes"] == len(sealed)
        assert await conn.fetchval(PARTS, code, batch.batch_id) == -(-len(sealed) // 256) > 1
        assert await conn.fetchval(JOB_DONE, code, delivery.deliver_job_id(code, batch.batch_id)) is False

    # The sealing node's disk is gone: delivery needs only PostgreSQL.
    for path in (drop_settings.outbox_path / code).iterdir():
        path.unlink()
    outcome = await delivery.deliver(app_pool, drop_settings, code, batch.batch_id)
    drop = drop_settings.bank_drop_dir / code
    assert outcome == f"delivered {manifest.file_name}"
    assert (drop / (manifest.file_name + sealing.AGE_SUFFIX)).read_bytes() == sealed
    assert (drop / (manifest.file_name + sealing.MANIFEST_SUFFIX)).read_bytes() == signed
    assert hashlib.sha256(sealed).hexdigest() == manifest.ciphertext_sha256
    assert sorted(p.name for p in drop.iterdir()) == [
        manifest.file_name + sealing.AGE_SUFFIX,
        manifest.file_name + sealing.MANIFEST_SUFFIX,
    ]  # no temp file left
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        assert (await conn.fetchrow(KEPT, code, batch.batch_id))["delivered_at"] is not None
        assert await conn.fetchval(JOB_DONE, code, delivery.deliver_job_id(code, batch.batch_id)) is True
    assert await delivery.deliver(app_pool, drop_settings, code, batch.batch_id) == "already delivered"


async def test_a_different_file_under_the_name_is_never_overwritten(
    owner_conn, app_pool, drop_settings, municipality, tmp_path
):
    code = await municipality()
    batch = await make_batch(owner_conn, drop_settings, code, tmp_path)
    manifest = await _release_and_keep(app_pool, drop_settings, code, batch)
    drop = drop_settings.bank_drop_dir / code
    drop.mkdir(parents=True)
    other = drop / (manifest.file_name + sealing.AGE_SUFFIX)
    other.write_bytes(b"not the signed file")
    with pytest.raises(delivery.DeliveryConflict) as caught:
        await delivery.deliver(app_pool, drop_settings, code, batch.batch_id)
    assert "上書きしません" in str(caught.value)
    assert other.read_bytes() == b"not the signed file"
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        assert (await conn.fetchrow(KEPT, code, batch.batch_id))["delivered_at"] is None


async def test_an_unreachable_drop_directory_leaves_the_file_to_deliver_later(
    owner_conn, app_pool, drop_settings, municipality, tmp_path
):
    code = await municipality()
    batch = await make_batch(owner_conn, drop_settings, code, tmp_path)
    await _release_and_keep(app_pool, drop_settings, code, batch)
    drop_settings.bank_drop_dir.mkdir()
    (drop_settings.bank_drop_dir / code).write_text("endpoint down")
    with pytest.raises(OSError):
        await delivery.deliver(app_pool, drop_settings, code, batch.batch_id)
    (drop_settings.bank_drop_dir / code).unlink()
    assert (await delivery.deliver(app_pool, drop_settings, code, batch.batch_id)).startswith("delivered")


async def test_nothing_is_kept_without_a_delivery_stage(owner_conn, app_pool, settings, municipality, tmp_path):
    assert settings.bank_drop_dir is None
    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path)
    await _release_and_keep(app_pool, settings, code, batch)
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        assert await conn.fetchrow(KEPT, code, batch.batch_id) is None

"""payouts.release: regenerate, check against the approval, seal for the bank, record — once."""

from __future__ import annotations

import subprocess

import pytest

from app.tenancy.municipalities import load_signing_key
from app.tenancy.transaction import tenant_transaction
from payouts import release, sealing
from tests.conftest import run_cli
from tests.payouts._batches import expected_file, make_batch


async def _public_key_file(owner_conn, settings, code, tmp_path):
    async with tenant_transaction(owner_conn, code) as conn:
        key = await load_signing_key(conn, settings.master_key_bytes, code)
    path = tmp_path / f"{code}.pub.pem"
    path.write_bytes(sealing.public_key_pem(key))
    return path


async def test_release_seals_for_the_bank_and_records_once(
    owner_conn, app_pool, settings, municipality, tmp_path, subprocess_env
):
    """age -d with the bank's identity gives the approved bytes; kyufu bank verify accepts; a second release
    is refused."""
    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path)
    manifest = await release.release_batch(app_pool, settings, code, batch.batch_id, batch.approver)

    directory = settings.outbox_path / code
    age_file = directory / (manifest.file_name + sealing.AGE_SUFFIX)
    manifest_file = directory / (manifest.file_name + sealing.MANIFEST_SUFFIX)
    plain = subprocess.run(
        ["age", "-d", "-i", str(batch.identity_path), str(age_file)], capture_output=True, check=True
    ).stdout
    assert plain == expected_file(batch)
    assert manifest.record_count == 4 and manifest.plaintext_sha256 == manifest.approved_sha256

    public = await _public_key_file(owner_conn, settings, code, tmp_path)
    ok = run_cli(
        subprocess_env,
        "bank",
        "verify",
        str(age_file),
        str(manifest_file),
        "--public-key",
        str(public),
        "--identity",
        str(batch.identity_path),
    )
    assert ok.returncode == 0, ok.stderr
    tampered = tmp_path / "tampered.age"
    data = bytearray(age_file.read_bytes())
    data[-20] ^= 1
    tampered.write_bytes(bytes(data))
    bad = run_cli(subprocess_env, "bank", "verify", str(tampered), str(manifest_file), "--public-key", str(public))
    assert bad.returncode == 2 and "ciphertext_tampered" in bad.stderr

    async with tenant_transaction(owner_conn, code) as conn:
        row = await conn.fetchrow(
            "SELECT status, released_sha256, ciphertext_sha256, file_name FROM payout_batches"
            " WHERE municipality_code = $1 AND batch_id = $2",
            code,
            batch.batch_id,
        )
        statuses = await conn.fetch(
            "SELECT DISTINCT status FROM payments WHERE municipality_code = $1 AND batch_id = $2", code, batch.batch_id
        )
    assert (row["status"], row["released_sha256"], row["ciphertext_sha256"], row["file_name"]) == (
        "released",
        manifest.approved_sha256,
        manifest.ciphertext_sha256,
        manifest.file_name,
    )
    # Release writes the batch row only; its payments stay 'in_batch' (0009: the batch says they were sent).
    assert [r["status"] for r in statuses] == ["in_batch"]
    before = age_file.read_bytes()
    with pytest.raises(release.BatchAlreadyReleased):
        await release.release_batch(app_pool, settings, code, batch.batch_id, batch.approver)
    assert age_file.read_bytes() == before


async def _assert_nothing_released(owner_conn, settings, code, batch) -> None:
    """No file in the municipality's outbox and the batch still only approved."""
    directory = settings.outbox_path / code
    assert not directory.exists() or not any(directory.iterdir())
    async with tenant_transaction(owner_conn, code) as conn:
        assert (
            await conn.fetchval(
                "SELECT status FROM payout_batches WHERE municipality_code = $1 AND batch_id = $2", code, batch.batch_id
            )
            == "approved"
        )


async def test_changed_amount_after_approval_is_refused(owner_conn, app_pool, settings, municipality, tmp_path):
    """The regenerated file no longer hashes to the approved value: nothing is released or written."""
    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path)
    async with tenant_transaction(owner_conn, code) as conn:
        await conn.execute(
            # Down, not up: above the entitlement the database refuses the change itself (migration 0018).
            "UPDATE payments SET amount_yen = amount_yen - 1 WHERE municipality_code = $1 AND payment_id = $2",
            code,
            batch.payment_ids[0],
        )
    with pytest.raises(release.ApprovalMismatch, match="合計金額"):
        await release.release_batch(app_pool, settings, code, batch.batch_id, batch.approver)
    await _assert_nothing_released(owner_conn, settings, code, batch)


async def test_changed_branch_after_approval_is_refused_by_the_hash(
    owner_conn, app_pool, settings, municipality, tmp_path
):
    """Same count and total, other bytes: only the SHA-256 the sealer takes of what it encrypts can tell.
    (The stage hashes once, in the sealer; the encrypted file must never reach the outbox.)"""
    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path)
    async with tenant_transaction(owner_conn, code) as conn:
        await conn.execute(
            "UPDATE payments SET branch_code = CASE WHEN branch_code = '999' THEN '998' ELSE '999' END"
            " WHERE municipality_code = $1 AND payment_id = $2",
            code,
            batch.payment_ids[0],
        )
    with pytest.raises(release.ApprovalMismatch, match="SHA-256"):
        await release.release_batch(app_pool, settings, code, batch.batch_id, batch.approver)
    await _assert_nothing_released(owner_conn, settings, code, batch)


async def test_draft_cannot_be_released(owner_conn, app_pool, settings, municipality, tmp_path):
    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path, approve=False)
    with pytest.raises(release.BatchNotApproved):
        await release.release_batch(app_pool, settings, code, batch.batch_id, batch.approver)


async def test_crash_before_commit_adopts_the_sealed_file(owner_conn, app_pool, settings, municipality, tmp_path):
    """File written, transaction lost: the re-run adopts the same ciphertext instead of making a second one."""
    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path)
    async with tenant_transaction(app_pool, code) as conn:
        row = await release.pipeline.load_batch(conn, code, batch.batch_id)
        sealed = await release.render_and_seal(conn, settings, code, row)
        # the process "dies" here: mark_released never runs, so the batch stays 'approved'
    first_cipher = sealed.age_path.read_bytes()
    manifest = await release.release_batch(app_pool, settings, code, batch.batch_id, batch.approver)
    assert sealed.age_path.read_bytes() == first_cipher
    assert manifest.ciphertext_sha256 == sealed.manifest.ciphertext_sha256
    async with tenant_transaction(owner_conn, code) as conn:
        assert (
            await conn.fetchval(
                "SELECT recovered FROM payout_releases WHERE municipality_code = $1 AND batch_id = $2",
                code,
                batch.batch_id,
            )
            is True
        )


async def test_lone_ciphertext_from_a_crash_is_replaced(owner_conn, app_pool, settings, municipality, tmp_path):
    """A .age without a valid manifest cannot have been accepted by the bank: it is replaced."""
    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path)
    async with tenant_transaction(owner_conn, code) as conn:
        row = await release.pipeline.load_batch(conn, code, batch.batch_id)
    directory = release.outbox_dir(settings, code)
    stale = directory / (release.file_stem(code, row) + sealing.AGE_SUFFIX)
    stale.write_bytes(b"partial")
    manifest = await release.release_batch(app_pool, settings, code, batch.batch_id, batch.approver)
    assert stale.read_bytes() != b"partial"
    plain = subprocess.run(
        ["age", "-d", "-i", str(batch.identity_path), str(stale)], capture_output=True, check=True
    ).stdout
    assert plain == expected_file(batch) and manifest.record_count == 4

"""payouts.pipeline: the rows of a batch become exactly zengin.generate's bytes, deterministically."""

from __future__ import annotations

import hashlib

import pytest

from app.tenancy.transaction import tenant_transaction
from payouts import pipeline, zengin
from tests.payouts._batches import ROWS, expected_file, make_batch


async def _render(owner_conn, settings, code, batch_id, **kwargs) -> bytes:
    chunks: list[bytes] = []
    async with tenant_transaction(owner_conn, code) as conn:
        result = await pipeline.render_in_transaction(
            conn, settings.master_key_bytes, code, batch_id, chunks.append, **kwargs
        )
    data = b"".join(chunks)
    assert result.sha256 == hashlib.sha256(data).hexdigest() and result.size_bytes == len(data)
    return data


async def test_render_equals_reference_generator(owner_conn, settings, municipality, tmp_path):
    """The stage's fast path writes byte for byte what zengin.generate writes for the same payments."""
    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path, approve=False)
    data = await _render(owner_conn, settings, code, batch.batch_id)
    assert data == expected_file(batch)
    parsed = zengin.parse(data)
    assert [p.reference for p in parsed.payments] == batch.payment_ids
    assert parsed.total_yen == sum(r[5] for r in ROWS)


async def test_generation_progress_is_on_metrics(owner_conn, settings, municipality, tmp_path):
    """/metrics shows how far the batch being generated is (issue 7: batch generation progress), labelled
    by municipality only (issue 12: no batch ids in metrics)."""
    from prometheus_client import REGISTRY

    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path, approve=False)
    seen = []
    await _render(
        owner_conn,
        settings,
        code,
        batch.batch_id,
        progress=lambda done, total: seen.append(
            REGISTRY.get_sample_value("kyufu_batch_generation_records", {"municipality": code})
        ),
    )
    final = REGISTRY.get_sample_value("kyufu_batch_generation_records", {"municipality": code})
    assert seen and seen[-1] == final == len(ROWS)


async def test_render_is_deterministic_and_pool_matches_inline(owner_conn, settings, municipality, tmp_path):
    """Same batch twice → identical bytes; the process pool with many tiny chunks gives the same bytes."""
    code = await municipality()
    rows = [("0005", f"{i % 1000:03d}", 1, f"{i:07d}", "ﾔﾏﾀﾞ ﾀﾛｳ", 1000 + i) for i in range(1, 301)]
    batch = await make_batch(owner_conn, settings, code, tmp_path, rows, approve=False, reference_field="edi")
    first = await _render(owner_conn, settings, code, batch.batch_id, parallel=False)
    second = await _render(owner_conn, settings, code, batch.batch_id, parallel=False)
    pooled = await _render(owner_conn, settings, code, batch.batch_id, parallel=True, chunk_bytes=2000)
    assert first == second == pooled == expected_file(batch, rows, reference_field="edi")


async def test_short_account_number_uses_reference_path(owner_conn, settings, municipality, tmp_path):
    """A valid 1-6 digit account number (not the fast path's shape) is zero-filled like zengin does."""
    code = await municipality()
    rows = [("0005", "001", 1, "123", "ｱｲｳ", 5)] + ROWS
    batch = await make_batch(owner_conn, settings, code, tmp_path, rows, approve=False, separator="none")
    data = await _render(owner_conn, settings, code, batch.batch_id)
    assert data == expected_file(batch, rows, separator="none")


async def test_unrepresentable_payments_stop_the_batch_with_every_reason(owner_conn, settings, municipality, tmp_path):
    """Kanji in a name and a too-long name: the report lists both payments and why; nothing is written."""
    code = await municipality()
    rows = [ROWS[0], ("0005", "001", 1, "7654329", "山田太郎", 10), ROWS[1], ("0005", "001", 1, "1", "ｱ" * 31, 10)]
    batch = await make_batch(owner_conn, settings, code, tmp_path, rows, approve=False)
    received: list[bytes] = []
    with pytest.raises(zengin.InvalidPayments) as caught:
        async with tenant_transaction(owner_conn, code) as conn:
            await pipeline.render_in_transaction(conn, settings.master_key_bytes, code, batch.batch_id, received.append)
    problems = caught.value.problems
    assert {(p.reference, p.field, p.reason) for p in problems} == {
        (batch.payment_ids[1], "holder_kana", "charset"),
        (batch.payment_ids[3], "holder_kana", "too_long"),
    }
    assert caught.value.payment_count == 2
    assert "山田" not in str(caught.value) and all("山田" not in p.message for p in problems)
    assert b"".join(received).count(b"\r\n") <= 1  # at most the header went out; never a data record


async def test_tampered_ciphertext_is_reported_not_rendered(owner_conn, settings, municipality, tmp_path):
    """A ciphertext moved to another row fails authentication and is reported by payment id."""
    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path, approve=False)
    a, b = batch.payment_ids[:2]
    async with tenant_transaction(owner_conn, code) as conn:
        await conn.execute(
            "UPDATE payments SET bank_enc = (SELECT bank_enc FROM payments"
            " WHERE municipality_code = $1 AND payment_id = $3) WHERE municipality_code = $1 AND payment_id = $2",
            code,
            a,
            b,
        )
    with pytest.raises(zengin.InvalidPayments) as caught:
        await pipeline.render_batch(owner_conn, settings, code, batch.batch_id)
    assert [(p.reference, p.field, p.reason) for p in caught.value.problems] == [(a, "bank", "decrypt")]


async def test_missing_bank_settings_and_unknown_batch_are_clear(owner_conn, settings, municipality):
    from payouts.settings_store import BankSettingsMissing

    code = await municipality()
    with pytest.raises(pipeline.BatchNotFound):
        await pipeline.render_batch(owner_conn, settings, code, 999_999_999)
    async with tenant_transaction(owner_conn, code) as conn:
        staff = await conn.fetchval(
            "INSERT INTO staff_users (municipality_code, login, display_name, roles, password_hash)"
            " VALUES ($1, 'drafter-x', 'x', '{}', 'x') RETURNING staff_id",
            code,
        )
        program = await conn.fetchval(
            "INSERT INTO programs (municipality_code, name, base_date, unit, amount_yen, payment_mode)"
            " VALUES ($1, 'p', '2026-01-01', 'household', 1, 'application') RETURNING program_id",
            code,
        )
        batch_id = await conn.fetchval(
            "INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by, record_count,"
            " total_yen)"
            " VALUES ($1, $2, '2026-12-01', $3, 0, 0) RETURNING batch_id",
            code,
            program,
            staff,
        )
    with pytest.raises(BankSettingsMissing, match="金融機関設定"):
        await pipeline.render_batch(owner_conn, settings, code, batch_id)


async def test_bank_details_from_before_0009_are_refused_by_id_until_upgraded(
    owner_conn, settings, municipality, tmp_path
):
    """A payment still holding two ciphertexts (written before 0009) is reported, not rendered; after
    `kyufu payouts upgrade-bank-layout` the same approved bytes come out (the plaintext did not change)."""
    from app.tenancy.municipalities import load_field_cipher
    from payouts import cli

    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path, approve=False)
    a = batch.payment_ids[0]
    async with tenant_transaction(owner_conn, code) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        await conn.execute(
            "UPDATE payments SET bank_enc = NULL, account_number_enc = $3, holder_kana_enc = $4"
            " WHERE municipality_code = $1 AND payment_id = $2",
            code,
            a,
            cipher.encrypt("payments", "account_number", a, ROWS[0][3]),
            cipher.encrypt("payments", "holder_kana", a, ROWS[0][4]),
        )
    with pytest.raises(zengin.InvalidPayments) as caught:
        await pipeline.render_batch(owner_conn, settings, code, batch.batch_id)
    assert [(p.reference, p.field, p.reason) for p in caught.value.problems] == [(a, "bank", "decrypt")]
    assert "kyufu payouts upgrade-bank-layout" in caught.value.problems[0].message  # the command exists
    # What `kyufu payouts upgrade-bank-layout --municipality CODE` runs, committed per 10,000 payments.
    assert await cli.upgrade_bank_layout(owner_conn, settings, code) == 1
    assert await cli.upgrade_bank_layout(owner_conn, settings, code) == 0
    assert await _render(owner_conn, settings, code, batch.batch_id) == expected_file(batch)


def test_fast_voicing_check_agrees_with_the_kana_module():
    """_chunk's mark-first regex flags exactly the strings kana._BAD_VOICING flags."""
    import random

    from payouts import _chunk, kana

    rng = random.Random(7)
    alphabet = "ｱｶｳﾊﾎﾀﾞﾟ \x00ｦﾝ"
    for _ in range(50_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        assert (_chunk._BAD_VOICING_FAST.search(text) is None) == (kana._BAD_VOICING.search(text) is None), text


def test_misaligned_plaintexts_are_split_row_by_row():
    """Plaintexts whose separators would cancel out across rows (one with none, one with two) are not
    paired up by the chunk-wide split: the one without a separator is refused by payment id."""
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from devtools import payouts_bench as bench
    from payouts import _chunk

    key, code = os.urandom(32), "011002"
    aead, header = AESGCM(key), bytes([1]) + (1).to_bytes(4, "big")
    aad = f"{code}|payments|bank|".encode()
    plaintexts = [b"1234567", "7654321\x001111111\x00ﾀﾛｳ".encode()]
    rows = "".join(
        f"{pid}\t0005\t001\t1\t\\\\x{bench._encrypt_row(aead, header, aad, pid, pt).hex()}\t1000\n"
        for pid, pt in zip((1, 2), plaintexts)
    )
    settings = zengin.BankSettings(
        requester_code="1234567890",
        requester_name_kana="ｼ",
        bank_code="0001",
        branch_code="001",
        account_type=1,
        account_number="1234567",
        separator="crlf",
    )
    job = _chunk.ChunkJob(key, 1, code, zengin._data_format(settings), "\r\n", False, rows.encode())
    result = _chunk.render_chunk(job)
    assert result.records == b"" and [(p.reference, p.field, p.reason) for p in result.problems] == [
        (1, "bank", "decrypt")
    ]

"""Receipt numbers are scoped per municipality and reveal no platform volume (issue 12, finding 7):
the old receipt was the platform-wide application id plus a check digit, so every resident could read
how many applications all municipalities had taken."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.registry.receipts import format_receipt, is_valid, receipt_key, receipt_number
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from tests.intake.helpers import application_body, make_letters

KEY_A, KEY_B = receipt_key(b"a" * 32), receipt_key(b"b" * 32)


def test_receipts_of_consecutive_ids_are_distinct_valid_and_unordered():
    ids = range(1, 20_001)
    receipts = [receipt_number(KEY_A, i) for i in ids]
    assert len(set(receipts)) == len(receipts)  # a permutation: no two applications share one
    assert all(is_valid(r) and len(r) == 11 for r in receipts)
    assert receipts != sorted(receipts)
    # Nothing of the id shows: the body is not the id, and neighbours are far apart.
    assert not any(int(r[:-1]) == i for i, r in zip(ids, receipts))
    ascending = sum(a < b for a, b in zip(receipts, receipts[1:]))
    assert 0.45 < ascending / (len(receipts) - 1) < 0.55


def test_the_same_id_gives_unrelated_receipts_in_two_municipalities():
    same = sum(receipt_number(KEY_A, i) == receipt_number(KEY_B, i) for i in range(1, 5_001))
    assert same == 0


@pytest.mark.parametrize("receipt", [receipt_number(KEY_A, i) for i in (1, 77, 123_456, 9_999_999_999)])
def test_check_digit_catches_every_single_digit_error_and_adjacent_swap(receipt):
    assert is_valid(receipt)
    for pos in range(11):
        for d in "0123456789":
            if d != receipt[pos]:
                assert not is_valid(receipt[:pos] + d + receipt[pos + 1 :])
    for pos in range(10):
        if receipt[pos] != receipt[pos + 1]:
            assert not is_valid(receipt[:pos] + receipt[pos + 1] + receipt[pos] + receipt[pos + 2 :])


def test_ids_outside_the_space_are_refused_not_truncated():
    for bad in (0, -1, 10**10):
        with pytest.raises(ValueError):
            receipt_number(KEY_A, bad)


def test_format_groups_three_four_four():
    assert format_receipt("12345678901") == "123-4567-8901"


async def test_api_receipts_are_the_municipalitys_permutation_of_the_id(live_server, app_pool, settings, municipality):
    """Through the real submit path: two municipalities' applications, interleaved."""
    a, b = await municipality(), await municipality()
    letters = {
        a: await make_letters(app_pool, settings.master_key_bytes, a, 3),
        b: await make_letters(app_pool, settings.master_key_bytes, b, 2),
    }
    got = []
    async with httpx.AsyncClient(base_url=live_server, timeout=30) as client:
        for code, letter in [
            (a, letters[a][0]),
            (b, letters[b][0]),
            (a, letters[a][1]),
            (b, letters[b][1]),
            (a, letters[a][2]),
        ]:
            r = await client.post(
                "/api/v1/applications", json=application_body(letter), headers={"Idempotency-Key": str(uuid.uuid4())}
            )
            assert r.status_code == 201, r.text
            got.append((code, letter.entitlement_id, r.json()["receipt_no"]))
    for code, entitlement_id, receipt in got:
        async with tenant_transaction(app_pool, code, readonly=True) as conn:
            app_id = await conn.fetchval(
                "SELECT application_id FROM applications WHERE entitlement_id = $1", entitlement_id
            )
            cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        assert is_valid(receipt) and int(receipt[:-1]) != app_id
        assert receipt == receipt_number(receipt_key(cipher.key), app_id)

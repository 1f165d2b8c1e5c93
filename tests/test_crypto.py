"""Per-municipality field encryption: bound to municipality, table, column and row; survives rotation."""

from __future__ import annotations

import os

import asyncpg
import pytest

from app.crypto import DecryptionError, FieldCipher
from app.tenancy.municipalities import load_field_cipher, rotate_master_key
from app.tenancy.transaction import tenant_transaction


def test_round_trip_and_fresh_nonce():
    c = FieldCipher("131016", os.urandom(32))
    one = c.encrypt("applications", "account_number", 42, "1234567")
    two = c.encrypt("applications", "account_number", 42, "1234567")
    assert one != two  # a fresh nonce each time: equal values are not linkable
    assert c.decrypt_str("applications", "account_number", 42, one) == "1234567"


@pytest.mark.parametrize("where", ["municipality", "table", "column", "row", "key"])
def test_ciphertext_moved_elsewhere_does_not_decrypt(where):
    key = os.urandom(32)
    c = FieldCipher("131016", key)
    ct = c.encrypt("applications", "account_number", 42, "1234567")
    args = {"table": "applications", "column": "account_number", "row_key": 42}
    other = c
    if where == "municipality":
        other = FieldCipher("271004", key)
    elif where == "table":
        args["table"] = "payments"
    elif where == "column":
        args["column"] = "holder_kana"
    elif where == "row":
        args["row_key"] = 43
    else:
        other = FieldCipher("131016", os.urandom(32))
    with pytest.raises(DecryptionError) as err:
        other.decrypt(args["table"], args["column"], args["row_key"], ct)
    assert "1234567" not in str(err.value)


@pytest.mark.parametrize("cut", [0, 1, 4, 5, 17, 32])
def test_a_truncated_ciphertext_is_a_decryption_error(cut):
    """Not a struct.error from the header or an InvalidTag from below: callers catch one error type."""
    c = FieldCipher("131016", os.urandom(32))
    ct = c.encrypt("applications", "account_number", 42, "1234567")
    with pytest.raises(DecryptionError):
        c.decrypt("applications", "account_number", 42, ct[:cut])


async def test_each_municipality_has_its_own_key(owner_conn, settings, municipality):
    a, b = await municipality(), await municipality()
    async with tenant_transaction(owner_conn, a):
        ca = await load_field_cipher(owner_conn, settings.master_key_bytes, a)
    async with tenant_transaction(owner_conn, b):
        cb = await load_field_cipher(owner_conn, settings.master_key_bytes, b)
    assert ca.key != cb.key
    ct = ca.encrypt("t", "c", 1, "x")
    with pytest.raises(DecryptionError):
        FieldCipher(a, cb.key).decrypt("t", "c", 1, ct)


async def test_master_key_rotation_rewraps_keys_and_keeps_data_readable(servers, municipality):
    """Rotation in a database of its own, so it can re-wrap every municipality without touching others'."""
    import secrets

    from app.migrate import migrate
    from app.tenancy.municipalities import add_municipality

    name = f"kyufu_rot_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(servers.admin_url)
    await admin.execute(f'CREATE DATABASE "{name}" OWNER kyufu_owner')
    url = servers.url_for(servers.owner_url, name)
    try:
        await migrate(url)
        conn = await asyncpg.connect(url)
        try:
            old, new = os.urandom(32), os.urandom(32)
            await add_municipality(conn, old, "131016", "千代田区")
            async with tenant_transaction(conn, "131016"):
                cipher = await load_field_cipher(conn, old, "131016")
            ct = cipher.encrypt("applications", "account_number", 7, "7654321")
            assert await rotate_master_key(conn, old, new) == 2
            async with tenant_transaction(conn, "131016"):
                after = await load_field_cipher(conn, new, "131016")
                with pytest.raises(DecryptionError):
                    await load_field_cipher(conn, old, "131016")
            assert after.decrypt_str("applications", "account_number", 7, ct) == "7654321"
            # An interrupted rotation can be run again: keys already under `new` are left alone.
            assert await rotate_master_key(conn, old, new) == 0
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def test_one_key_derivation_with_no_fallback():
    """Issue 14: every key derived from KYUFU_SESSION_SECRET comes from app.crypto.derive_key, one key per
    purpose, and an empty secret is refused (the console used to fall back to a fixed test secret)."""
    import pytest

    from app.crypto import derive_key

    a, b = derive_key("s3cret", "staff-console"), derive_key("s3cret", "resident-session")
    assert len(a) == 32 and a != b and derive_key(b"s3cret", "staff-console") == a
    assert derive_key("other", "staff-console") != a
    for empty in ("", b""):
        with pytest.raises(ValueError):
            derive_key(empty, "staff-console")

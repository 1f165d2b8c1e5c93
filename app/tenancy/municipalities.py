"""Municipalities: registering them, looking them up (the one place that reads the municipalities table)
and loading their keys."""

from __future__ import annotations

import os
from dataclasses import dataclass

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.crypto import DecryptionError, FieldCipher, master_key_id, unwrap_key, wrap_key
from app.tenancy.codes import validate_code
from app.tenancy.transaction import tenant_transaction


class MunicipalityExists(Exception):
    """The municipality code is already registered."""


INSERT_MUNICIPALITY = "INSERT INTO municipalities (code, name) VALUES ($1, $2)"
INSERT_KEY = """
INSERT INTO municipality_keys (municipality_code, purpose, version, wrapped_key, master_key_id, public_key)
VALUES ($1, $2, $3, $4, $5, $6)
"""
LIST_MUNICIPALITIES = "SELECT code, name, created_at FROM municipalities ORDER BY code"
GET_MUNICIPALITY = "SELECT code, name FROM municipalities WHERE code = $1"
# The newest key of a purpose; older versions stay for data encrypted under them.
CURRENT_KEY = """
SELECT version, wrapped_key, public_key FROM municipality_keys
WHERE municipality_code = $1 AND purpose = $2 ORDER BY version DESC LIMIT 1
"""
ALL_KEYS = "SELECT purpose, version, wrapped_key FROM municipality_keys WHERE municipality_code = $1"
REWRAP_KEY = """
UPDATE municipality_keys SET wrapped_key = $4, master_key_id = $5
WHERE municipality_code = $1 AND purpose = $2 AND version = $3
"""


@dataclass(frozen=True)
class Municipality:
    code: str
    name: str


async def get_municipality(conn: asyncpg.Connection, code: str) -> Municipality | None:
    """The registered municipality with this code, or None. The table is platform data (no RLS): any
    transaction may read it."""
    row = await conn.fetchrow(GET_MUNICIPALITY, code)
    return None if row is None else Municipality(row["code"], row["name"])


async def municipality_codes(conn: asyncpg.Connection) -> list[str]:
    """Every registered code, in order (what the platform's periodic jobs loop over)."""
    return [m.code for m in await list_municipalities(conn)]


async def add_municipality(conn: asyncpg.Connection, master_key: bytes, code: str, name: str) -> Municipality:
    """Register a municipality with a fresh data key and signing key (one transaction).

    `conn` must be the owner's connection: the app role cannot create tenants.
    """
    validate_code(code)
    name = name.strip()
    if not name:
        raise ValueError("名称を入力してください。 / The municipality name is empty.")
    data_key = os.urandom(32)
    signing = Ed25519PrivateKey.generate()
    signing_raw = signing.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public_raw = signing.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = master_key_id(master_key)
    try:
        async with tenant_transaction(conn, code):
            await conn.execute(INSERT_MUNICIPALITY, code, name)
            await conn.execute(INSERT_KEY, code, "data", 1, wrap_key(master_key, code, "data", 1, data_key), kid, None)
            await conn.execute(
                INSERT_KEY, code, "signing", 1, wrap_key(master_key, code, "signing", 1, signing_raw), kid, public_raw
            )
    except asyncpg.UniqueViolationError:
        raise MunicipalityExists(f"municipality {code} is already registered") from None
    return Municipality(code, name)


async def list_municipalities(conn: asyncpg.Connection) -> list[Municipality]:
    return [Municipality(r["code"], r["name"]) for r in await conn.fetch(LIST_MUNICIPALITIES)]


async def load_field_cipher(conn: asyncpg.Connection, master_key: bytes, code: str) -> FieldCipher:
    """The municipality's current data key. Call inside tenant_transaction(conn, code)."""
    row = await conn.fetchrow(CURRENT_KEY, code, "data")
    if row is None:
        raise LookupError(f"municipality {code} has no data key (or is not in scope)")
    key = unwrap_key(master_key, code, "data", row["version"], row["wrapped_key"])
    return FieldCipher(code, key, row["version"])


async def load_signing_key(conn: asyncpg.Connection, master_key: bytes, code: str) -> Ed25519PrivateKey:
    row = await conn.fetchrow(CURRENT_KEY, code, "signing")
    if row is None:
        raise LookupError(f"municipality {code} has no signing key (or is not in scope)")
    raw = unwrap_key(master_key, code, "signing", row["version"], row["wrapped_key"])
    return Ed25519PrivateKey.from_private_bytes(raw)


async def signing_public_key(conn: asyncpg.Connection, code: str) -> bytes:
    row = await conn.fetchrow(CURRENT_KEY, code, "signing")
    if row is None:
        raise LookupError(f"municipality {code} has no signing key (or is not in scope)")
    return bytes(row["public_key"])


async def rotate_master_key(conn: asyncpg.Connection, old_master: bytes, new_master: bytes) -> int:
    """Re-wrap every municipality's keys under a new master key; data is not touched.

    Each municipality is its own transaction: a failure part-way leaves every key wrapped by exactly one
    of the two master keys (recorded in master_key_id), and running it again finishes the job.
    Returns the number of keys re-wrapped.
    """
    new_id = master_key_id(new_master)
    count = 0
    for m in await list_municipalities(conn):
        async with tenant_transaction(conn, m.code):
            for row in await conn.fetch(ALL_KEYS + " FOR UPDATE", m.code):
                purpose, version = row["purpose"], row["version"]
                try:
                    raw = unwrap_key(old_master, m.code, purpose, version, row["wrapped_key"])
                except DecryptionError:
                    # Already re-wrapped by an earlier, interrupted run: it must open with the new key.
                    unwrap_key(new_master, m.code, purpose, version, row["wrapped_key"])
                    continue
                await conn.execute(
                    REWRAP_KEY, m.code, purpose, version, wrap_key(new_master, m.code, purpose, version, raw), new_id
                )
                count += 1
    return count

"""Sample rows for the kept released files (migrations/0027_released_files.sql)."""

from __future__ import annotations

import secrets

from tests.samples.domain import batch
from tests.tenancy_samples import sample


async def _kept_file(conn, code) -> int:
    batch_id = await batch(conn, code)
    await conn.execute(
        "INSERT INTO released_files (municipality_code, batch_id, file_name, ciphertext_sha256, ciphertext_bytes,"
        " signed_manifest) VALUES ($1, $2, 'sample.txt', $3, 1, '\\x00')",
        code,
        batch_id,
        secrets.token_hex(32),
    )
    return batch_id


sample("released_files")(lambda conn, code: _kept_file(conn, code))


@sample("released_file_parts")
async def _part(conn, code):
    await conn.execute(
        "INSERT INTO released_file_parts (municipality_code, batch_id, part, bytes) VALUES ($1, $2, 0, '\\x00')",
        code,
        await _kept_file(conn, code),
    )

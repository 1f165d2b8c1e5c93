"""One valid sample row per tenant table, for the generic isolation tests.

tests/test_tenancy.py fails if a table with `municipality_code` has no entry here, so a table added later
must say how to make one of its rows, and is then covered by the isolation tests automatically.
Each factory runs inside tenant_transaction(conn, code) and inserts exactly one row for `code`.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

import asyncpg

Factory = Callable[[asyncpg.Connection, str], Awaitable[None]]
SAMPLES: dict[str, Factory] = {}


def sample(table: str):
    def register(fn: Factory) -> Factory:
        SAMPLES[table] = fn
        return fn

    return register


@sample("municipality_keys")
async def _key(conn, code):
    await conn.execute(
        "INSERT INTO municipality_keys (municipality_code, purpose, version, wrapped_key, master_key_id)"
        " VALUES ($1, 'data', 1000 + (random() * 1000000)::int, '\\x00', 'sample')",
        code,
    )


@sample("staff_users")
async def _staff(conn, code):
    await conn.execute(
        # No roles: a role needs a grant confirmed by a second admin (migration 0014).
        "INSERT INTO staff_users (municipality_code, login, display_name, roles, password_hash)"
        " VALUES ($1, $2, 'サンプル', '{}', 'x')",
        code,
        f"sample-{secrets.token_hex(4)}",
    )


@sample("outbox")
async def _outbox(conn, code):
    await conn.execute(
        "INSERT INTO outbox (municipality_code, job_name, job_id) VALUES ($1, 'sample', $2)",
        code,
        f"sample:{secrets.token_hex(6)}",
    )


def _load_area_samples() -> None:
    """Import every module in tests/samples/ so each area registers its own tables' samples."""
    import importlib
    import pkgutil

    import tests.samples

    for info in pkgutil.iter_modules(tests.samples.__path__):
        importlib.import_module(f"tests.samples.{info.name}")


_load_area_samples()

"""The one place that scopes a database transaction to a municipality.

Row-level security on every tenant table compares `municipality_code` with the transaction-local setting
`kyufu.municipality`. This module is the only code that sets it, always with set_config(..., true) as the
first statement of the transaction, so the scope ends with the transaction and a pooled connection can
never carry one municipality's scope into another's request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import asyncpg

from app.tenancy.codes import validate_code

SET_MUNICIPALITY = "SELECT set_config('kyufu.municipality', $1, true)"


@asynccontextmanager
async def tenant_transaction(
    db: asyncpg.Pool | asyncpg.Connection,
    municipality_code: str,
    *,
    isolation: str = "read_committed",
    readonly: bool = False,
) -> AsyncIterator[asyncpg.Connection]:
    """Open a transaction scoped to one municipality and yield its connection.

    Accepts a pool (a connection is acquired for the transaction) or a connection that is not already
    in a transaction.
    """
    validate_code(municipality_code)
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            async with _scoped(conn, municipality_code, isolation, readonly):
                # The pool's proxy forwards every Connection method; asyncpg's types do not make it one, and
                # the code takes either kind as an asyncpg.Connection.
                yield cast(asyncpg.Connection, conn)
    else:
        async with _scoped(db, municipality_code, isolation, readonly):
            yield db


@asynccontextmanager
async def _scoped(conn, municipality_code, isolation, readonly):
    async with conn.transaction(isolation=isolation, readonly=readonly):
        await conn.execute(SET_MUNICIPALITY, municipality_code)
        yield


@asynccontextmanager
async def platform_transaction(db: asyncpg.Pool | asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """A transaction with no municipality in scope: it sees only platform tables (municipalities);
    every tenant table looks empty."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            async with conn.transaction():
                yield cast(asyncpg.Connection, conn)  # a pool's proxy, as in tenant_transaction
    else:
        async with db.transaction():
            yield db

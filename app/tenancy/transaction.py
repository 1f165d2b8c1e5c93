"""The one place that scopes a database transaction to a municipality.

Row-level security on every tenant table compares `municipality_code` with the transaction-local setting
`kyufu.municipality`. This module is the only code that sets it, always with `SET LOCAL` as the first
statement of the transaction, so the scope ends with the transaction (commit or rollback) and a pooled
connection can never carry one municipality's scope into another's request.

Why `SET LOCAL` and not `set_config('kyufu.municipality', $1, true)` (which it replaced): the path beyond one
PostgreSQL primary is Citus, distributed by municipality_code (docs/capacity.md). Citus forwards `SET LOCAL`
to the worker nodes a transaction touches (citus.propagate_set_commands = 'local'), but not a set_config()
call, so a worker would evaluate the row-level-security policies of its shards with no municipality in scope.
`SET` takes no bind parameter, so the code becomes SQL text; scope_statement() is the one place that
happens, and only six ASCII digits with a valid check digit ever reach it (why that is safe: there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import asyncpg

from app.tenancy.codes import MunicipalityCodeError, validate_code


def scope_statement(municipality_code: object) -> str:
    """`SET LOCAL kyufu.municipality = '<code>'` for a valid 地方公共団体コード; MunicipalityCodeError otherwise,
    before any SQL is sent.

    Safe to put in the SQL text: the value is copied to an exact `str` first (a str subclass could format
    itself as something other than the characters validate_code checked), then it must be a valid code
    (validate_code: six digits, prefecture 01-47, check digit) and, checked again here where the text is
    built so that a later change to validate_code cannot loosen it, exactly six ASCII digits. Six digits
    cannot close the quote, start a second statement or a comment, or be read differently under any
    client_encoding PostgreSQL accepts (every one of them encodes ASCII as ASCII)."""
    code = str.__str__(municipality_code) if isinstance(municipality_code, str) else municipality_code
    validate_code(code)
    assert isinstance(code, str)  # validate_code refuses anything else
    if len(code) != 6 or not all("0" <= c <= "9" for c in code):
        raise MunicipalityCodeError("地方公共団体コードは6桁の半角数字です。 / A municipality code is 6 ASCII digits.")
    return f"SET LOCAL kyufu.municipality = '{code}'"


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
    statement = scope_statement(municipality_code)  # refuses a bad code before a connection is used
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            async with _scoped(conn, statement, isolation, readonly):
                # The pool's proxy forwards every Connection method; asyncpg's types do not make it one, and
                # the code takes either kind as an asyncpg.Connection.
                yield cast(asyncpg.Connection, conn)
    else:
        async with _scoped(db, statement, isolation, readonly):
            yield db


@asynccontextmanager
async def _scoped(conn, statement, isolation, readonly):
    async with conn.transaction(isolation=isolation, readonly=readonly):
        await conn.execute(statement)
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

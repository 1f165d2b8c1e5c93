"""Connection pools and the startup safety check of the app's database role."""

from __future__ import annotations

from typing import cast

import asyncpg

from app.errors import NotFound
from app.settings import Settings, require

# What asyncpg raises when PostgreSQL goes away under a request or job (restart, crash, failover, network):
# the transaction did not commit, or for a lost COMMIT reply its outcome is unknown, so the caller should
# answer "try again" (an HTTP 503, a release to re-run), never a 500. Not a query's own failure.
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # connection lost mid-query, or refused by the protocol
    asyncpg.CannotConnectNowError,  # starting up or in crash recovery
    asyncpg.AdminShutdownError,  # pg_ctl stop -m fast terminated the session
    asyncpg.CrashShutdownError,  # another backend crashed; the server is resetting
    ConnectionError,  # refused or reset at the socket (the server is down)
)


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` is PostgreSQL going away. asyncpg reports the exit of a transaction on a connection
    that was lost inside it as an InterfaceError ("the underlying connection is closed"), raised while the
    loss itself, or an error a caller made of it, propagates: look behind it."""
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return True
    if not isinstance(exc, asyncpg.InterfaceError):
        return False
    seen = exc.__context__
    for _ in range(16):  # a chain is a few links; the bound guards against a cycle made with `raise ... from`
        if seen is None:
            return False
        if isinstance(seen, DATABASE_UNAVAILABLE):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class UnsafeDatabaseRole(RuntimeError):
    """The app was given a role that row-level security would not restrict."""


# A role is safe for the app when RLS applies to it: not superuser, no BYPASSRLS, and it neither owns
# nor inherits ownership of any table in the database (FORCE RLS covers owners, but an owner can
# ALTER TABLE ... NO FORCE ROW LEVEL SECURITY).
ROLE_CHECK = """
SELECT r.rolsuper, r.rolbypassrls,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND pg_has_role(current_user, c.relowner, 'MEMBER')) AS owned_tables
FROM pg_roles r WHERE r.rolname = current_user
"""


async def check_app_role(conn: asyncpg.Connection) -> None:
    row = await fetch_always(conn, ROLE_CHECK)
    problems = []
    if row["rolsuper"]:
        problems.append("is a superuser")
    if row["rolbypassrls"]:
        problems.append("has BYPASSRLS")
    if row["owned_tables"]:
        problems.append(f"owns (or is a member of the owner of) {row['owned_tables']} tables")
    if problems:
        user = await conn.fetchval("SELECT current_user")
        raise UnsafeDatabaseRole(
            f"refusing to serve: database role {user!r} "
            + ", ".join(problems)
            + "; connect the app as the non-owner role (kyufu_app) so row-level security applies"
        )


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Every statement is bounded: a stuck query must not hold a request or job forever.
    await conn.execute("SET statement_timeout = '60s'; SET idle_in_transaction_session_timeout = '120s'")


async def create_app_pool(settings: Settings, *, check_role: bool = True, **kwargs) -> asyncpg.Pool:
    """The pool the app and workers use, after verifying the role is safe."""
    url = require(settings.database_url, "DATABASE_URL")
    pool = await asyncpg.create_pool(
        url,
        min_size=kwargs.pop("min_size", settings.db_pool_min),
        max_size=kwargs.pop("max_size", settings.db_pool_max),
        init=_init_connection,
        **kwargs,
    )
    if check_role:
        try:
            async with pool.acquire() as conn:
                await check_app_role(cast(asyncpg.Connection, conn))  # a pool's proxy forwards every method
        except BaseException:
            await pool.close()
            raise
    return pool


async def connect_owner(settings: Settings) -> asyncpg.Connection:
    """A single owner connection for migrations and platform administration (CLI only)."""
    return await asyncpg.connect(require(settings.database_owner_url, "DATABASE_OWNER_URL"))


async def ping(pool: asyncpg.Pool) -> None:
    """One round trip on a pooled connection (readiness): raises if PostgreSQL does not answer."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def fetch_one(conn: asyncpg.Connection, query: str, *args) -> asyncpg.Record:
    """The row the query finds, or NotFound (another municipality's row looks the same as none)."""
    row = await conn.fetchrow(query, *args)
    if row is None:
        raise NotFound()
    return row


async def fetch_always(conn: asyncpg.Connection, query: str, *args) -> asyncpg.Record:
    """The row of a query that returns exactly one whatever the data (an aggregate without GROUP BY, an
    INSERT ... RETURNING of one row). No row would be a bug in the query, so it is raised as one here
    rather than as a TypeError where the row is first read."""
    row = await conn.fetchrow(query, *args)
    if row is None:
        raise RuntimeError("a query that always returns one row returned none")
    return row

"""The tenant scope is set with SET LOCAL (app/tenancy/transaction.py, for Citus: docs/capacity.md): on real
PostgreSQL it is the first statement, lasts exactly one transaction, never reaches the next user of a pooled
connection, keeps row-level security confining every statement, and a hostile code never becomes SQL."""

from __future__ import annotations

import asyncpg
import pytest

from app.tenancy.codes import MunicipalityCodeError
from app.tenancy.transaction import scope_statement, tenant_transaction
from tests.tenancy_samples import SAMPLES

SCOPE = "SELECT current_setting('kyufu.municipality', true)"


class _Disguised(str):
    """Holds a valid code but formats and prints itself as an injection."""

    def __format__(self, spec: str) -> str:
        return "131016'; RESET ROLE; --"

    def __str__(self) -> str:
        return "131016'; RESET ROLE; --"


def test_the_statement_is_set_local_with_the_code_quoted():
    assert scope_statement("131016") == "SET LOCAL kyufu.municipality = '131016'"
    # A str subclass is copied to a plain str first: only the characters validate_code checked are written.
    assert scope_statement(_Disguised("131016")) == "SET LOCAL kyufu.municipality = '131016'"


HOSTILE = [
    "131016'; RESET ROLE; --",
    "'; SET LOCAL kyufu.municipality = '131024",
    "131016' OR '1'='1",
    "131016\n",
    "131016 ",
    " 131016",
    "131016\x00",
    "13101６",  # a full-width digit
    "١٣١٠١٦",  # Arabic-Indic digits: str.isdigit() says yes
    "131017",  # check digit
    "481000",  # prefecture
    "",
    "1310166",
    131016,
    b"131016",
    None,
]


@pytest.mark.parametrize("code", HOSTILE, ids=repr)
async def test_a_hostile_code_is_refused_before_any_sql(code, servers):
    """Refused by the validation, on a connection that has already been closed: had any statement been
    sent, asyncpg would have raised InterfaceError instead."""
    conn = await asyncpg.connect(servers.owner_url)
    await conn.close()
    with pytest.raises(MunicipalityCodeError):
        async with tenant_transaction(conn, code):
            pytest.fail("the transaction must not open")
    with pytest.raises(MunicipalityCodeError):
        scope_statement(code)


async def test_the_scope_lasts_one_transaction_and_never_reaches_the_next_on_a_pooled_connection(
    app_pool, municipality
):
    a, b = await municipality(), await municipality()
    async with app_pool.acquire() as conn:
        async with tenant_transaction(conn, a):
            assert await conn.fetchval(SCOPE) == a
            assert await conn.fetchval("SELECT kyufu_current_municipality()") == a
        # committed: gone, and nothing of any tenant is visible
        assert await conn.fetchval("SELECT kyufu_current_municipality()") is None
        assert await conn.fetchval("SELECT count(*) FROM staff_users") == 0

        with pytest.raises(RuntimeError):
            async with tenant_transaction(conn, b):
                assert await conn.fetchval(SCOPE) == b
                raise RuntimeError("rolled back")
        # rolled back: gone too
        assert await conn.fetchval("SELECT kyufu_current_municipality()") is None

        # a failed statement inside the scope: the transaction aborts and the scope goes with it
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with tenant_transaction(conn, a):
                await conn.fetchval("SELECT 1 / 0")
        assert await conn.fetchval("SELECT kyufu_current_municipality()") is None

        # the next transaction on the same connection has its own scope, not the previous one's
        async with tenant_transaction(conn, b):
            assert await conn.fetchval("SELECT kyufu_current_municipality()") == b
    # and the pool hands the connection on with no scope at all
    async with app_pool.acquire() as conn:
        assert await conn.fetchval("SELECT kyufu_current_municipality()") is None


async def test_a_savepoint_inside_the_scope_keeps_it(app_pool, municipality):
    """Nested transactions (savepoints: the release's NOWAIT lock, the batcher's per-item savepoints) neither
    lose the scope when they roll back nor carry it beyond the outer transaction."""
    a = await municipality()
    async with app_pool.acquire() as conn:
        async with tenant_transaction(conn, a):
            with pytest.raises(asyncpg.DivisionByZeroError):
                async with conn.transaction():
                    await conn.fetchval("SELECT 1 / 0")
            assert await conn.fetchval("SELECT kyufu_current_municipality()") == a
        assert await conn.fetchval("SELECT kyufu_current_municipality()") is None


async def test_row_level_security_confines_the_scoped_transaction_as_the_app(app_pool, servers, municipality):
    """With the scope set by SET LOCAL, the app role sees and writes only its municipality's rows."""
    a, b = await municipality(), await municipality()
    owner = await asyncpg.connect(servers.owner_url)
    try:
        for code in (a, b):
            async with tenant_transaction(owner, code):
                await SAMPLES["staff_users"](owner, code)
    finally:
        await owner.close()
    async with tenant_transaction(app_pool, a) as conn:
        seen = {r["municipality_code"] for r in await conn.fetch("SELECT municipality_code FROM staff_users")}
        assert seen == {a}
        assert await conn.fetchval("SELECT count(*) FROM staff_users WHERE municipality_code = $1", b) == 0
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with tenant_transaction(app_pool, a) as conn:
            await SAMPLES["staff_users"](conn, b)

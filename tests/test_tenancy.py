"""Tenant isolation is structural: every table with municipality_code is covered, generically."""

from __future__ import annotations

import asyncpg
import pytest

from app.tenancy.transaction import platform_transaction, tenant_transaction
from tests.tenancy_samples import SAMPLES

TENANT_TABLES = """
SELECT c.relname AS table, c.oid, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'municipality_code' AND NOT a.attisdropped
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
ORDER BY 1
"""


async def tenant_tables(conn) -> list[asyncpg.Record]:
    return await conn.fetch(TENANT_TABLES)


async def test_every_tenant_table_has_a_sample_row_factory(owner_conn):
    """A new tenant table must register a sample in tests/tenancy_samples.py, and so gets the isolation tests."""
    tables = {r["table"] for r in await tenant_tables(owner_conn)}
    assert tables, "no tenant tables found: is the schema migrated?"
    assert tables - set(SAMPLES) == set(), f"tables without a sample factory: {sorted(tables - set(SAMPLES))}"


async def test_every_tenant_table_forces_rls_and_leads_keys_with_municipality(owner_conn):
    problems = []
    for t in await tenant_tables(owner_conn):
        name, oid = t["table"], t["oid"]
        if not t["relrowsecurity"]:
            problems.append(f"{name}: ROW LEVEL SECURITY not enabled")
        if not t["relforcerowsecurity"]:
            problems.append(f"{name}: ROW LEVEL SECURITY not FORCEd")
        policy = await owner_conn.fetchrow(
            "SELECT pg_get_expr(polqual, polrelid) AS qual, pg_get_expr(polwithcheck, polrelid) AS chk,"
            " polpermissive, polcmd::text AS polcmd FROM pg_policy"
            " WHERE polrelid = $1 AND polname = 'tenant_isolation'",
            oid,
        )
        if policy is None:
            problems.append(f"{name}: no tenant_isolation policy")
        else:
            for expr in ("qual", "chk"):
                if "kyufu_current_municipality()" not in (policy[expr] or ""):
                    problems.append(f"{name}: policy {expr} does not compare with kyufu_current_municipality()")
            if policy["polcmd"] != "*":  # '*' in pg_policy.polcmd means ALL
                problems.append(f"{name}: tenant_isolation must cover all commands")
        others = await owner_conn.fetchval(
            "SELECT count(*) FROM pg_policy WHERE polrelid = $1 AND polname <> 'tenant_isolation' AND polpermissive",
            oid,
        )
        if others:
            problems.append(f"{name}: extra permissive policies would widen access")
        # Primary key and every unique index start with municipality_code.
        indexes = await owner_conn.fetch(
            "SELECT i.indexrelid::regclass::text AS idx, i.indisprimary, a.attname AS first_col"
            " FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " WHERE i.indrelid = $1 AND (i.indisunique OR i.indisprimary)",
            oid,
        )
        if not any(i["indisprimary"] for i in indexes):
            problems.append(f"{name}: no primary key")
        for i in indexes:
            if i["first_col"] != "municipality_code":
                problems.append(f"{name}: unique index {i['idx']} does not lead with municipality_code")
        # Foreign keys to other tenant tables carry municipality_code.
        fks = await owner_conn.fetch(
            "SELECT conname, confrelid::regclass::text AS target,"
            " (SELECT array_agg(attname) FROM pg_attribute WHERE attrelid = conrelid AND attnum = ANY(conkey)) AS cols,"
            " EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = confrelid AND attname = 'municipality_code')"
            " AS tenant_target"
            " FROM pg_constraint WHERE conrelid = $1 AND contype = 'f'",
            oid,
        )
        for fk in fks:
            if fk["tenant_target"] and "municipality_code" not in fk["cols"]:
                problems.append(f"{name}: foreign key {fk['conname']} to {fk['target']} lacks municipality_code")
    assert problems == []


@pytest.mark.parametrize("table", sorted(SAMPLES))
async def test_rls_confines_every_statement_to_the_scoped_municipality(table, servers, municipality, app_pool):
    """Inside A's transaction nothing of B is visible or writable, as the owner (FORCE RLS) and as the app;
    with no municipality in scope nothing at all is visible."""
    a, b = await municipality(), await municipality()
    owner = await asyncpg.connect(servers.owner_url)
    try:
        for code in (a, b):
            async with tenant_transaction(owner, code):
                await SAMPLES[table](owner, code)

        async def check_as(conn, privileges: set[str]):
            async with tenant_transaction(conn, a):
                seen = await conn.fetch(f"SELECT DISTINCT municipality_code FROM {table}")
                assert [r["municipality_code"] for r in seen] == [a]
                assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE municipality_code = $1", b) == 0
                if "UPDATE" in privileges:
                    status = await conn.execute(
                        f"UPDATE {table} SET municipality_code = municipality_code WHERE municipality_code = $1", b
                    )
                    assert status == "UPDATE 0"
                    # Moving one of A's rows to B is refused by WITH CHECK.
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        async with conn.transaction():
                            await conn.execute(f"UPDATE {table} SET municipality_code = $1", b)
                if "DELETE" in privileges:
                    assert await conn.execute(f"DELETE FROM {table} WHERE municipality_code = $1", b) == "DELETE 0"
            if "INSERT" in privileges:
                # B's row written from inside A's scope violates the policy.
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    async with tenant_transaction(conn, a):
                        await SAMPLES[table](conn, b)
            async with platform_transaction(conn):
                assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0

        await check_as(owner, {"UPDATE", "DELETE", "INSERT"})
        async with app_pool.acquire() as app:
            granted = {
                p
                for p in ("UPDATE", "DELETE", "INSERT")
                if await app.fetchval("SELECT has_table_privilege($1, $2)", table, p)
            }
            await check_as(app, granted)
        # B's row is still there, untouched, when B is in scope.
        async with tenant_transaction(owner, b):
            assert await owner.fetchval(f"SELECT count(*) FROM {table} WHERE municipality_code = $1", b) >= 1
    finally:
        await owner.close()


async def test_scope_does_not_leak_to_the_next_transaction_on_a_pooled_connection(app_pool, municipality):
    a = await municipality()
    async with app_pool.acquire() as conn:
        async with tenant_transaction(conn, a):
            assert await conn.fetchval("SELECT kyufu_current_municipality()") == a
        assert await conn.fetchval("SELECT kyufu_current_municipality()") is None
        assert await conn.fetchval("SELECT count(*) FROM staff_users") == 0


async def test_database_refuses_a_bad_municipality_code(owner_conn):
    with pytest.raises(asyncpg.CheckViolationError):
        await owner_conn.execute("INSERT INTO municipalities (code, name) VALUES ('131017', 'x')")

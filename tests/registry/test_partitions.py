"""Residents are partitioned per snapshot (migrations/0011): every partition is as isolated as a tenant table,
belongs to the owner, and only the scoped municipality's import can create and attach one."""

from __future__ import annotations

import asyncpg
import pytest

from app.registry import residentcsv
from app.registry.errors import ImportRejected
from app.registry.imports import RELATIONSHIPS, REMOVAL_REASONS, import_residents
from app.tenancy.transaction import tenant_transaction
from tests.registry import binary_copy
from tests.registry.helpers import ServerLog, person, residents_csv

PARTITIONS = """
SELECT c.oid, c.oid::regclass::text AS name, n.nspname, c.relrowsecurity, c.relforcerowsecurity,
       pg_get_userbyid(c.relowner) AS owner, pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.inhparent = 'public.residents'::regclass
"""
PARTS_TABLES = (
    "SELECT array_agg(relname ORDER BY relname) FROM pg_class WHERE relnamespace = 'registry_parts'::regnamespace"
)


async def _import(app_pool, code, rows) -> int:
    async with tenant_transaction(app_pool, code) as conn:
        return (await import_residents(conn, code, residents_csv(rows))).snapshot_id


@pytest.mark.parametrize("path", ["text", "typed"])
async def test_every_partition_is_isolated_like_a_tenant_table(app_pool, owner_conn, code, monkeypatch, path):
    """The checks of tests/test_tenancy.py, for each partition (that test sees only the public schema), plus:
    owned by kyufu_owner, no privilege for the app, and none of the load-only columns or rules left; for a
    partition of either load path (0011's text load, 0012's typed load)."""
    monkeypatch.setattr(residentcsv, "encode", binary_copy.encode if path == "typed" else lambda *args: None)
    snapshot_id = await _import(app_pool, code, [person(), person()])
    partitions = await owner_conn.fetch(PARTITIONS)
    assert {p["bound"] for p in partitions} >= {"DEFAULT", f"FOR VALUES IN ('{snapshot_id}')"}
    problems = []
    for p in partitions:
        name, oid = p["name"], p["oid"]
        if p["nspname"] != "registry_parts" or p["owner"] != "kyufu_owner":
            problems.append(f"{name}: in {p['nspname']}, owned by {p['owner']}")
        if not (p["relrowsecurity"] and p["relforcerowsecurity"]):
            problems.append(f"{name}: row level security not enabled and forced")
        policies = await owner_conn.fetch(
            "SELECT polname, polcmd::text AS cmd, pg_get_expr(polqual, polrelid) AS qual,"
            " pg_get_expr(polwithcheck, polrelid) AS chk FROM pg_policy WHERE polrelid = $1",
            oid,
        )
        if [(r["polname"], r["cmd"]) for r in policies] != [("tenant_isolation", "*")] or not all(
            "kyufu_current_municipality()" in (r[e] or "") for r in policies for e in ("qual", "chk")
        ):
            problems.append(f"{name}: policies {[dict(r) for r in policies]}")
        keys = await owner_conn.fetch(
            "SELECT i.indisprimary, a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = i.indkey[0] WHERE i.indrelid = $1 AND (i.indisunique OR i.indisprimary)",
            oid,
        )
        if not any(k["indisprimary"] for k in keys) or any(k["attname"] != "municipality_code" for k in keys):
            problems.append(f"{name}: keys {[dict(k) for k in keys]}")
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            if await owner_conn.fetchval("SELECT has_table_privilege('kyufu_app', $1::oid, $2)", oid, privilege):
                problems.append(f"{name}: kyufu_app has {privilege}")
    assert problems == []
    part = f"registry_parts.residents_{snapshot_id}"
    assert (
        await owner_conn.fetchval(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped"
            " AND (attname LIKE '%\\_raw' OR attgenerated <> '')",
            part,
        )
        == 0
    )
    assert sorted(
        r[0]
        for r in await owner_conn.fetch(
            "SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND conname LIKE 'load\\_%'", part
        )
    ) == ["load_municipality", "load_snapshot"]


async def test_the_app_reaches_a_partition_only_through_residents(app_pool, code):
    snapshot_id = await _import(app_pool, code, [person()])
    async with tenant_transaction(app_pool, code) as conn:
        assert await conn.fetchval("SELECT count(*) FROM residents WHERE snapshot_id = $1", snapshot_id) == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval(f"SELECT count(*) FROM registry_parts.residents_{snapshot_id}")


async def test_only_the_scoped_municipalitys_import_can_create_or_attach_a_partition(app_pool, municipality):
    a, b = await municipality(), await municipality()
    published = await _import(app_pool, b, [person()])
    async with tenant_transaction(app_pool, b) as conn:
        staging = await conn.fetchval(
            "INSERT INTO registry_snapshots (municipality_code, kind, file_sha256)"
            " VALUES ($1, 'residents', repeat('a', 64)) RETURNING snapshot_id",
            b,
        )
    for scope, snapshot_id in ((a, staging), (b, published), (None, staging)):
        for call, args in (
            ("kyufu_residents_load_begin($1)", ()),
            ("kyufu_residents_publish($1, $2, $3)", (RELATIONSHIPS, REMOVAL_REASONS)),
            ("kyufu_residents_load_typed($1)", ()),
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with app_pool.acquire() as conn, conn.transaction():
                    if scope:
                        await conn.execute("SELECT set_config('kyufu.municipality', $1, true)", scope)
                    await conn.execute(f"SELECT {call}", snapshot_id, *args)


@pytest.mark.parametrize(
    ("begin", "publish", "typed"),
    [
        ("kyufu_residents_load_begin($1)", "kyufu_residents_publish($1, $2, $3)", False),
        ("kyufu_residents_load_typed($1)", "kyufu_residents_publish($1, $2, $3)", True),
    ],
    ids=["text", "typed"],
)
async def test_a_load_table_holds_only_the_scoped_municipality_and_snapshot(
    app_pool, municipality, begin, publish, typed
):
    """Until publish the future partition has no policy (COPY refuses one); two CHECKs pin every row instead."""
    a, b = await municipality(), await municipality()
    async with tenant_transaction(app_pool, a) as conn:
        snapshot_id = await conn.fetchval(
            "INSERT INTO registry_snapshots (municipality_code, kind, file_sha256)"
            " VALUES ($1, 'residents', repeat('b', 64)) RETURNING snapshot_id",
            a,
        )
        table = await conn.fetchval(f"SELECT {begin}", snapshot_id)
        flag, born = ("is_head", "birth_date") if typed else ("is_head_raw", "birth_date_raw")
        row = person()
        for muni, snap in ((b, snapshot_id), (a, snapshot_id + 1)):
            with pytest.raises(asyncpg.CheckViolationError):
                async with conn.transaction():
                    await conn.execute(
                        f"INSERT INTO registry_parts.{table} (municipality_code, snapshot_id, resident_code,"
                        f" household_no, relationship, {flag}, family_name, given_name, family_kana, given_kana,"
                        f" {born}, sex, address)"
                        " VALUES ($1, $2, $3, '1', '世帯主', '1', '山田', '太郎', 'ヤマダ', 'タロウ', '19800101',"
                        " '1', 'x')",
                        muni,
                        snap,
                        row["resident_code"],
                    )
        # An empty snapshot is fine here.
        await conn.execute(f"SELECT {publish}", snapshot_id, RELATIONSHIPS, REMOVAL_REASONS)


async def test_a_rejected_import_leaves_no_table_behind(app_pool, owner_conn, code):
    before = await owner_conn.fetchval(PARTS_TABLES)
    first = person()
    with pytest.raises(ImportRejected):
        await _import(app_pool, code, [first, person(), dict(first, household_no="x")])  # duplicate: found at publish
    with pytest.raises(ImportRejected):
        await _import(app_pool, code, [person(), person(sex="0")])  # found by the COPY
    assert await owner_conn.fetchval(PARTS_TABLES) == before


async def test_an_entitlements_snapshot_keeps_its_rows_after_a_newer_import(app_pool, code):
    """Snapshots stay immutable: a newer import adds a partition and leaves the older one as it was."""
    head = person(household_no="1")
    first = await _import(app_pool, code, [head])
    second = await _import(app_pool, code, [dict(head, address="東京都港区1-1"), person(household_no="2")])
    async with tenant_transaction(app_pool, code) as conn:
        got = await conn.fetch(
            "SELECT snapshot_id, array_agg(address ORDER BY household_no) FROM residents GROUP BY 1 ORDER BY 1"
        )
    assert [tuple(r) for r in got] == [(first, ["東京都千代田区1-1"]), (second, ["東京都港区1-1", "東京都千代田区1-1"])]


async def test_a_rejected_file_leaves_no_resident_data_in_the_server_log(app_pool, servers, code):
    """A bad value must not make PostgreSQL log the row ("Failing row contains ...", a duplicate key's DETAIL):
    the load takes every value, and kyufu_residents_publish re-raises a broken rule without the row."""
    log = ServerLog(servers)
    marker = "トクメイ" + "ヨシコ"  # appears in no other test
    first = person(given_kana=marker)
    for rows in (
        [first, person(given_kana=marker, birth_date="1980-02-30", moved_in_on="")],  # a bad date
        [first, dict(first, household_no="2")],  # a duplicate code
        [first, person(given_kana=marker, sex="0")],  # the parent's CHECK
        [first, person(household_no=first["household_no"], given_kana=marker)],
    ):  # two heads
        with pytest.raises(ImportRejected):
            await _import(app_pool, code, rows)
    written = log.written()
    assert marker not in written and first["resident_code"] not in written
    assert "breaks a line rule" in written  # the check did run and log its bare error

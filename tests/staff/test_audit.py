"""The audit trail is append-only, chained per municipality, and verification finds edits and deletions."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.staff import audit
from app.tenancy.transaction import tenant_transaction


async def _append_n(pool, code, n, actor=None):
    for i in range(n):
        async with tenant_transaction(pool, code) as conn:
            await audit.append(conn, code, actor, "test.event", "thing", i, {"i": i, "text": "改行\nと\"引用\";:"})


async def _verify(pool, code):
    async with tenant_transaction(pool, code, isolation="repeatable_read", readonly=True) as conn:
        return await audit.verify_chain(conn, code)


async def test_python_and_database_compute_the_same_hash(app_pool, municipality):
    code = await municipality()
    await _append_n(app_pool, code, 3)
    async with tenant_transaction(app_pool, code) as conn:
        rows = await conn.fetch(audit.ENTRIES, code)
        assert [r["seq"] for r in rows] == [1, 2, 3]
        assert rows[0]["prev_hash"] == audit.GENESIS
        for prev, row in zip(rows, rows[1:]):
            assert row["prev_hash"] == prev["hash"]
        for row in rows:
            assert audit.entry_hash(row) == row["hash"]
            assert await conn.fetchval("SELECT kyufu_audit_hash(a) FROM audit_log a WHERE municipality_code = $1"
                                       " AND seq = $2", code, row["seq"]) == row["hash"]
    report = await _verify(app_pool, code)
    assert report.ok and report.entries == 3


async def test_the_app_role_cannot_update_or_delete_and_the_owner_is_refused_by_the_trigger(app_pool, owner_conn, municipality):
    code = await municipality()
    await _append_n(app_pool, code, 1)
    async with app_pool.acquire() as conn:
        for sql in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with tenant_transaction(conn, code):
                    await conn.execute(sql)
    for sql in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            async with tenant_transaction(owner_conn, code):
                await owner_conn.execute(sql)


async def _tamper(servers, code, sql, *args):
    """What an attacker with superuser rights could do: bypass the trigger (and RLS) and rewrite history."""
    admin = await asyncpg.connect(servers.url_for(servers.admin_url, servers.database))
    try:
        async with admin.transaction():
            await admin.execute("SET LOCAL session_replication_role = replica")
            await admin.execute(sql, code, *args)
    finally:
        await admin.close()


async def test_verify_finds_an_edited_row(app_pool, municipality, servers):
    code = await municipality()
    await _append_n(app_pool, code, 5)
    await _tamper(servers, code, "UPDATE audit_log SET details = '{\"i\":99}' WHERE municipality_code = $1 AND seq = 3")
    report = await _verify(app_pool, code)
    assert not report.ok and report.broken_at == 3 and "改ざん" in report.reason


async def test_verify_finds_an_edited_row_whose_hash_was_recomputed(app_pool, municipality, servers):
    """Rewriting a row and its own hash still breaks the next row's link."""
    code = await municipality()
    await _append_n(app_pool, code, 5)
    await _tamper(servers, code, "UPDATE audit_log a SET details = '{}' WHERE municipality_code = $1 AND seq = 2")
    await _tamper(servers, code, "UPDATE audit_log a SET hash = kyufu_audit_hash(a) WHERE municipality_code = $1 AND seq = 2")
    report = await _verify(app_pool, code)
    assert not report.ok and report.broken_at == 3


async def test_verify_finds_a_deleted_row(app_pool, municipality, servers):
    code = await municipality()
    await _append_n(app_pool, code, 5)
    await _tamper(servers, code, "DELETE FROM audit_log WHERE municipality_code = $1 AND seq = 4")
    report = await _verify(app_pool, code)
    assert not report.ok and report.broken_at == 4 and "削除" in report.reason


async def test_concurrent_appends_do_not_fork_the_chain(app_pool, municipality):
    code, other = await municipality(), await municipality()
    await asyncio.gather(*(_append_n(app_pool, c, 10) for c in (code, code, code, other, other)))
    for c, n in ((code, 30), (other, 20)):
        report = await _verify(app_pool, c)
        assert report.ok and report.entries == n


async def test_chains_are_per_municipality(app_pool, municipality):
    a, b = await municipality(), await municipality()
    await _append_n(app_pool, a, 2)
    await _append_n(app_pool, b, 1)
    async with tenant_transaction(app_pool, b) as conn:
        rows = await conn.fetch(audit.ENTRIES, b)
    assert [r["seq"] for r in rows] == [1] and rows[0]["prev_hash"] == audit.GENESIS


async def test_export_carries_the_hashed_text(app_pool, municipality):
    import json

    code = await municipality()
    await _append_n(app_pool, code, 2)
    async with tenant_transaction(app_pool, code) as conn:
        lines = [line async for line in audit.export_lines(conn, code, "jsonl")]
        csv_lines = [line async for line in audit.export_lines(conn, code, "csv")]
    entries = [json.loads(line) for line in lines]
    assert [e["seq"] for e in entries] == [1, 2]
    assert json.loads(entries[0]["details"])["text"] == "改行\nと\"引用\";:"
    assert csv_lines[0].startswith("seq,occurred_at")

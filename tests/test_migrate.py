"""The migration runner: from zero, idempotent, refuses edited files, safe under concurrency."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import sys

import asyncpg
import pytest

from app.migrate import MIGRATIONS_DIR, MigrationError, discover, migrate
from tests.conftest import ROOT


@pytest.fixture
async def fresh_db(servers):
    """An empty database owned by kyufu_owner; yields the owner URL."""
    name = f"kyufu_mig_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(servers.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER kyufu_owner')
    finally:
        await admin.close()
    yield servers.url_for(servers.owner_url, name)
    admin = await asyncpg.connect(servers.admin_url)
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def applied_versions(url):
    conn = await asyncpg.connect(url)
    try:
        return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()


async def test_from_zero_then_second_run_is_a_no_op(fresh_db):
    expected = [m.version for m in discover()]
    assert await migrate(fresh_db) == expected
    assert await migrate(fresh_db) == []
    assert await applied_versions(fresh_db) == expected


async def test_an_edited_applied_migration_is_refused(fresh_db, tmp_path):
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    await migrate(fresh_db, copy)
    first = sorted(copy.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match=first.name):
        await migrate(fresh_db, copy)


async def test_a_failing_migration_applies_nothing_of_itself(fresh_db, tmp_path):
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    (copy / "9999_broken.sql").write_text("CREATE TABLE half_done (x int);\nSELECT 1/0;\n")
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(fresh_db, copy)
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert 9999 not in [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()


async def test_two_concurrent_cli_runs_both_succeed_with_one_application(fresh_db, subprocess_env):
    env = dict(subprocess_env, DATABASE_OWNER_URL=fresh_db)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.cli",
            "db",
            "migrate",
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    outputs = sorted(out.decode() for out, _ in results)
    assert outputs[0].startswith("applied 0 migration(s)")
    assert outputs[1].startswith(f"applied {len(discover())} migration(s)")
    assert await applied_versions(fresh_db) == [m.version for m in discover()]


def test_no_migrations_found_is_an_error_not_success(tmp_path, subprocess_env):
    """An installed package has no migrations/ beside it: `kyufu db migrate` used to apply nothing and say
    "applied 0 migration(s)" (the Docker image's migrate service would have left the database empty)."""
    import pytest

    from app.migrate import MigrationError, discover
    from tests.conftest import run_cli

    with pytest.raises(MigrationError, match="KYUFU_MIGRATIONS_DIR"):
        discover(tmp_path)
    result = run_cli(dict(subprocess_env, KYUFU_MIGRATIONS_DIR=str(tmp_path)), "db", "migrate")
    assert result.returncode == 2 and "no migrations in" in result.stderr, result.stderr

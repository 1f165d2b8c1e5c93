"""The schema in one file (issue 14, point 5).

* schema.sql is exactly what the migrations build from an empty database (tools/schema.py makes it);
* every named query of the code (a module-level UPPER_CASE string that is an SQL statement, in app/,
  payouts/ and workers/) PREPAREs against the migrated schema;
* a released migration (migrations/RELEASED.sha256) still has its released bytes, and every migration
  that is not released comes after the last released one.

Each check has a test showing it fails on a deliberately broken input.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import re
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from app.migrate import MIGRATIONS_DIR, discover
from tests.conftest import ROOT
from tools.schema import REGENERATE, SCHEMA_FILE, drift, fresh_schema, normalise, pg_dump_major, top_level_lines

# ---- schema.sql is what the migrations build ------------------------------------------------------


@pytest.fixture(scope="module")
async def migrated_from_zero(servers) -> str:
    """The normalised schema of a new database migrated from zero (made and dropped by fresh_schema; the
    session database is not used: registry imports add partitions to it)."""
    return await fresh_schema(servers.admin_url, servers.owner_url)


async def test_schema_file_is_what_the_migrations_build(servers, migrated_from_zero):
    # schema.sql is PostgreSQL 18's dump (the embedded server's). An external DATABASE_URL server of
    # another major version renders some definitions differently; CI uses the embedded one.
    conn = await asyncpg.connect(servers.admin_url)
    try:
        server_major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()
    if server_major != pg_dump_major():
        pytest.skip(f"the server is PostgreSQL {server_major}; schema.sql is a PostgreSQL {pg_dump_major()} dump")
    committed = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.exists() else ""
    message = drift(committed, migrated_from_zero)
    assert message is None, message


def test_drift_shows_a_diff_and_how_to_regenerate(migrated_from_zero):
    """The comparison fails on a stale file and says what changed and what to run."""
    stale = migrated_from_zero.replace("GRANT USAGE ON SCHEMA public TO kyufu_app;\n", "")
    assert stale != migrated_from_zero
    message = drift(stale, migrated_from_zero)
    assert message is not None
    assert REGENERATE in message
    assert "--- schema.sql (committed)" in message and "+++ schema.sql (migrations from zero)" in message
    assert "\n+GRANT USAGE ON SCHEMA public TO kyufu_app;\n" in message


async def test_a_new_migration_changes_the_fresh_schema(servers, tmp_path, migrated_from_zero):
    """The fresh schema really comes from the migrations on disk: one more migration shows in the diff."""
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    (copy / "9999_drift_probe.sql").write_text(
        "CREATE TABLE drift_probe (id int PRIMARY KEY);\nGRANT SELECT ON drift_probe TO kyufu_app;\n"
    )
    changed = await fresh_schema(servers.admin_url, servers.owner_url, copy)
    message = drift(migrated_from_zero, changed)
    assert message is not None
    assert "+CREATE TABLE public.drift_probe (" in message
    assert "+GRANT SELECT ON TABLE public.drift_probe TO kyufu_app;" in message


def test_normalise_drops_only_what_varies():
    dump = "\n".join(
        [
            "--",
            "-- PostgreSQL database dump",
            "--",
            "",
            "\\restrict AbC123randomKEY",
            "",
            "-- Dumped from database version 18.6",
            "-- Dumped by pg_dump version 18.6",
            "",
            "SET statement_timeout = 0;",
            "SELECT pg_catalog.set_config('search_path', '', false);",
            "SET client_min_messages = warning;",
            "",
            "--",
            "-- Name: f(); Type: FUNCTION; Schema: public; Owner: kyufu_owner",
            "--",
            "",
            "CREATE FUNCTION public.f() RETURNS text",
            "    LANGUAGE plpgsql",
            "    AS $_$",
            "BEGIN",
            "-- a comment of the body",
            "SET LOCAL work_mem = '1MB';",
            "",
            "",
            "  RETURN '$$ -- not a comment';",
            "END $_$;",
            "",
            "",
            "ALTER FUNCTION public.f() OWNER TO kyufu_owner;",
            "",
            "COMMENT ON FUNCTION public.f() IS 'two",
            "-- lines';",
            "",
            "GRANT ALL ON FUNCTION public.f() TO kyufu_app;",
            "",
            "--",
            "-- PostgreSQL database dump complete",
            "--",
            "",
            "\\unrestrict AbC123randomKEY",
            "",
        ]
    )
    assert normalise(dump) == "\n".join(
        [
            "CREATE FUNCTION public.f() RETURNS text",
            "    LANGUAGE plpgsql",
            "    AS $_$",
            "BEGIN",
            "-- a comment of the body",
            "SET LOCAL work_mem = '1MB';",
            "",
            "",
            "  RETURN '$$ -- not a comment';",
            "END $_$;",
            "",
            "ALTER FUNCTION public.f() OWNER TO kyufu_owner;",
            "",
            "COMMENT ON FUNCTION public.f() IS 'two",
            "-- lines';",
            "",
            "GRANT ALL ON FUNCTION public.f() TO kyufu_app;",
            "",
        ]
    )


def test_lexer_knows_literals_identifiers_and_comments():
    text = "SELECT 'a''\nb', E'c\\'\nd', \"x\"\"\ny\", $1, $q$\n$$\n$q$, /* /* \n */ \n */ 1;\nx"
    assert [top for _, top in top_level_lines(text)] == [True] + [False] * 7 + [True]


# ---- every named query prepares against the migrated schema ---------------------------------------

PACKAGES = ("app", "payouts", "workers")
_CONSTANT = re.compile(r"^_*[A-Z][A-Z0-9_]*$")
_STATEMENT = re.compile(r"^(SELECT|INSERT|UPDATE|DELETE|WITH)\b")
_TEMP_TABLE = re.compile(r"^CREATE\s+TEMP(ORARY)?\s+TABLE\b", re.IGNORECASE)
# SQL text that cannot hold a Python format field: comments, string literals, quoted identifiers, bodies.
_NOT_CODE = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$([A-Za-z_]\w*)?\$.*?\$\1\$", re.S)

# Named queries that look like complete statements but cannot be prepared on their own, each with its
# reason. An entry that prepares (or no longer exists) fails the test, so the list cannot go stale.
NOT_PREPARABLE: dict[str, str] = {}
# Modules whose named SQL is for another database, with the reason; their own tests run it there.
OTHER_DATABASES: dict[str, str] = {
    "payouts.bank": "the bank's ledger of accepted files is the bank tool's own SQLite file "
    "(tests/payouts/test_bank_ledger.py exercises it through kyufu bank verify)",
}


@dataclass(frozen=True)
class NamedSQL:
    name: str  # module.NAME
    sql: str


def _strip_leading_comments(sql: str) -> str:
    text = sql.lstrip()
    while text.startswith("--"):
        text = text.partition("\n")[2].lstrip()
    return text


def is_template(sql: str) -> bool:
    """A `{field}` outside literals and comments: a str.format template (or a fragment spliced into
    one), not a statement. Braces inside literals ('{}', '^[0-9]{11}$') are SQL's own."""
    return "{" in _NOT_CODE.sub(" ", sql)


def collect(
    root: Path = ROOT, packages: tuple[str, ...] = PACKAGES
) -> tuple[list[NamedSQL], list[NamedSQL], list[str]]:
    """(statements, temp-table setups, templates skipped): the module-level UPPER_CASE names assigned in
    each module's own source whose value (after import, so f-strings are formatted) is a str starting
    with SELECT/INSERT/UPDATE/DELETE/WITH, or CREATE TEMP TABLE (run first, so queries on a staging
    table can be prepared). Names a module merely imports are not its own and are not collected twice."""
    statements: list[NamedSQL] = []
    setups: list[NamedSQL] = []
    templates: list[str] = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            module_name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if module_name in OTHER_DATABASES:
                continue
            names = []
            for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else [node.target]
                    if isinstance(node, ast.AnnAssign) and node.value
                    else []
                )
                names += [t.id for t in targets if isinstance(t, ast.Name) and _CONSTANT.match(t.id)]
            if not names:
                continue
            module = importlib.import_module(module_name)
            for name in dict.fromkeys(names):
                value = getattr(module, name, None)
                if not isinstance(value, str):
                    continue
                head = _strip_leading_comments(value)
                item = NamedSQL(f"{module_name}.{name}", value)
                if _TEMP_TABLE.match(head):
                    setups.append(item)
                elif _STATEMENT.match(head):
                    if is_template(value):
                        templates.append(item.name)
                    else:
                        statements.append(item)
    return statements, setups, templates


async def prepare_all(url: str, statements: list[NamedSQL], setups: list[NamedSQL]) -> dict[str, str]:
    """{module.NAME: error} for every statement (or temp-table setup) that does not prepare. All in one
    transaction, rolled back: as the owner (who sees every schema; privileges are not what this checks)
    with a municipality in scope, like a request."""
    failures: dict[str, str] = {}
    conn = await asyncpg.connect(url)
    try:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("SELECT set_config('kyufu.municipality', '131016', true)")
            for item in setups:
                try:
                    async with conn.transaction():
                        # A CREATE TEMP TABLE ... AS with parameters runs with NULLs: an empty table.
                        setup = await conn.prepare(item.sql)
                        await setup.fetch(*[None] * len(setup.get_parameters()))
                except asyncpg.PostgresError as exc:
                    failures[item.name] = f"{type(exc).__name__}: {exc}"
            for item in statements:
                try:
                    async with conn.transaction():
                        await conn.prepare(item.sql)
                except asyncpg.PostgresError as exc:
                    failures[item.name] = f"{type(exc).__name__}: {exc}"
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    return failures


def _report(failures: dict[str, str]) -> str:
    return f"{len(failures)} named queries do not prepare against the migrated schema:\n" + "\n".join(
        f"  {name}: {error}" for name, error in sorted(failures.items())
    )


async def test_every_named_query_prepares(servers):
    statements, setups, _templates = collect()
    assert len(statements) > 100, "the collector found too few queries: is it looking in the right places?"
    failures = await prepare_all(servers.owner_url, statements, setups)
    unexpected = {k: v for k, v in failures.items() if k not in NOT_PREPARABLE}
    assert not unexpected, _report(unexpected)
    found = {s.name for s in statements + setups}
    stale = sorted(name for name in NOT_PREPARABLE if name not in failures or name not in found)
    assert not stale, f"NOT_PREPARABLE lists queries that now prepare or are gone; remove them: {stale}"


@pytest.fixture
def probe_package(tmp_path, monkeypatch):
    """A throwaway package of named queries, importable for collect()."""
    name = f"kyufu_sql_probe_{secrets.token_hex(4)}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "queries.py").write_text(
        "\n".join(
            [
                "from app.migrate import APPLIED  # imported: belongs to app.migrate, not collected here",
                'GOOD = "SELECT seq FROM audit_log WHERE municipality_code = $1"',
                'BROKEN = """',
                "-- a deliberately broken query: the column does not exist",
                'SELECT no_such_column FROM audit_log"""',
                '_PRIVATE_BROKEN = "UPDATE no_such_table SET x = 1"',
                'TABLE = "audit_log"',
                'FORMATTED = f"SELECT count(*) FROM {TABLE}"  # formatted at import: a complete statement',
                'TEMPLATE = "SELECT {columns} FROM audit_log"  # a str.format template: skipped',
                "LITERAL_BRACES = \"SELECT '{}'::text[], 'x' ~ '^[0-9]{11}$'\"",
                'STAGING = "CREATE TEMP TABLE probe_staging (line_no int) ON COMMIT DROP"',
                'ON_STAGING = "SELECT line_no FROM probe_staging"',
                'lower_case = "SELECT no_such_column FROM nowhere"  # not a named constant',
                "NUMBER = 3",
                'MESSAGE = "Select a municipality"',
            ]
        )
        + "\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path, name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


async def test_the_prepare_check_reports_a_broken_query(servers, probe_package):
    root, name = probe_package
    statements, setups, templates = collect(root, (name,))
    assert sorted(s.name.rsplit(".", 1)[1] for s in statements) == [
        "BROKEN",
        "FORMATTED",
        "GOOD",
        "LITERAL_BRACES",
        "ON_STAGING",
        "_PRIVATE_BROKEN",
    ]
    assert [s.name for s in setups] == [f"{name}.queries.STAGING"]
    assert templates == [f"{name}.queries.TEMPLATE"]
    failures = await prepare_all(servers.owner_url, statements, setups)
    assert sorted(failures) == [f"{name}.queries.BROKEN", f"{name}.queries._PRIVATE_BROKEN"]
    assert "UndefinedColumnError" in failures[f"{name}.queries.BROKEN"]
    assert "no_such_column" in failures[f"{name}.queries.BROKEN"]
    assert "UndefinedTableError" in failures[f"{name}.queries._PRIVATE_BROKEN"]
    assert f"{name}.queries.BROKEN: UndefinedColumnError" in _report(failures)


# ---- released migrations are never edited ----------------------------------------------------------

RELEASED_FILE = MIGRATIONS_DIR / "RELEASED.sha256"
_RELEASED_LINE = re.compile(r"^([0-9a-f]{64})  (\S+\.sql)$")


def read_released(released_file: Path = RELEASED_FILE) -> tuple[list[tuple[str, str]], list[str]]:
    """([(file name, sha256)], problems with the file's lines); '#' lines and blank lines are comments."""
    problems: list[str] = []
    listed: list[tuple[str, str]] = []
    for number, line in enumerate(released_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _RELEASED_LINE.match(line)
        if not match:
            problems.append(f"{released_file.name}:{number}: not '<sha256>  NNNN_name.sql': {line!r}")
            continue
        listed.append((match.group(2), match.group(1)))
    return listed, problems


def released_problems(directory: Path = MIGRATIONS_DIR, released_file: Path = RELEASED_FILE) -> list[str]:
    """What is wrong with the released migrations: a listed file edited, missing or listed twice or out
    of order, a malformed line, or an unlisted migration numbered at or below the last released one."""
    listed, problems = read_released(released_file)
    names = [name for name, _ in listed]
    if names != sorted(set(names)):
        problems.append(f"{released_file.name} lists migrations twice or out of order: {names}")
    for name, expected in listed:
        path = directory / name
        if not path.exists():
            problems.append(f"{name} is released but missing from {directory.name}/")
        elif (actual := hashlib.sha256(path.read_bytes()).hexdigest()) != expected:
            problems.append(
                f"{name} was edited after its release (sha256 {actual}, released {expected}): "
                "restore it and put the change in a new migration"
            )
    last = max(names, default="0000")
    for m in discover(directory):
        if m.path.name not in names and m.version <= int(last[:4]):
            problems.append(
                f"{m.path.name} is not released but numbered at or before the last released "
                f"migration {last}: a new migration goes after every released one"
            )
    return problems


def test_released_migrations_are_unchanged():
    assert RELEASED_FILE.exists()
    problems = released_problems()
    assert not problems, "\n".join(problems)


def test_the_release_check_fails_on_an_edit_a_gap_or_a_loss(tmp_path):
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    assert released_problems(copy, copy / "RELEASED.sha256") == []
    released = [copy / name for name, _ in read_released(copy / "RELEASED.sha256")[0]]
    assert released, "nothing is released"
    first, last = released[0], released[-1]

    first.write_bytes(first.read_bytes() + b"\n-- an innocent-looking edit\n")
    (copy / f"{last.name[:4]}_squeezed_in.sql").write_text("SELECT 1;\n")
    last.unlink()
    problems = "\n".join(released_problems(copy, copy / "RELEASED.sha256"))
    assert f"{first.name} was edited after its release" in problems
    assert f"{last.name} is released but missing" in problems
    assert f"{last.name[:4]}_squeezed_in.sql is not released but numbered at or before" in problems


def test_released_list_format_errors_are_reported(tmp_path):
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    with (copy / "RELEASED.sha256").open("a") as fh:
        fh.write("0001_foundation.sql deadbeef\n")
    problems = released_problems(copy, copy / "RELEASED.sha256")
    assert any("not '<sha256>  NNNN_name.sql'" in p for p in problems)

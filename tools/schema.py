"""The schema in one file: `schema.sql` at the repository root is what the migrations build from zero.

Regenerate it after adding a migration (and commit it with the migration):

    .venv/bin/python -m tools.schema --write        # writes schema.sql
    .venv/bin/python -m tools.schema                # prints it
    .venv/bin/python -m tools.schema --check        # exit 1 with a unified diff when schema.sql is stale

By default a throwaway embedded PostgreSQL (the same server and pg_dump as the test suite) is started in a
temporary directory and removed afterwards. With `--existing` it uses the server in DATABASE_ADMIN_URL (a
role that may CREATE DATABASE) and DATABASE_OWNER_URL (kyufu_owner): it creates a scratch database there,
migrates it, dumps it and drops it; nothing else on that server is touched.

Either way the steps are the same as tests/test_schema.py's drift test: an empty database owned by
kyufu_owner, app.migrate.migrate, `pg_dump --schema-only`, normalise().

Normalisation (normalise() below) removes only what varies between runs and machines or is not schema,
and only outside SQL literals, quoted identifiers and function bodies (a small lexer tracks those, so a
body's own `-- comment` or `SET` line is kept byte for byte):

* `\\restrict KEY` / `\\unrestrict KEY`: pg_dump 18 wraps its output in these with a random key per run;
* pg_dump's own comment lines: the header (`-- Dumped from database version 18.x`, `-- Dumped by pg_dump
  version`), the footer and the `-- Name: ...; Type: ...; Owner: ...` line before each object;
* the session settings of the preamble (`SET statement_timeout = 0;` ...,
  `SELECT pg_catalog.set_config('search_path', '', false);`): settings for a restore, not schema;
* runs of blank lines become one; the file ends with one newline.

pg_dump is also asked not to emit tablespace and table access method selections (`--no-tablespaces`,
`--no-table-access-method`) and no statistics. Everything else stays, in pg_dump's own (deterministic,
dependency-first) order, nothing re-sorted: ownership (`ALTER ... OWNER TO kyufu_owner`: the owner role
has a fixed name and SECURITY DEFINER functions run as it), GRANTs to kyufu_app, row-level security
(`ENABLE`/`FORCE ROW LEVEL SECURITY`, `CREATE POLICY`), COMMENT ON, triggers, constraints, indexes.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from app.migrate import MIGRATIONS_DIR, migrate
from app.services import OWNER_ROLE, _pg_bin

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "schema.sql"
REGENERATE = ".venv/bin/python -m tools.schema --write"
HEADER = (
    "-- The schema the migrations in migrations/ build from an empty database: pg_dump --schema-only,\n"
    "-- normalised (tools/schema.py says how). Generated, do not edit: after adding a migration run\n"
    f"--     {REGENERATE}\n"
    "-- and commit this file with it. tests/test_schema.py fails while it differs from a fresh migration.\n"
)
PG_DUMP_OPTIONS = ("--schema-only", "--no-tablespaces", "--no-table-access-method", "--no-statistics")


class SchemaError(RuntimeError):
    """The dump could not be made or normalised; the message says why."""


# ---- normalisation --------------------------------------------------------------------------------

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]")


def top_level_lines(text: str) -> list[tuple[str, bool]]:
    """Each line of `text` with whether it starts at SQL top level: not inside a string literal ('...',
    E'...'), a quoted identifier, a dollar-quoted body or a block comment."""
    out: list[tuple[str, bool]] = []
    state = None  # None (top level), "'", "E'", '"', "$", "/*"
    tag = ""  # the dollar quote's delimiter, e.g. "$_$"
    depth = 0  # block comment nesting
    i, n = 0, len(text)
    line_start, line_top = 0, True
    while i < n:
        c = text[i]
        if c == "\n":
            out.append((text[line_start:i], line_top))
            i += 1
            line_start, line_top = i, state is None
            continue
        if state is None:
            if text.startswith("--", i):
                j = text.find("\n", i)
                i = n if j < 0 else j
                continue
            if text.startswith("/*", i):
                state, depth = "/*", 1
                i += 2
            elif c == "'":
                escaped = i > 0 and text[i - 1] in "eE" and (i < 2 or not _IDENT_CHAR.match(text[i - 2]))
                state = "E'" if escaped else "'"
                i += 1
            elif c == '"':
                state = '"'
                i += 1
            elif c == "$" and not (i > 0 and _IDENT_CHAR.match(text[i - 1])):
                m = _DOLLAR_TAG.match(text, i)
                if m:
                    state, tag = "$", m.group(0)
                    i = m.end()
                else:
                    i += 1  # a parameter such as $1
            else:
                i += 1
        elif state == "/*":
            if text.startswith("/*", i):
                depth += 1
                i += 2
            elif text.startswith("*/", i):
                depth -= 1
                i += 2
                if depth == 0:
                    state = None
            else:
                i += 1
        elif state == "$":
            if text.startswith(tag, i):
                state = None
                i += len(tag)
            else:
                i += 1
        elif state == "E'" and c == "\\":
            i += 2
        elif state in ("'", "E'", '"'):
            quote = state[-1]
            if c == quote:
                if text.startswith(quote * 2, i):
                    i += 2
                else:
                    state = None
                    i += 1
            else:
                i += 1
        else:
            i += 1
    if line_start < n:
        out.append((text[line_start:], line_top))
    if state is not None:
        raise SchemaError(f"the dump ends inside {state!r}: not a complete SQL script")
    return out


_RESTRICT = re.compile(r"^\\(un)?restrict\b")
_SESSION_SETTING = re.compile(r"^(SET [a-z_.]+ = .*;|SELECT pg_catalog\.set_config\('search_path', '', false\);)$")


def normalise(dump: str) -> str:
    """pg_dump --schema-only output without what varies between runs and machines (module docstring)."""
    kept: list[str] = []
    for line, top in top_level_lines(dump.replace("\r\n", "\n")):
        if top:
            if line.startswith("--") or _RESTRICT.match(line) or _SESSION_SETTING.match(line):
                continue
            if not line.strip():
                if kept and kept[-1] == "":
                    continue
                line = ""
        kept.append(line)
    while kept and kept[0] == "":
        kept.pop(0)
    while kept and kept[-1] == "":
        kept.pop()
    text = "\n".join(kept) + "\n"
    leftover = [line for line, top in top_level_lines(text) if top and (_RESTRICT.match(line) or "pg_dump" in line)]
    if leftover:
        raise SchemaError(f"normalisation left pg_dump's own lines: {leftover[:3]}")
    return text


# ---- dump of a freshly migrated database ----------------------------------------------------------


def _url_with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


def pg_dump(url: str) -> str:
    """`pg_dump --schema-only` of the database in `url`, with the embedded PostgreSQL's pg_dump. The
    password goes through the environment, not the command line."""
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    args = [
        str(_pg_bin("pg_dump")),
        *PG_DUMP_OPTIONS,
        "--host",
        parts.hostname or "127.0.0.1",
        "--port",
        str(parts.port or 5432),
        "--username",
        unquote(parts.username or ""),
        "--dbname",
        unquote(parts.path.lstrip("/")),
    ]
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SchemaError(f"pg_dump failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def pg_dump_major() -> int:
    """The major version of the embedded pg_dump (and server): the one schema.sql is written by."""
    out = subprocess.run([str(_pg_bin("pg_dump")), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+)(?:\.\d+)*\s*$", out.strip())
    if not match:
        raise SchemaError(f"cannot read pg_dump's version from {out!r}")
    return int(match.group(1))


async def fresh_schema(admin_url: str, owner_url: str, migrations: Path = MIGRATIONS_DIR) -> str:
    """The normalised schema (with HEADER) of a new, empty database owned by kyufu_owner after
    app.migrate.migrate: created, migrated, dumped (as the admin role, which sees every object) and
    dropped again."""
    name = f"kyufu_schema_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
    finally:
        await admin.close()
    try:
        await migrate(_url_with_database(owner_url, name), migrations)
        dump = await asyncio.to_thread(pg_dump, _url_with_database(admin_url, name))
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    if name in dump:
        # The scratch database's random name must not become part of the file (it would never match).
        raise SchemaError(f"the dump names the scratch database {name}: a migration refers to the database itself")
    return HEADER + "\n" + normalise(dump)


def drift(committed: str, fresh: str, committed_name: str = "schema.sql") -> str | None:
    """None when the committed file is the fresh schema, else a message with the unified diff (committed
    → fresh) and the command that regenerates the file."""
    if committed == fresh:
        return None
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            fresh.splitlines(keepends=True),
            fromfile=f"{committed_name} (committed)",
            tofile=f"{committed_name} (migrations from zero)",
        )
    )
    return (
        f"{committed_name} is not what the migrations build from an empty database.\n"
        f"If the migrations are right, regenerate it with `{REGENERATE}`, review and commit it.\n\n{diff}"
    )


# ---- command line ---------------------------------------------------------------------------------


def _embedded_schema(migrations: Path = MIGRATIONS_DIR) -> str:
    from app.services import EmbeddedServices

    root = Path(tempfile.mkdtemp(prefix="kyufu-schema-"))
    services = EmbeddedServices(root, durable=False)
    try:
        services.start_postgres()
        services.bootstrap_database()
        urls = services.urls()
        return asyncio.run(fresh_schema(urls["DATABASE_ADMIN_URL"], urls["DATABASE_OWNER_URL"], migrations))
    finally:
        services.stop_postgres()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.schema", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {SCHEMA_FILE.name} (default: print to stdout)")
    mode.add_argument("--check", action="store_true", help=f"exit 1 with a diff when {SCHEMA_FILE.name} is stale")
    parser.add_argument(
        "--existing",
        action="store_true",
        help="use the server in DATABASE_ADMIN_URL/DATABASE_OWNER_URL instead of a throwaway one",
    )
    parser.add_argument(
        "--migrations",
        type=Path,
        default=MIGRATIONS_DIR,
        help="the migrations to build from (default: migrations/; e.g. a copy of only the committed ones)",
    )
    args = parser.parse_args(argv)
    if args.existing:
        try:
            admin_url, owner_url = os.environ["DATABASE_ADMIN_URL"], os.environ["DATABASE_OWNER_URL"]
        except KeyError as missing:
            parser.error(f"--existing needs {missing.args[0]} in the environment")
        schema = asyncio.run(fresh_schema(admin_url, owner_url, args.migrations))
    else:
        schema = _embedded_schema(args.migrations)
    if args.write:
        tmp = SCHEMA_FILE.with_suffix(".sql.tmp")
        tmp.write_text(schema, encoding="utf-8")
        tmp.replace(SCHEMA_FILE)
        print(f"wrote {SCHEMA_FILE.relative_to(ROOT)} ({schema.count(chr(10))} lines)", file=sys.stderr)
    elif args.check:
        committed = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.exists() else ""
        message = drift(committed, schema)
        if message:
            print(message, file=sys.stderr)
            return 1
        print(f"{SCHEMA_FILE.relative_to(ROOT)} is up to date", file=sys.stderr)
    else:
        sys.stdout.write(schema)
    return 0


if __name__ == "__main__":
    sys.exit(main())

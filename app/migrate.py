"""Apply `migrations/NNNN_name.sql` in order, each in its own transaction, as the owner role.

Safe to run from several processes at once: a session-level advisory lock serialises runners, and each
checks what is applied only after taking it. An applied file whose checksum changed is refused: the
database would no longer match what the code in this checkout expects.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every runner. 'kyufu' in ASCII.
ADVISORY_LOCK_KEY = 0x6B7975667500

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
APPLIED = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"


class MigrationError(RuntimeError):
    """The migrations on disk and in the database disagree; the message names the file."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    # An installed package (not the source tree) has no migrations beside it: say so rather than apply
    # nothing and report success (the image sets KYUFU_MIGRATIONS_DIR to its copy).
    if not directory.is_dir() or not any(directory.glob("*.sql")):
        raise MigrationError(f"no migrations in {directory}; set KYUFU_MIGRATIONS_DIR to the migrations folder")
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version} is used twice")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


async def migrate(owner_url: str, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply pending migrations; return the versions applied by this call."""
    migrations = discover(directory)
    conn = await asyncpg.connect(owner_url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        try:
            await conn.execute(CREATE_TABLE)
            applied = {r["version"]: r for r in await conn.fetch(APPLIED)}
            on_disk = {m.version for m in migrations}
            for version, row in applied.items():
                if version not in on_disk:
                    raise MigrationError(f"migration {version:04d}_{row['name']}.sql is applied but missing on disk")
            done: list[int] = []
            for m in migrations:
                if m.version in applied:
                    if applied[m.version]["checksum"] != m.checksum:
                        raise MigrationError(
                            f"{m.path.name} was edited after it was applied (checksum differs); "
                            "add a new migration instead of changing an applied one"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(RECORD, m.version, m.name, m.checksum)
                done.append(m.version)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    finally:
        await conn.close()

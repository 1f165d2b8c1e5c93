"""Test fixtures on real servers.

By default the suite starts its own embedded PostgreSQL and Valkey in a temporary directory (fsync off:
these servers hold nothing worth keeping) and removes them at the end. With DATABASE_URL set, it uses
that server instead: the URL must name a role that may CREATE DATABASE and CREATE ROLE (a server for
testing); the suite creates a fresh database and the kyufu_owner/kyufu_app roles there. REDIS_URL
likewise names an external Redis-protocol server.

Each test gets fresh municipalities (the `municipality` factory) instead of a truncated database, so tests
are independent without sharing a transaction, and concurrency tests can commit for real.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from app.migrate import migrate
from app.services import APP_ROLE, OWNER_ROLE, EmbeddedServices
from app.settings import Settings
from app.tenancy.codes import check_digit
from app.tenancy.municipalities import add_municipality

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class TestServers:
    admin_url: str
    owner_url: str
    app_url: str
    redis_url: str
    embedded: EmbeddedServices | None
    database: str

    def url_for(self, role_url: str, database: str) -> str:
        parts = urlsplit(role_url)
        return urlunsplit(parts._replace(path="/" + database))


def _with_user(url: str, user: str, password: str | None) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    auth = f"{user}:{password}@" if password else f"{user}@"
    return urlunsplit(parts._replace(netloc=f"{auth}{host}{port}"))


async def _external_setup(admin_url: str, database: str) -> tuple[str, str]:
    password = secrets.token_urlsafe(16)
    conn = await asyncpg.connect(admin_url)
    try:
        for role, extra in ((OWNER_ROLE, ""), (APP_ROLE, " NOCREATEDB NOCREATEROLE")):
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            verb = "ALTER" if exists else "CREATE"
            await conn.execute(f"{verb} ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS{extra} PASSWORD '{password}'")
        await conn.execute(f'CREATE DATABASE "{database}" OWNER {OWNER_ROLE}')
    finally:
        await conn.close()
    db_url = urlunsplit(urlsplit(admin_url)._replace(path="/" + database))
    return _with_user(db_url, OWNER_ROLE, password), _with_user(db_url, APP_ROLE, password)


@pytest.fixture(scope="session")
def servers(tmp_path_factory) -> TestServers:
    external_db = os.environ.get("DATABASE_URL")
    embedded = None
    if external_db:
        database = f"kyufu_test_{secrets.token_hex(4)}"
        owner_url, app_url = asyncio.run(_external_setup(external_db, database))
        admin_url = external_db
    else:
        root = Path(tempfile.mkdtemp(prefix="kyufu-test-"))
        embedded = EmbeddedServices(root, durable=False)
        embedded.start_postgres()
        embedded.bootstrap_database()
        urls = embedded.urls()
        admin_url, owner_url, app_url = urls["DATABASE_ADMIN_URL"], urls["DATABASE_OWNER_URL"], urls["DATABASE_URL"]
        database = "kyufu"
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        if embedded is None:
            embedded = EmbeddedServices(Path(tempfile.mkdtemp(prefix="kyufu-test-")), durable=False)
        embedded.start_valkey()
        redis_url = embedded.urls()["REDIS_URL"]
    asyncio.run(migrate(owner_url))
    yield TestServers(admin_url, owner_url, app_url, redis_url, embedded, database)
    if embedded is not None:
        embedded.destroy()


@pytest.fixture(scope="session")
def settings(servers, tmp_path_factory) -> Settings:
    data_dir = tmp_path_factory.mktemp("data")
    return Settings(
        KYUFU_ENV="test",
        KYUFU_DATA_DIR=str(data_dir),
        DATABASE_URL=servers.app_url,
        DATABASE_OWNER_URL=servers.owner_url,
        REDIS_URL=servers.redis_url,
        KYUFU_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        KYUFU_SESSION_SECRET=base64.b64encode(secrets.token_bytes(32)).decode(),
        # One duplicate key for every process on the session database: the first contribution makes it the
        # platform's current key (app/registry/duplicates.py), and any other would be refused.
        KYUFU_DUPLICATE_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        KYUFU_OUTBOX_DIR=str(data_dir / "outbox"),
    )


@pytest.fixture(scope="session")
def subprocess_env(settings) -> dict[str, str]:
    """Environment for running `python -m app.cli ...` against the test servers."""
    env = dict(os.environ)
    env.update(
        KYUFU_ENV="test",
        KYUFU_DATA_DIR=str(settings.data_dir),
        DATABASE_URL=settings.database_url,
        DATABASE_OWNER_URL=settings.database_owner_url,
        REDIS_URL=settings.redis_url,
        KYUFU_MASTER_KEY=settings.master_key,
        KYUFU_SESSION_SECRET=settings.session_secret,
        KYUFU_DUPLICATE_KEY=settings.duplicate_key,
        KYUFU_OUTBOX_DIR=str(settings.outbox_path),
    )
    return env


def run_cli(env: dict[str, str], *args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


@pytest.fixture
async def owner_conn(servers):
    conn = await asyncpg.connect(servers.owner_url)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
async def app_pool(settings):
    from app.db import create_app_pool

    pool = await create_app_pool(settings, min_size=1, max_size=10)
    yield pool
    await pool.close()


# Valid, unused municipality codes: prefectures 01-47, five-digit bodies from a per-run random offset
# (so a rerun against an external database does not collide), with the right check digit.
_code_counter = itertools.count(secrets.randbelow(400) * 100)


def next_municipality_code() -> str:
    while True:
        n = next(_code_counter)
        body = f"{n // 1000 % 47 + 1:02d}{n % 1000:03d}"
        if body not in ("13101", "13102"):  # 131016, 131024: the demo municipalities (tests/test_demo_seed.py)
            return body + check_digit(body)


@pytest.fixture
def municipality(servers, settings):
    """Factory: `await municipality()` registers a fresh municipality (with keys) and returns its code."""

    async def make(name: str = "テスト市") -> str:
        conn = await asyncpg.connect(servers.owner_url)
        try:
            code = next_municipality_code()
            await add_municipality(conn, settings.master_key_bytes, code, name)
            return code
        finally:
            await conn.close()

    return make


def pytest_collection_modifyitems(items):
    """Browser tests run last: Playwright's sync API keeps an event loop running in the main thread for
    the rest of the session (the browser fixture is session-scoped), and async tests after it would fail
    with "cannot be called from a running event loop". The sort is stable, so the order is otherwise kept."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(autouse=True)
def _fresh_staff_login_throttle(request):
    """Staff sign-in is throttled per address in Redis (app/staff/throttle.py), and every test client
    shares one address: clear the counters so one test's deliberate failures never throttle another's
    login. Tests that need no servers do not start them for this."""
    if "servers" not in request.fixturenames and not any(
        name in request.fixturenames for name in ("settings", "app_pool", "owner_conn", "municipality")
    ):
        yield
        return
    import redis as redis_sync

    from app.staff.throttle import IP_KEY

    client = redis_sync.Redis.from_url(request.getfixturevalue("servers").redis_url)
    try:
        keys = list(client.scan_iter(match=IP_KEY + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
    yield

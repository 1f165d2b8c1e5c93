"""Local mode's embedded servers authenticate every connection (issue 12, finding 8): with `trust` on
loopback any local OS user could connect as the PostgreSQL superuser and read every municipality's rows
past row-level security, or push jobs into Valkey."""

from __future__ import annotations

import stat
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis as redis_sync

from app.services import PG_SUPERUSER, EmbeddedServices, _pg_bin


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}"))


async def _refused(url: str) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(url)


async def _accepted(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT current_user")
    finally:
        await conn.close()


@pytest.fixture
def services():
    svc = EmbeddedServices(Path(tempfile.mkdtemp(prefix="kyufu-auth-")), durable=False)
    yield svc
    svc.destroy()


async def test_every_role_needs_its_generated_password(services):
    urls = services.up()
    mode = stat.S_IMODE(services.secrets_file.stat().st_mode)
    assert mode == 0o600, oct(mode)
    for key, role in (
        ("DATABASE_ADMIN_URL", PG_SUPERUSER),
        ("DATABASE_OWNER_URL", "kyufu_owner"),
        ("DATABASE_URL", "kyufu_app"),
    ):
        assert await _accepted(urls[key]) == role
        await _refused(_without_password(urls[key]))
        await _refused(urls[key].replace(urlsplit(urls[key]).password, "wrong-password"))
    # Valkey: a client without the password may not even PING.
    with pytest.raises(redis_sync.AuthenticationError):
        redis_sync.Redis(host="127.0.0.1", port=services.ports().valkey).ping()
    assert redis_sync.Redis.from_url(urls["REDIS_URL"]).ping()
    # The password is not on valkey-server's command line, which every local user can read.
    cmdline = Path(f"/proc/{services._valkey_pid()}/cmdline").read_bytes()
    assert services.passwords()["valkey"].encode() not in cmdline


async def test_a_trust_data_directory_from_before_is_converted_on_start(services):
    """A `.data/` made by an earlier kyufu (initdb --auth=trust) gets passwords the next time it starts."""
    services.pgdata.mkdir(parents=True)
    services._prepare_root_permissions()
    subprocess.run(
        [
            str(_pg_bin("initdb")),
            "-D",
            str(services.pgdata),
            "--auth=trust",
            "-U",
            PG_SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",
        ],
        check=True,
        capture_output=True,
        **services._run_as(),
    )
    with open(services.pgdata / "postgresql.conf", "a") as fh:
        fh.write(
            f"\nlisten_addresses = '127.0.0.1'\nport = {services.ports().postgres}\n"
            "unix_socket_directories = ''\nfsync = off\n"
        )
    urls = services.up()
    assert "trust" not in [
        line.split()[-1]
        for line in (services.pgdata / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    await _refused(_without_password(urls["DATABASE_ADMIN_URL"]))
    assert await _accepted(urls["DATABASE_URL"]) == "kyufu_app"
    # Started again (a second `make run`): nothing to convert, still refused without the password.
    services.stop_postgres()
    services.up()
    await _refused(_without_password(urls["DATABASE_ADMIN_URL"]))

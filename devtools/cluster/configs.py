"""The configuration files of the cluster's trusted engines (Patroni, HAProxy, Valkey Sentinel), as text.

Pure functions of the layout (ports, directories, passwords): devtools/cluster/control.py writes them and
starts the processes. The same files, with real addresses, are what docs/cluster.md maps onto machines.
"""

from __future__ import annotations

import json
from pathlib import Path

SCOPE = "kyufu"  # Patroni's cluster name in etcd
SENTINEL_MASTER = "kyufu"  # the name Sentinel knows the Valkey primary by
REPLICATION_ROLE = "replicator"
REWIND_ROLE = "rewinder"

# Patroni refuses a ttl under 20 s: a dead leader's key outlives it by up to that, which is the floor of a
# failover. loop_wait is how often a node acts; retry_timeout how long a leader that cannot reach etcd or
# PostgreSQL keeps the role (it must stay under ttl - loop_wait).
PATRONI_TTL_S = 20
PATRONI_LOOP_WAIT_S = 2
PATRONI_RETRY_TIMEOUT_S = 6


def _yaml(value: object) -> str:
    # JSON is YAML: no PyYAML needed on the side that writes, and every string is quoted.
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def patroni(
    *,
    name: str,
    rest_port: int,
    pg_port: int,
    data_dir: Path,
    bin_dir: Path,
    etcd_ports: list[int],
    passwords: dict[str, str],
) -> str:
    """One node's patroni.yml. Bootstrap settings (the `dcs` part) are taken from whichever node
    initialises the cluster first and kept in etcd; both nodes carry the same ones."""
    loopback = "127.0.0.1/32"
    config = {
        "scope": SCOPE,
        "name": name,
        "log": {"level": "INFO"},
        "restapi": {"listen": f"127.0.0.1:{rest_port}", "connect_address": f"127.0.0.1:{rest_port}"},
        "etcd3": {"hosts": [f"127.0.0.1:{p}" for p in etcd_ports]},
        "bootstrap": {
            "dcs": {
                "ttl": PATRONI_TTL_S,
                "loop_wait": PATRONI_LOOP_WAIT_S,
                "retry_timeout": PATRONI_RETRY_TIMEOUT_S,
                # A commit is acknowledged only once the synchronous standby has it (synchronous_commit on):
                # the standby Patroni promotes therefore holds every receipt a resident was given. Not
                # strict: with the standby gone the leader goes on alone (availability over a second copy,
                # which the standby regains when it rejoins); strict mode would stop every write instead.
                "synchronous_mode": True,
                "synchronous_mode_strict": False,
                # Only the synchronous standby may be promoted, so no lag limit is needed for safety.
                "maximum_lag_on_failover": 1048576,
                "postgresql": {
                    "use_pg_rewind": True,
                    "remove_data_directory_on_rewind_failure": True,
                    "parameters": {
                        "max_connections": 300,
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "wal_level": "replica",
                        "hot_standby": "on",
                        "wal_log_hints": "on",
                        "synchronous_commit": "on",
                        "shared_buffers": "128MB",
                        "max_wal_size": "2GB",
                        "timezone": "Asia/Tokyo",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, {"auth": "scram-sha-256"}],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{pg_port}",
            "connect_address": f"127.0.0.1:{pg_port}",
            "data_dir": str(data_dir),
            "bin_dir": str(bin_dir),
            "pgpass": str(data_dir.parent / "pgpass"),
            "authentication": {
                "superuser": {"username": "postgres", "password": passwords["postgres"]},
                "replication": {"username": REPLICATION_ROLE, "password": passwords[REPLICATION_ROLE]},
                "rewind": {"username": REWIND_ROLE, "password": passwords[REWIND_ROLE]},
            },
            # No Unix socket (like app/services.py): loopback TCP only, and every connection checks a password.
            "parameters": {"unix_socket_directories": ""},
            "pg_hba": [
                f"host replication {REPLICATION_ROLE} {loopback} scram-sha-256",
                f"host all all {loopback} scram-sha-256",
            ],
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }
    return _yaml(config)


def haproxy(
    *,
    pg_port: int,
    pg_nodes: list[tuple[str, int, int]],
    http_port: int,
    app_nodes: list[tuple[str, int]],
    stats_port: int,
) -> str:
    """HAProxy: `pg_port` reaches whichever PostgreSQL node Patroni's REST API calls the primary (GET
    /primary answers 200 on the leader only), and `http_port` spreads HTTP over the app nodes."""
    pg_servers = "\n".join(
        f"    server {name} 127.0.0.1:{port} maxconn 300 check port {rest}" for name, port, rest in pg_nodes
    )
    app_servers = "\n".join(f"    server {name} 127.0.0.1:{port} check" for name, port in app_nodes)
    return f"""# Written by `kyufu cluster up` (devtools/cluster/configs.py); rewritten at every start.
global
    maxconn 4000

defaults
    timeout connect 2s
    timeout client 15m
    timeout server 15m
    timeout check 1s

# The PostgreSQL leader. A node that stops answering /primary is marked down after 2 checks (2 s) and its
# sessions are cut (on-marked-down shutdown-sessions), so no client keeps talking to a deposed leader.
listen postgres_leader
    bind 127.0.0.1:{pg_port}
    mode tcp
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
{pg_servers}

# The app nodes. /healthz is liveness only: /readyz answers 503 while Redis or PostgreSQL fail over, and
# that is every node at once, which the app answers itself (a fast 503 with Retry-After).
# A request whose server vanished before it answered (connection refused, or closed with no response)
# is sent once more to another node: every write the API takes carries an Idempotency-Key or is a form
# with its own once-only token, so a replay cannot apply twice.
listen app_http
    bind 127.0.0.1:{http_port}
    mode http
    balance roundrobin
    option httpchk GET /healthz
    option forwardfor
    option redispatch
    retries 2
    retry-on conn-failure empty-response
    timeout queue 5s
    default-server inter 1s fall 2 rise 2
{app_servers}

listen stats
    bind 127.0.0.1:{stats_port}
    mode http
    stats enable
    stats uri /
"""


def sentinel(*, port: int, primary_port: int, password: str, work_dir: Path) -> str:
    """One Sentinel's configuration (Sentinel rewrites this file as it learns; it must be writable).
    Quorum 2 of 3: one sentinel alone never declares the primary dead."""
    return f"""port {port}
bind 127.0.0.1
dir {work_dir}
requirepass {password}
sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary_port} 2
sentinel auth-pass {SENTINEL_MASTER} {password}
sentinel down-after-milliseconds {SENTINEL_MASTER} 2000
sentinel failover-timeout {SENTINEL_MASTER} 10000
sentinel parallel-syncs {SENTINEL_MASTER} 1
"""

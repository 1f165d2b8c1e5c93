"""docker-compose.yml stays in step with the CLI and Settings (no Docker engine here to run it)."""

from __future__ import annotations

import re

import yaml

from app.cli import build_parser
from app.settings import Settings
from tests.conftest import ROOT


def load():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_services():
    services = load()["services"]
    assert {"postgres", "valkey", "migrate", "app", "worker"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:18")
    assert re.match(r"valkey/valkey:8|redis:7", services["valkey"]["image"])


def test_every_kyufu_command_in_compose_parses_with_the_cli():
    parser = build_parser()
    commands = [svc["command"] for svc in load()["services"].values() if svc.get("command", [None])[0] == "kyufu"]
    for hc in (svc.get("healthcheck", {}).get("test", []) for svc in load()["services"].values()):
        if len(hc) > 1 and hc[1] == "kyufu":
            commands.append(hc[1:])
    assert len(commands) >= 4
    for command in commands:
        args = parser.parse_args(command[1:])  # argparse exits (SystemExit) on an unknown command
        assert callable(args.func)


def test_compose_environment_uses_only_known_settings_and_is_production():
    aliases = {f.alias for f in Settings.model_fields.values()}
    for name in ("app", "worker", "migrate"):
        env = load()["services"][name]["environment"]
        assert env["KYUFU_ENV"] == "production"
        assert set(env) <= aliases, set(env) - aliases
        # The app connects as the non-owner role; only migrations use the owner.
        assert env["DATABASE_URL"].startswith("postgresql://kyufu_app:")
        assert env["DATABASE_OWNER_URL"].startswith("postgresql://kyufu_owner:")


def test_the_roles_script_creates_a_non_owner_app_role():
    script = (ROOT / "deploy" / "postgres-init.sh").read_text()
    assert "CREATE ROLE kyufu_app LOGIN NOSUPERUSER NOBYPASSRLS" in script
    assert "CREATE DATABASE kyufu OWNER kyufu_owner" in script


def test_only_the_app_port_is_published_and_metrics_stay_private():
    """Issue 12: /metrics names municipalities; it is exposed on the compose network, never published."""
    services = load()["services"]
    published = {name: svc.get("ports", []) for name, svc in services.items() if svc.get("ports")}
    assert published == {"app": ["8000:8000"]}
    assert services["app"]["environment"]["KYUFU_METRICS_PORT"] == "9100" in services["app"]["expose"]
    assert services["worker"]["environment"]["KYUFU_WORKER_METRICS_PORT"] == "9101" in services["worker"]["expose"]


def test_valkey_requires_the_password_the_app_uses():
    services = load()["services"]
    assert "--requirepass" in " ".join(services["valkey"]["command"])
    assert services["app"]["environment"]["REDIS_URL"].startswith("redis://:${KYUFU_VALKEY_PASSWORD")

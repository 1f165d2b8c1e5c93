"""Production refuses to start without explicit settings, naming what is missing."""

from __future__ import annotations

import pytest

from app.settings import SettingsError, load_settings
from tests.conftest import run_cli

REQUIRED = ["DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL", "KYUFU_MASTER_KEY", "KYUFU_SESSION_SECRET"]
FULL = {
    "KYUFU_ENV": "production",
    "DATABASE_URL": "postgresql://app@db/kyufu",
    "DATABASE_OWNER_URL": "postgresql://owner@db/kyufu",
    "REDIS_URL": "redis://valkey:6379/0",
    "KYUFU_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    "KYUFU_SESSION_SECRET": "s" * 32,
}


@pytest.mark.parametrize("missing", REQUIRED)
def test_production_names_the_missing_variable(monkeypatch, missing):
    for k, v in FULL.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv(missing)
    with pytest.raises(SettingsError, match=missing):
        load_settings()


def test_complete_production_settings_load(monkeypatch):
    for k, v in FULL.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert s.production and len(s.master_key_bytes) == 32


def test_cli_refuses_to_serve_in_production_without_settings(subprocess_env):
    env = {k: v for k, v in subprocess_env.items() if k not in REQUIRED}
    env["KYUFU_ENV"] = "production"
    result = run_cli(env, "serve")
    assert result.returncode == 2
    for name in REQUIRED:
        assert name in result.stderr


def test_a_second_kyufu_run_on_one_data_directory_is_refused_before_it_touches_anything(subprocess_env, tmp_path):
    """Issue 18, point 13: a second `kyufu run` would use the first one's servers and stop them on Ctrl-C."""
    import fcntl

    env = dict(subprocess_env, KYUFU_DATA_DIR=str(tmp_path), KYUFU_PORT="8102")
    with open(tmp_path / "run.lock", "w") as held:  # the first `kyufu run`
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli(env, "run")
    assert result.returncode == 2 and "別の kyufu run" in result.stderr and str(tmp_path) in result.stderr
    # No server was started: the embedded servers keep their data and secrets in directories and secrets.json.
    assert not [p.name for p in tmp_path.iterdir() if p.is_dir() or p.name == "secrets.json"]


def test_kyufu_run_takes_its_port_from_kyufu_port_unless_given():
    from app.cli import build_parser, run_port
    from app.settings import Settings

    settings = Settings(KYUFU_ENV="test", KYUFU_PORT=8102)
    assert run_port(build_parser().parse_args(["run"]), settings) == 8102
    assert run_port(build_parser().parse_args(["run", "--port", "9000"]), settings) == 9000

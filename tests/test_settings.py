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

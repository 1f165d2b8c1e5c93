"""The one Settings object. Built once at each entry point (CLI command, app factory, worker) and passed
down; nothing imports a global settings instance.

In local mode (the default) anything not given is filled from the embedded services' state file and a
master key generated into the data directory. In production every secret and address must be explicit.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """The configuration is incomplete or inconsistent; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    env: Literal["local", "test", "production"] = Field("local", alias="KYUFU_ENV")
    data_dir: Path = Field(Path(".data"), alias="KYUFU_DATA_DIR")

    # The app and workers connect as the non-owner role; migrations use the owner.
    database_url: str | None = Field(None, alias="DATABASE_URL")
    database_owner_url: str | None = Field(None, alias="DATABASE_OWNER_URL")
    redis_url: str | None = Field(None, alias="REDIS_URL")
    # base64 of 32 random bytes: wraps every municipality's data and signing keys.
    master_key: str | None = Field(None, alias="KYUFU_MASTER_KEY", repr=False)
    # base64 of 32 random bytes: the platform key of the hashes municipalities contribute to find
    # cross-municipality duplicates (app/registry/duplicates.py). Held like the master key; generated in
    # local mode; in production needed by what hashes (eligibility of a program with a national scheme,
    # `kyufu registry duplicates ...`) and by the console to name the matched household member.
    duplicate_key: str | None = Field(None, alias="KYUFU_DUPLICATE_KEY", repr=False)

    host: str = Field("127.0.0.1", alias="KYUFU_HOST")
    port: int = Field(8000, alias="KYUFU_PORT")
    db_pool_min: int = Field(2, alias="KYUFU_DB_POOL_MIN")
    db_pool_max: int = Field(20, alias="KYUFU_DB_POOL_MAX")
    # Seconds after which an outbox row that has not been marked done is enqueued again.
    outbox_retry_after_s: int = Field(60, alias="KYUFU_OUTBOX_RETRY_AFTER_S")
    # Verification jobs decide up to this many applications of a municipality at once (app/outbox.py),
    # gathered for at most verify_batch_linger_ms after a submit commits (app/intake/web/batcher.py).
    verify_batch_size: int = Field(250, alias="KYUFU_VERIFY_BATCH_SIZE", ge=1, le=5000)
    verify_batch_linger_ms: int = Field(500, alias="KYUFU_VERIFY_BATCH_LINGER_MS", ge=0, le=60_000)
    # Admission control (app/web/admission.py): requests in flight per process before a fast 503.
    max_in_flight: int = Field(64, alias="KYUFU_MAX_IN_FLIGHT")
    # The limit adapts below max_in_flight (never under admission_min_in_flight) to keep the 90th
    # percentile of admitted requests' time in this process under admission_target_ms.
    admission_target_ms: int = Field(100, alias="KYUFU_ADMISSION_TARGET_MS", ge=1)
    admission_min_in_flight: int = Field(4, alias="KYUFU_ADMISSION_MIN_IN_FLIGHT", ge=1)
    busy_retry_after_s: int = Field(60, alias="KYUFU_BUSY_RETRY_AFTER_S")
    # Once the process is half full, one client address may hold at most this many requests (429 past it).
    max_in_flight_per_client: int = Field(8, alias="KYUFU_MAX_IN_FLIGHT_PER_CLIENT", ge=1)
    # A request body must arrive whole within this many seconds (408 past it), before it is admitted.
    body_timeout_s: float = Field(10.0, alias="KYUFU_BODY_TIMEOUT_S", gt=0)
    # Bodies one client address may be sending at once (429 past it).
    max_pending_bodies_per_client: int = Field(16, alias="KYUFU_MAX_PENDING_BODIES_PER_CLIENT", ge=1)
    # Addresses of the reverse proxies whose X-Forwarded-For is believed (comma-separated, uvicorn's
    # forwarded_allow_ips); empty: none, the peer's address is the client's.
    forwarded_allow_ips: str = Field("", alias="KYUFU_FORWARDED_ALLOW_IPS")
    # Where `kyufu serve` serves /metrics: a separate listener, never the public port (empty: no metrics).
    metrics_host: str = Field("127.0.0.1", alias="KYUFU_METRICS_HOST")
    metrics_port: int | None = Field(None, alias="KYUFU_METRICS_PORT")
    # Secret for session cookies and CSRF tokens (generated in local mode).
    session_secret: str | None = Field(None, alias="KYUFU_SESSION_SECRET", repr=False)
    # Port of the worker's Prometheus endpoint (unset: none).
    worker_metrics_port: int | None = Field(None, alias="KYUFU_WORKER_METRICS_PORT")
    json_logs: bool = Field(True, alias="KYUFU_JSON_LOGS")
    # Where released (encrypted) bank files are written, one sub-directory per municipality.
    outbox_dir: Path | None = Field(None, alias="KYUFU_OUTBOX_DIR")
    # With several worker nodes, the bank's drop directory (its transport's inbox): released files are then
    # kept in PostgreSQL with the release and delivered here by any worker (payouts/delivery.py). Unset: the
    # bank picks the files up from the outbox directory (one machine).
    bank_drop_dir: Path | None = Field(None, alias="KYUFU_BANK_DROP_DIR")
    # The migrations folder (default: migrations/ of the source tree; an installed image sets its copy).
    migrations_dir: Path | None = Field(None, alias="KYUFU_MIGRATIONS_DIR")

    @model_validator(mode="after")
    def _production_is_explicit(self) -> Settings:
        if self.env == "production":
            required = {
                "DATABASE_URL": self.database_url,
                "DATABASE_OWNER_URL": self.database_owner_url,
                "REDIS_URL": self.redis_url,
                "KYUFU_MASTER_KEY": self.master_key,
                "KYUFU_SESSION_SECRET": self.session_secret,
            }
            missing = [name for name, value in required.items() if not value]
            if missing:
                raise ValueError("KYUFU_ENV=production requires explicit settings; missing: " + ", ".join(missing))
        return self

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def master_key_bytes(self) -> bytes:
        assert self.master_key, "resolve_local() fills the master key outside production"
        key = base64.b64decode(self.master_key)
        if len(key) != 32:
            raise SettingsError("KYUFU_MASTER_KEY must be base64 of exactly 32 bytes")
        return key

    @property
    def duplicate_key_bytes(self) -> bytes:
        if not self.duplicate_key:
            raise SettingsError(
                "KYUFU_DUPLICATE_KEY is not set: cross-municipality duplicate matching needs it (base64 of 32 bytes)"
            )
        key = base64.b64decode(self.duplicate_key)
        if len(key) != 32:
            raise SettingsError("KYUFU_DUPLICATE_KEY must be base64 of exactly 32 bytes")
        return key

    @property
    def outbox_path(self) -> Path:
        return self.outbox_dir or (self.data_dir / "outbox")


def load_settings(**overrides) -> Settings:
    """Build Settings from the environment (and overrides), filling local defaults.

    Raises SettingsError naming every missing variable in production mode.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        messages = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
        raise SettingsError(messages) from None
    if settings.production:
        return settings
    return resolve_local(settings)


def resolve_local(settings: Settings) -> Settings:
    """Fill what local mode may generate: URLs from the embedded services and keys under data_dir."""
    data_dir = settings.data_dir.resolve()
    updates: dict[str, object] = {"data_dir": data_dir}
    state = data_dir / "services.json"
    if state.exists() and not settings.database_url:
        from app.services import EmbeddedServices

        urls = EmbeddedServices(data_dir).urls()
        updates["database_url"] = urls["DATABASE_URL"]
        updates["database_owner_url"] = settings.database_owner_url or urls["DATABASE_OWNER_URL"]
        updates["redis_url"] = settings.redis_url or urls["REDIS_URL"]
    if not settings.master_key:
        updates["master_key"] = _local_secret(data_dir / "master.key")
    if not settings.session_secret:
        updates["session_secret"] = _local_secret(data_dir / "session.key")
    if not settings.duplicate_key:
        updates["duplicate_key"] = _local_secret(data_dir / "duplicate.key")
    return settings.model_copy(update=updates)


def _local_secret(path: Path) -> str:
    """A 32-byte secret kept in a 0600 file, generated on first use (local mode only)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = base64.b64encode(secrets.token_bytes(32)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def require(value: str | None, name: str) -> str:
    """Return a setting that an operation needs, or fail with the variable's name."""
    if not value:
        raise SettingsError(f"{name} is not set. Run `kyufu services up` (local) or export {name}.")
    return value


def dump_env(urls: dict[str, str]) -> str:
    return "\n".join(f"export {k}={json.dumps(v)}" for k, v in urls.items())

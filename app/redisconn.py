"""The one place that turns REDIS_URL into clients: the app's arq client (sessions, limits, enqueueing)
and the worker's.

Two forms of REDIS_URL:

* `redis://:PASSWORD@HOST:PORT/DB` — one Valkey/Redis server (local development, docker-compose.yml);
* `redis+sentinel://:PASSWORD@HOST1:PORT1,HOST2:PORT2,HOST3:PORT3/MASTER/DB` — the Sentinels of a
  replicated Valkey (the cluster, docs/cluster.md): every connection asks them which server is the primary
  now, so after a failover the clients follow the promoted replica by themselves.

The password is the primary's and also the Sentinels' own (`requirepass` on each Sentinel): a Sentinel
that answers anyone can be told to fail over, or report where the data lives. arq's own Sentinel support
(RedisSettings(sentinel=True)) sends no password to the Sentinels, hence this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from arq.connections import ArqRedis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError, ReadOnlyError, TimeoutError as RedisTimeoutError

from app.settings import SettingsError

SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    password: str | None


def sentinel_target(url: str) -> SentinelTarget | None:
    """The Sentinel form of REDIS_URL parsed, or None for a plain redis:// URL. A malformed Sentinel URL
    is a SettingsError naming REDIS_URL (never echoing it: it carries the password)."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return None
    hosts = parts.netloc.rpartition("@")[2]
    password = parts.netloc.rpartition("@")[0].partition(":")[2] if "@" in parts.netloc else ""
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise SettingsError("REDIS_URL: redis+sentinel:// needs HOST:PORT for every Sentinel, comma-separated")
        sentinels.append((host, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise SettingsError("REDIS_URL: redis+sentinel:// needs /MASTER or /MASTER/DB after the Sentinels")
    return SentinelTarget(
        sentinels=tuple(sentinels),
        master=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        password=unquote(password) or None,
    )


class _SentinelArqRedis(ArqRedis):
    """An arq client on a Sentinel-managed pool that also closes its connections to the Sentinels."""

    sentinel_client: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_client is not None:
            for client in self.sentinel_client.sentinels:
                await client.aclose()


def arq_client(url: str, *, connect_timeout_s: float = 1, timeout_s: float = 2, failover_retries: int = 0) -> ArqRedis:
    """An arq client that connects lazily (the app must start, and take applications, while Valkey is
    down: the outbox keeps the jobs). With Sentinel, each new connection goes to the current primary, and
    a connection to a demoted one is dropped on its first READONLY answer.

    `failover_retries`: how many times a command that met a dead or demoted server asks the Sentinels
    again (backing off up to 0.5 s), riding through a failover (a few seconds). The worker wants that: arq's
    poll loop ends the process on the first connection error. The app does not: a request must not wait
    for a failover (its Redis uses fail fast and the outbox keeps the jobs)."""
    target = sentinel_target(url)
    if target is None:
        # from_url makes the client own its pool, so aclose() closes the connections too.
        return ArqRedis.from_url(url, socket_connect_timeout=connect_timeout_s, socket_timeout=timeout_s)
    timeouts = {"socket_connect_timeout": connect_timeout_s, "socket_timeout": timeout_s}
    retry = {}
    if failover_retries:
        retry = {
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.1), failover_retries),
            "retry_on_error": [RedisConnectionError, RedisTimeoutError, ReadOnlyError],
        }
    sentinel = Sentinel(
        list(target.sentinels),
        sentinel_kwargs={"password": target.password, **timeouts},
        password=target.password,
        db=target.db,
        **timeouts,
        **retry,
    )
    client = sentinel.master_for(target.master, redis_class=_SentinelArqRedis)
    client.sentinel_client = sentinel
    return client

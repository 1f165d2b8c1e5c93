"""REDIS_URL through Sentinel (app/redisconn.py): the URL form, and a real Sentinel (valkey-server
--sentinel) with its own password in front of the suite's Valkey, through which the app's client and the
worker's settings reach the primary."""

from __future__ import annotations

import socket
import subprocess
import time
from urllib.parse import urlsplit

import pytest
from redis.asyncio.sentinel import MasterNotFoundError

from app.redisconn import SentinelTarget, arq_client, sentinel_target
from app.services import _free_port, _valkey_bin
from app.settings import SettingsError
from workers.settings import worker_settings


def test_plain_url_is_not_sentinel():
    assert sentinel_target("redis://:pw@127.0.0.1:6379/0") is None


def test_sentinel_url_names_sentinels_master_db_and_password():
    url = "redis+sentinel://:p%40ss@10.0.0.1:26379,10.0.0.2:26380/kyufu/3"
    assert sentinel_target(url) == SentinelTarget((("10.0.0.1", 26379), ("10.0.0.2", 26380)), "kyufu", 3, "p@ss")
    assert sentinel_target("redis+sentinel://h:1/kyufu").db == 0


@pytest.mark.parametrize(
    "url", ["redis+sentinel://:pw@h1,h2:2/kyufu/0", "redis+sentinel://:pw@h:1/", "redis+sentinel://:pw@h:1/m/x"]
)
def test_malformed_sentinel_url_is_refused_without_echoing_it(url):
    with pytest.raises(SettingsError) as caught:
        sentinel_target(url)
    assert "REDIS_URL" in str(caught.value) and "pw" not in str(caught.value)


@pytest.fixture
def sentinel(servers, tmp_path):
    """One Sentinel (quorum 1) watching the suite's Valkey, with requirepass set to the same password."""
    target = urlsplit(servers.redis_url)
    port = _free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\nrequirepass {target.password}\n"
        f"sentinel monitor kyufu 127.0.0.1 {target.port} 1\nsentinel auth-pass kyufu {target.password}\n"
    )
    proc = subprocess.Popen([str(_valkey_bin()), str(conf), "--sentinel"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sentinel did not start"
                time.sleep(0.05)
        yield f"redis+sentinel://:{target.password}@127.0.0.1:{port}/kyufu/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_app_client_reaches_the_primary_through_sentinel(sentinel, servers):
    key = f"kyufu-test-sentinel-{time.time_ns()}"
    client = arq_client(sentinel)
    try:
        await client.set(key, "1", ex=60)
    finally:
        await client.aclose()
    plain = arq_client(servers.redis_url)  # the same server, asked directly
    try:
        assert await plain.get(key) == b"1"
    finally:
        await plain.aclose()


async def test_sentinel_refuses_a_client_without_its_password(sentinel):
    wrong = sentinel.replace("redis+sentinel://:", "redis+sentinel://:wrong")
    client = arq_client(wrong)
    try:
        with pytest.raises(MasterNotFoundError) as caught:
            await client.ping()
        assert "AuthenticationError" in str(caught.value)  # the Sentinel refused it, not the primary
    finally:
        await client.aclose()


async def test_worker_takes_a_sentinel_client_as_its_pool(sentinel, settings):
    kwargs = worker_settings(settings.model_copy(update={"redis_url": sentinel}))
    assert "redis_settings" not in kwargs
    pool = kwargs["redis_pool"]
    try:
        assert await pool.ping()
    finally:
        await pool.aclose()

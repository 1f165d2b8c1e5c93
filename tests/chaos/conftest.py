"""The `cluster` fixture: a private harness.Cluster with one municipality (harness.CODE) and a test-side
app-role pool on it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.db import create_app_pool
from app.tenancy.municipalities import add_municipality
from tests.chaos.harness import CODE, Cluster


@pytest.fixture
async def cluster():
    c = Cluster(outbox_retry_after_s=2)
    try:
        await asyncio.to_thread(c.start)
        conn = await asyncpg.connect(c.settings.database_owner_url)
        try:
            await add_municipality(conn, c.settings.master_key_bytes, CODE, "千代田区（カオス）")
        finally:
            await conn.close()
        c.pool = await create_app_pool(c.settings, min_size=1, max_size=4)
        yield c
        await c.pool.close()
    finally:
        await asyncio.to_thread(c.close)

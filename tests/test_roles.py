"""The app refuses to serve through a role that row-level security would not restrict."""

from __future__ import annotations

import secrets

import asyncpg
import pytest
from starlette.testclient import TestClient

from app.db import UnsafeDatabaseRole, check_app_role, create_app_pool
from app.main import create_app


async def test_the_app_role_is_accepted(settings):
    pool = await create_app_pool(settings, min_size=1, max_size=1)
    await pool.close()


@pytest.mark.parametrize("which,reason", [("owner", "owns"), ("admin", "superuser")])
async def test_owner_and_superuser_are_refused(servers, settings, which, reason):
    url = servers.owner_url if which == "owner" else servers.url_for(servers.admin_url, servers.database)
    with pytest.raises(UnsafeDatabaseRole, match=reason):
        await create_app_pool(settings.model_copy(update={"database_url": url}), min_size=1, max_size=1)


async def test_bypassrls_and_owner_membership_are_refused(servers):
    admin = await asyncpg.connect(servers.url_for(servers.admin_url, servers.database))
    bypass, member = f"t_bypass_{secrets.token_hex(3)}", f"t_member_{secrets.token_hex(3)}"
    try:
        await admin.execute(f"CREATE ROLE {bypass} LOGIN BYPASSRLS")
        await admin.execute(f"CREATE ROLE {member} LOGIN IN ROLE kyufu_owner")
        for role, reason in ((bypass, "BYPASSRLS"), (member, "owns")):
            await admin.execute(f"SET ROLE {role}")
            with pytest.raises(UnsafeDatabaseRole, match=reason):
                await check_app_role(admin)
            await admin.execute("RESET ROLE")
    finally:
        await admin.execute("RESET ROLE")
        await admin.execute(f"DROP ROLE {bypass}")
        await admin.execute(f"DROP ROLE {member}")
        await admin.close()


def test_app_startup_refuses_the_owner_role(servers, settings):
    app = create_app(settings.model_copy(update={"database_url": servers.owner_url}))
    with pytest.raises(UnsafeDatabaseRole):
        with TestClient(app):
            pass

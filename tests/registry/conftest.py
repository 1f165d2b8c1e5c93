from __future__ import annotations

import pytest

from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction


@pytest.fixture
async def code(municipality) -> str:
    return await municipality()


@pytest.fixture
async def cipher(app_pool, settings, code):
    async with tenant_transaction(app_pool, code) as conn:
        return await load_field_cipher(conn, settings.master_key_bytes, code)

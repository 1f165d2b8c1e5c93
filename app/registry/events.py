"""The registry's append-only event log (imports, eligibility runs, letters, declines, push settlement).

`record_event` is the one function that writes it; the lead can point it at the platform audit log
(migration 0005) by changing only this module. Details carry ids and counts, never personal data.
"""

from __future__ import annotations

import json

import asyncpg

INSERT_EVENT = """
INSERT INTO registry_events (municipality_code, actor, action, details) VALUES ($1, $2, $3, $4::jsonb)
"""


async def record_event(conn: asyncpg.Connection, code: str, actor: str, action: str, details: dict) -> None:
    """Append one event inside the caller's tenant transaction (so it commits or rolls back with the effect)."""
    await conn.execute(INSERT_EVENT, code, actor, action, json.dumps(details, ensure_ascii=False, default=str))

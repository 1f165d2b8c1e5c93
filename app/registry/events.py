"""Registry actions (imports, eligibility runs, letters, declines, push settlement) go into the one
hash-chained audit trail of the municipality (app/audit.py, migration 0005), next to staff actions,
so `kyufu audit verify` covers them too. Details carry ids and counts, never personal data.
"""

from __future__ import annotations

import asyncpg

from app import audit


async def record_event(conn: asyncpg.Connection, code: str, actor: str, action: str, details: dict) -> None:
    """Append one entry inside the caller's tenant transaction (so it commits or rolls back with the effect).

    `actor` is a label (a CLI operator, 'system', a job name): registry actions are not staff sessions.
    """
    await audit.append(conn, code, None, action, details=details, actor_label=actor)

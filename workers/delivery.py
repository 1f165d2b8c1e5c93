"""Job `deliver_file` (payouts/delivery.py): a released file kept in PostgreSQL goes to the bank's drop
directory from whichever worker node runs it, so the file does not depend on the node that sealed it."""

from __future__ import annotations

from typing import Any

from payouts import delivery


async def deliver_file(ctx: dict[str, Any], code: str, batch_id: int) -> str:
    return await delivery.deliver(ctx["pool"], ctx["settings"], code, batch_id)


JOBS: list = [deliver_file]

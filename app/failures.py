"""Counting failed sign-ins per address in Redis, for the resident (app/intake/signin.py) and staff
(app/staff/throttle.py) limits: one counter per key whose window starts at the first failure (EXPIRE NX)
and is not extended by later ones. Both limits fail open when Redis is down (documented where each is
checked); a failure to count is logged by exception type only, never with the address."""

from __future__ import annotations

import logging


async def count_failure(redis, key: str, window_s: int, log: logging.Logger, what: str) -> None:
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window_s, nx=True)
            await pipe.execute()
    except Exception as exc:  # Redis unavailable: fail open, logged by type only
        log.warning("%s unavailable (%s)", what, type(exc).__name__)

"""Per-address throttling of staff sign-in, in Redis, on top of the per-account lockout in the database.

The lockout stops guessing one account's password; this stops one address from guessing across many
logins (or municipalities). Past IP_MAX_FAILURES failed sign-ins within IP_WINDOW_S of the first one, the
address gets the usual failure message with 429 and the password is not even checked, until the window
ends. If Redis is down this fails open: the per-account lockout still holds, and refusing every staff
sign-in would stop the benefit's operation.
"""

from __future__ import annotations

import logging

from app.failures import count_failure

log = logging.getLogger("kyufu.staff")

IP_KEY = "kyufu:staff-login-fail:"
IP_MAX_FAILURES = 20
IP_WINDOW_S = 10 * 60


async def blocked_for(redis, ip: str) -> int:
    """Seconds until `ip` may try again (0: not throttled, or Redis unavailable)."""
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(IP_KEY + ip)
            pipe.ttl(IP_KEY + ip)
            count, ttl = await pipe.execute()
    except Exception as exc:  # Redis unavailable: documented fail-open, logged by type only
        log.warning("staff sign-in throttle unavailable (%s)", type(exc).__name__)
        return 0
    if count is None or int(count) < IP_MAX_FAILURES:
        return 0
    return ttl if ttl and ttl > 0 else IP_WINDOW_S


async def record_failure(redis, ip: str) -> None:
    """Count a failed sign-in; the window starts at the first failure (EXPIRE NX) and is not extended."""
    await count_failure(redis, IP_KEY + ip, IP_WINDOW_S, log, "staff sign-in throttle")

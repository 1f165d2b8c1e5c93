"""Limits on staff sign-in that slow a guesser down without letting them lock the owner out.

A hard lock after N failures (what the console had: 5 failures, 15 minutes) is a weapon: anyone who knows
or guesses a login such as "approver" keeps that person out for as long as they like. Following OWASP's
"Slow down online guessing attacks with device cookies", failures are counted per *path* to an account:

* the **untrusted path** of a login: any browser without a device cookie of the account. Its count is
  keyed by an HMAC of (municipality, login), whether the login exists or not, so the screen behaves the
  same for a made-up login as for a real one, and what guessers type is never stored;
* each **trusted device**: a browser the account signed in from before. After every successful sign-in it
  gets a signed cookie naming (municipality, staff_id, random device id); the server keeps the SHA-256 of
  the id, so an admin can revoke it. Failures there are counted on that device alone.

A path that keeps failing waits before its next attempt (`delay_after`), and attempts during the wait are
refused without checking the password, so they cost no argon2 time and teach nothing. A guesser without
the device cookie only ever slows the untrusted path; the owner at their known browser signs in at once.
The per-address limit (app/staff/throttle.py) sits on top, for one address guessing across many logins.

Every function runs inside the caller's tenant_transaction. The login HMAC key is derived from the
municipality's data key (like the resident identity lockout, app/intake/identity.py); the device cookie
is signed with the console's session-secret key (app/staff/web/signin._device_key), passed in as `secret`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache

import asyncpg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Failures in a row that cost nothing (typos); from the next one on, the wait doubles from 1 s up to
# DELAY_CAP_S. A guesser gets about 15 tries in the first 17 minutes and then 4 an hour (under 100 a
# day against an argon2id password plus TOTP for approvers), where the old lock allowed 480 a day and
# locked the owner out meanwhile; an owner who mistypes on a new browser waits seconds, not minutes.
FREE_FAILURES = 4
DELAY_CAP_S = 15 * 60
# A count whose last failure is this old starts again at one: a few typos a month never add up.
FORGET_AFTER_S = 24 * 60 * 60
DEVICE_COOKIE = "kyufu_staff_device"
# A device unused for this long is no longer trusted (the cookie's max-age is the same).
DEVICE_IDLE_DAYS = 180
# Device entries one browser keeps (a shared office PC used by several staff members).
MAX_DEVICE_ENTRIES = 5
_MAX_COOKIE_CHARS = 2000
_ENTRY = re.compile(r"(\d{6})\.([1-9][0-9]{0,17})\.([A-Za-z0-9_-]{32})\.([A-Za-z0-9_-]{43})")

# Concurrent attempts on one login's untrusted path are serialised (held to commit): without it, a burst
# of parallel guesses sent the moment a wait ends would each read the count from before the others'
# failures and all be checked. Taken for logins that do not exist too, so both queue the same way.
LOCK_LOGIN = "SELECT pg_advisory_xact_lock(hashtextextended('kyufu_staff_signin:' || $1 || ':' || $2, 0))"
_STATE = f"""failures, last_failed_at > now() - make_interval(secs => {FORGET_AFTER_S}) AS recent,
       greatest(0, ceil(extract(epoch FROM delayed_until - now())))::int AS wait_s"""
LOGIN_TRACK = f"""
SELECT {_STATE}
FROM staff_signin_failures WHERE municipality_code = $1 AND login_hmac = $2
FOR UPDATE
"""
LOGIN_FAILED = """
INSERT INTO staff_signin_failures AS f
    (municipality_code, login_hmac, staff_id, failures, last_failed_at, delayed_until)
VALUES ($1, $2, $3, $4, now(), CASE WHEN $5::int > 0 THEN now() + make_interval(secs => $5::int) END)
ON CONFLICT (municipality_code, login_hmac) DO UPDATE
SET staff_id = EXCLUDED.staff_id, failures = EXCLUDED.failures, last_failed_at = EXCLUDED.last_failed_at,
    delayed_until = EXCLUDED.delayed_until
"""
# Made-up logins leave rows behind: each failure removes a few that nobody tried for a day. SKIP LOCKED:
# a row whose login is being tried right now is left for later instead of waited for (two failures
# cleaning up each other's rows would otherwise deadlock).
FORGET_OLD = f"""
DELETE FROM staff_signin_failures WHERE (municipality_code, login_hmac) IN (
    SELECT municipality_code, login_hmac FROM staff_signin_failures
    WHERE municipality_code = $1 AND last_failed_at < now() - make_interval(secs => {FORGET_AFTER_S})
    LIMIT 20 FOR UPDATE SKIP LOCKED)
"""
LOGIN_OK = "DELETE FROM staff_signin_failures WHERE municipality_code = $1 AND login_hmac = $2"
DEVICE_TRACK = f"""
SELECT {_STATE}
FROM staff_devices
WHERE municipality_code = $1 AND staff_id = $2 AND device_sha256 = $3 AND revoked_at IS NULL
  AND last_used_at > now() - make_interval(days => {DEVICE_IDLE_DAYS})
FOR UPDATE
"""
DEVICE_FAILED = """
UPDATE staff_devices SET failures = $4, last_failed_at = now(),
       delayed_until = CASE WHEN $5::int > 0 THEN now() + make_interval(secs => $5::int) END
WHERE municipality_code = $1 AND staff_id = $2 AND device_sha256 = $3
"""
DEVICE_OK = """
UPDATE staff_devices SET failures = 0, delayed_until = NULL, last_used_at = now()
WHERE municipality_code = $1 AND staff_id = $2 AND device_sha256 = $3
"""
NEW_DEVICE = "INSERT INTO staff_devices (municipality_code, staff_id, device_sha256) VALUES ($1, $2, $3)"
REVOKE_DEVICES = """
UPDATE staff_devices SET revoked_at = now()
WHERE municipality_code = $1 AND staff_id = $2 AND revoked_at IS NULL
"""
# Admin "unlock": ends the waits of every path to the account (the counts start again).
CLEAR = "DELETE FROM staff_signin_failures WHERE municipality_code = $1 AND staff_id = $2"
CLEAR_DEVICES = """
UPDATE staff_devices SET failures = 0, delayed_until = NULL
WHERE municipality_code = $1 AND staff_id = $2 AND (failures > 0 OR delayed_until IS NOT NULL)
"""


def delay_after(failures: int) -> int:
    """Seconds a path waits after its `failures`-th failure in a row: 0 for the first FREE_FAILURES, then
    1, 2, 4, 8 ... up to DELAY_CAP_S."""
    if failures <= FREE_FAILURES:
        return 0
    return min(DELAY_CAP_S, 2 ** min(failures - FREE_FAILURES - 1, 20))


@dataclass
class Track:
    """One path's failure count, read and locked for this attempt."""

    key: str  # login HMAC (untrusted path) or device SHA-256 (trusted device)
    device_id: str | None  # the cookie's device id when the path is a trusted device
    failures: int  # in a row, not yet forgotten
    wait_s: int  # seconds until the path may try again (0: now)

    @property
    def trusted(self) -> bool:
        return self.device_id is not None


@lru_cache(maxsize=64)
def _login_hmac_key(data_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kyufu-staff-signin-login").derive(data_key)


def login_hmac(data_key: bytes, code: str, login_name: str) -> str:
    """The untrusted path's key: the same for a login that exists and one that does not."""
    msg = f"{code}|{login_name}".encode("utf-8", "surrogatepass")
    return hmac.new(_login_hmac_key(data_key), msg, hashlib.sha256).hexdigest()


def _sha256(device_id: str) -> str:
    return hashlib.sha256(device_id.encode()).hexdigest()


async def open_track(
    conn: asyncpg.Connection, data_key: bytes, code: str, login_name: str, staff_id: int | None, device_id: str | None
) -> Track:
    """The path this attempt comes by, locked until commit: the browser's device of the account if it is
    still trusted, else the login's untrusted path."""
    if staff_id is not None and device_id is not None:
        digest = _sha256(device_id)
        row = await conn.fetchrow(DEVICE_TRACK, code, staff_id, digest)
        if row is not None:
            return Track(digest, device_id, row["failures"] if row["recent"] else 0, row["wait_s"] or 0)
    key = login_hmac(data_key, code, login_name)
    await conn.execute(LOCK_LOGIN, code, key)
    row = await conn.fetchrow(LOGIN_TRACK, code, key)
    if row is None:
        return Track(key, None, 0, 0)
    return Track(key, None, row["failures"] if row["recent"] else 0, row["wait_s"] or 0)


async def record_failure(conn: asyncpg.Connection, code: str, track: Track, staff_id: int | None) -> tuple[int, int]:
    """Count a failed attempt on its path; returns (failures in a row, seconds the path must now wait)."""
    failures = track.failures + 1
    delay = delay_after(failures)
    if track.trusted:
        await conn.execute(DEVICE_FAILED, code, staff_id, track.key, failures, delay)
    else:
        await conn.execute(LOGIN_FAILED, code, track.key, staff_id, failures, delay)
        await conn.execute(FORGET_OLD, code)
    return failures, delay


async def record_success(conn: asyncpg.Connection, code: str, track: Track, staff_id: int) -> str:
    """Forget the path's failures and return the device id the browser keeps: its own if it came by a
    trusted device, else a new one (stored as its SHA-256)."""
    if track.trusted:
        await conn.execute(DEVICE_OK, code, staff_id, track.key)
        return track.device_id  # type: ignore[return-value]
    await conn.execute(LOGIN_OK, code, track.key)
    device_id = secrets.token_urlsafe(24)
    await conn.execute(NEW_DEVICE, code, staff_id, _sha256(device_id))
    return device_id


async def revoke_devices(conn: asyncpg.Connection, code: str, staff_id: int) -> int:
    """Stop trusting every browser of the account (their next sign-in takes the untrusted path)."""
    status = await conn.execute(REVOKE_DEVICES, code, staff_id)
    return int(status.split()[-1])


async def clear_delays(conn: asyncpg.Connection, code: str, staff_id: int) -> None:
    await conn.execute(CLEAR, code, staff_id)
    await conn.execute(CLEAR_DEVICES, code, staff_id)


# ---- the device cookie -----------------------------------------------------------------------------------
# "<code>.<staff_id>.<device id>.<HMAC>" entries joined by "~", newest first. The HMAC binds the id to the
# municipality and account, so a cookie of one account is no device of another; the server-side row
# (revocable, idle expiry) decides whether the device is still trusted.


def _device_mac(secret: bytes, code: str, staff_id: int, device_id: str) -> str:
    mac = hmac.new(secret, f"kyufu-staff-device|{code}|{staff_id}|{device_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _entries(secret: bytes, value: str | None) -> list[tuple[str, int, str]]:
    if not value or len(value) > _MAX_COOKIE_CHARS:
        return []
    out = []
    for raw in value.split("~")[:MAX_DEVICE_ENTRIES]:
        m = _ENTRY.fullmatch(raw)
        if m is None:
            continue
        code, staff_id, device_id, mac = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        if hmac.compare_digest(mac, _device_mac(secret, code, staff_id, device_id)):
            out.append((code, staff_id, device_id))
    return out


def devices_in_cookie(secret: bytes, value: str | None, code: str) -> dict[int, str]:
    """{staff_id: device id} of the cookie's authentic entries for municipality `code`."""
    return {staff_id: device_id for c, staff_id, device_id in _entries(secret, value) if c == code}


def device_cookie(secret: bytes, value: str | None, code: str, staff_id: int, device_id: str) -> str:
    """The cookie value with this account's device first, keeping the browser's other accounts' entries."""
    entries = [(code, staff_id, device_id)] + [e for e in _entries(secret, value) if e[:2] != (code, staff_id)]
    return "~".join(f"{c}.{s}.{d}.{_device_mac(secret, c, s, d)}" for c, s, d in entries[:MAX_DEVICE_ENTRIES])

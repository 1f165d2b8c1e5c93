"""Letter sign-in: 確認書番号 + PIN, with per-code lockout (in the database) and a per-IP limit (Redis).

Wrong code, wrong PIN, a locked code, an invalidated letter and another municipality's code all fail
the same way (`None`) after the same work: the HMAC is computed against a dummy hash when the code is
unknown, so timing does not reveal whether a code exists.

After a failure, the resident's pages ask `locked_until` and, for a code that really is locked, say so:
until when and whom to ask (`locked_message`). Why that is safe and the count of tries left is not shown:
docs/security.md ("Telling a resident they are locked out").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import asyncpg

from app.crypto import FieldCipher
from app.errors import RateLimited
from app.failures import count_failure
from app.registry.pins import pin_key, pin_matches
from app.registry.receipts import receipt_key
from app.tenancy.municipalities import load_field_cipher

log = logging.getLogger("kyufu.intake")

MAX_FAILURES = 5
LOCK_MINUTES = 30
# Per source address, failures in a sliding-ish window: enough for a household mistyping several
# letters, far too few to walk a code space.
IP_MAX_FAILURES = 30
IP_WINDOW_S = 15 * 60

SIGNIN_FAILED_MESSAGE = (
    "確認書番号または暗証番号が正しくありません。確認書をご確認のうえ入力してください。"
    "5回続けて間違えると、30分間ご利用いただけなくなります。"
)

LETTERS_BY_CODE = """
SELECT access_code, letter_id, entitlement_id, kind, pin_hash, failed_attempts,
       (locked_until IS NOT NULL AND locked_until > now()) AS locked
FROM letters
WHERE municipality_code = $1 AND access_code = ANY($2::text[]) AND invalidated_at IS NULL
ORDER BY letter_id
FOR UPDATE
"""
# FOR UPDATE: two batches checking the same code at once would otherwise both read the count from before
# the other's failures and each allow five more guesses; the second now waits and reads the updated row.
# Letters are one per household, so this lock is uncontended unless someone is guessing one code.
# A failure counts once per attempt; the fifth locks the code and starts a new count, so after the lock
# expires the next five failures lock it again. Attempts while locked are not counted (they fail anyway).
RECORD_FAILURES = """
UPDATE letters l
SET failed_attempts = CASE WHEN l.failed_attempts + f.n >= $3 THEN 0 ELSE l.failed_attempts + f.n END,
    locked_until = CASE WHEN l.failed_attempts + f.n >= $3 THEN now() + make_interval(mins => $4)
                        ELSE l.locked_until END
FROM (SELECT id, count(*)::int AS n FROM unnest($2::bigint[]) AS id GROUP BY id) f
WHERE l.municipality_code = $1 AND l.letter_id = f.id
"""
RESET_FAILURES = """
UPDATE letters SET failed_attempts = 0
WHERE municipality_code = $1 AND letter_id = ANY($2::bigint[]) AND failed_attempts > 0
"""

# Only a live letter's own lock: an unknown, invalidated or unlocked code gives None, as before.
LOCKED_UNTIL = """
SELECT max(locked_until) FROM letters
WHERE municipality_code = $1 AND access_code = $2 AND invalidated_at IS NULL AND locked_until > now()
"""

_DUMMY_HASH = hashlib.sha256(b"kyufu-no-such-letter").digest()
_JST = ZoneInfo("Asia/Tokyo")


@dataclass(frozen=True)
class Refused:
    """A failed sign-in (letter or identity) with what may be told about it: `locked_until` when what was
    typed is locked now; `remaining` tries before it locks, only where that reveals nothing (identities)."""

    locked_until: dt.datetime | None = None
    remaining: int | None = None


async def locked_until(conn: asyncpg.Connection, code: str, access_code: str) -> dt.datetime | None:
    """When this letter code's lock ends, if it is locked now. Inside the tenant transaction of the attempt."""
    return await conn.fetchval(LOCKED_UNTIL, code, access_code)


def jst_clock(moment: dt.datetime, now: dt.datetime | None = None) -> str:
    """「15時42分」 in Japan time, rounded up to the minute (never earlier than the real end); 「翌日」 in front
    when it is tomorrow."""
    local = moment.astimezone(_JST)
    if local.second or local.microsecond:
        local = local.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    today = (now or dt.datetime.now(_JST)).astimezone(_JST).date()
    day = "翌日" if local.date() > today else ""
    return f"{day}{local.hour}時{local.minute:02d}分"


def locked_message(what: str, until: dt.datetime, municipality_name: str) -> str:
    """What a resident reads when `what` (この確認書番号 / この氏名・生年月日) is locked: that it is, until when,
    and whom to ask. The platform has no contact field per municipality: the letter and the municipality's
    own notices carry the desk's number."""
    return (
        f"{what}は、続けて{MAX_FAILURES}回確認できなかったため、安全のため{jst_clock(until)}まで利用を"
        f"停止しています。この間は、正しく入力してもご利用いただけません。{jst_clock(until)}を過ぎてから、"
        "もう一度お試しください。お急ぎの場合や、ご自身で間違えた覚えがない場合は、"
        f"{municipality_name}の給付金担当窓口（確認書や{municipality_name}のお知らせに記載の問い合わせ先）に"
        "お問い合わせください。"
    )


@dataclass(frozen=True)
class Letter:
    letter_id: int
    entitlement_id: int
    access_code: str
    kind: str


@dataclass
class Keys:
    cipher: FieldCipher
    pin_key: bytes
    loaded_at: float
    receipt_key: bytes


# Unwrapped keys per municipality, shared by the process's requests and the API's batcher. Not per request
# on purpose: unwrapping costs a query per sign-in, and at surge rates that query is most of a sign-in.
# Safe to share: a municipality's data key never changes (master-key rotation re-wraps it: docs/guarantees.md),
# so a cached key cannot go stale; the expiry only bounds how long a removed municipality's key stays in
# memory. At most one entry per municipality (1,741).
_KEYS: dict[str, Keys] = {}
KEY_CACHE_S = 300.0


async def municipality_keys(conn: asyncpg.Connection, master_key: bytes, code: str) -> Keys:
    """The municipality's field cipher and PIN key, cached briefly (unwrapping costs a query).

    Call inside tenant_transaction(conn, code)."""
    keys = _KEYS.get(code)
    now = time.monotonic()
    if keys is None or now - keys.loaded_at > KEY_CACHE_S:
        cipher = await load_field_cipher(conn, master_key, code)
        keys = Keys(cipher, pin_key(cipher), now, receipt_key(cipher.key))
        _KEYS[code] = keys
    return keys


async def authenticate(
    conn: asyncpg.Connection, keys: Keys, code: str, credentials: list[tuple[str, str]]
) -> list[Letter | None]:
    """Check (access_code, pin) pairs of one municipality; record failures. Inside its tenant transaction.

    Returns the letter for each pair that matched, None otherwise (in order)."""
    found = {r["access_code"]: r for r in await conn.fetch(LETTERS_BY_CODE, code, list({c for c, _ in credentials}))}
    results: list[Letter | None] = []
    failed: list[int] = []
    to_reset: list[int] = []
    # Guesses for one code inside this batch count against the same five: once the stored failures plus
    # this batch's reach MAX_FAILURES, later attempts in the batch fail as if locked (a right PIN too), so a
    # burst of concurrent guesses gets five checks, not one per request.
    failures_here: dict[int, int] = {}
    for access_code, pin in credentials:
        row = found.get(access_code)
        ok = pin_matches(keys.pin_key, access_code, pin, row["pin_hash"] if row is not None else _DUMMY_HASH)
        if row is None:
            results.append(None)
        elif row["locked"] or row["failed_attempts"] + failures_here.get(row["letter_id"], 0) >= MAX_FAILURES:
            results.append(None)
        elif not ok:
            failures_here[row["letter_id"]] = failures_here.get(row["letter_id"], 0) + 1
            failed.append(row["letter_id"])
            results.append(None)
        else:
            if row["failed_attempts"]:
                to_reset.append(row["letter_id"])  # a success resets the count; no count, no UPDATE
            results.append(Letter(row["letter_id"], row["entitlement_id"], access_code, row["kind"]))
    if failed:
        await conn.execute(RECORD_FAILURES, code, failed, MAX_FAILURES, LOCK_MINUTES)
    if to_reset:
        await conn.execute(RESET_FAILURES, code, to_reset)
    return results


# ---- per-IP limit --------------------------------------------------------------------------------

_IP_KEY = "kyufu:signin-fail:"


async def check_ip(redis, ip: str) -> None:
    """Refuse an address with too many recent failures. If Redis is down the per-code lockout (in the
    database) still holds, so this fails open rather than closing the service."""
    try:
        count = await redis.get(_IP_KEY + ip)
    except Exception as exc:  # Redis unavailable: documented fail-open, logged by type only
        log.warning("sign-in rate limit unavailable (%s)", type(exc).__name__)
        return
    if count is not None and int(count) >= IP_MAX_FAILURES:
        raise RateLimited(IP_WINDOW_S)


async def limited_ips(redis, ips: set[str]) -> set[str]:
    """`check_ip` for the addresses of a whole batch of submissions in one round trip: the ones to refuse.

    Fails open like check_ip."""
    if not ips:
        return set()
    order = sorted(ips)
    try:
        counts = await redis.mget([_IP_KEY + ip for ip in order])
    except Exception as exc:  # Redis unavailable: documented fail-open, logged by type only
        log.warning("sign-in rate limit unavailable (%s)", type(exc).__name__)
        return set()
    return {ip for ip, count in zip(order, counts) if count is not None and int(count) >= IP_MAX_FAILURES}


async def record_ip_failure(redis, ip: str) -> None:
    await count_failure(redis, _IP_KEY + ip, IP_WINDOW_S, log, "sign-in rate limit")

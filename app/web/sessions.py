"""Sessions of both sites: one mechanism here, two stores behind one small interface (`Store`).

The mechanism, the same for residents and staff:

* the cookie carries a random token (`new_token`, 256 bits) and nothing else; the console's cookie puts the
  municipality code in front ("<code>.<token>") so that the server knows which tenant scope to look in;
* every cookie kyufu sets gets its flags from `set_cookie`: HttpOnly, the site's SameSite and Path, Secure
  in production (not in local and test mode, which serve plain HTTP). The two sessions' policies are
  `RESIDENT_COOKIE` and `STAFF_COOKIE`;
* sign-in always starts a session under a new token, never one the browser offered (fixation), and ends
  the session it replaces (`begin`; the resident site's session exists before sign-in, so it does the same
  in two steps, `rotate` then `save_session`);
* a session ends on sign-out (`Store.revoke`) and after an idle time, when the store's `load` answers None;
* a session's CSRF token is an HMAC of its cookie (app/web/csrf.py, the one rule for every form).

Why two stores:

* residents, `RedisStore` (below): a surge is millions of residents in a few days, and every page reads
  and rewrites the session, so no page may cost a PostgreSQL write. The data may hold a bank account
  number between the form and the confirmation page, so it is AES-GCM encrypted under a key derived from
  KYUFU_SESSION_SECRET, with the token as associated data. The idle time is Redis's TTL.
* staff, `app.staff.sessions.PostgresStore`: a few hundred people whose sessions an admin revokes per
  account, kept in the municipality's rows under row-level security, joined to staff_users on every
  request so that a disabled account's sessions stop at once, with the municipality's idle time and a
  12-hour lifetime, next to the audit log they are recorded in. Its SQL lives with the console's domain:
  the web layer runs no queries.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeGuard, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.requests import Request
from starlette.responses import Response

from app.crypto import derive_key

IDLE_TTL_S = 30 * 60


@dataclass(frozen=True)
class CookiePolicy:
    """Where a cookie goes and how long it lives (`max_age` None: until the browser closes)."""

    name: str
    path: str
    samesite: Literal["lax", "strict"]
    max_age: int | None = None


# Residents arrive from links (the municipality's page, the letter): Lax keeps them signed in on a top-level
# navigation and still keeps the cookie off cross-site POSTs. Nobody needs to enter the console from another
# site, so its cookies are Strict: no cross-site request carries them at all. The console's session cookie
# lives until the browser closes; its idle and absolute lifetimes are kept by the server.
RESIDENT_COOKIE = CookiePolicy("kyufu_session", "/", "lax", IDLE_TTL_S)
STAFF_COOKIE = CookiePolicy("kyufu_staff", "/staff", "strict")


def set_cookie(request: Request, response: Response, policy: CookiePolicy, value: str) -> None:
    """Set a cookie of either site: the one place where cookie flags are decided."""
    response.set_cookie(
        policy.name,
        value,
        max_age=policy.max_age,
        path=policy.path,
        httponly=True,
        samesite=policy.samesite,
        secure=request.app.state.settings.production,
    )


def clear_cookie(response: Response, policy: CookiePolicy) -> None:
    response.delete_cookie(policy.name, path=policy.path)


def new_token() -> str:
    """A session token or a pre-session nonce: 256 random bits, 43 URL-safe characters."""
    return secrets.token_urlsafe(32)


V = TypeVar("V")


class Store(Protocol[V]):
    """Where a site keeps its sessions, found by token."""

    async def load(self, token: str) -> V | None:
        """The live session's value, or None if unknown, revoked, idle too long or expired."""
        ...

    async def save(self, token: str, value: V) -> None:
        """Keep `value` under `token` (a session begun, or the resident's data changed)."""
        ...

    async def revoke(self, token: str) -> None:
        """End the session now; its token finds nothing from here on."""
        ...


async def begin(store: Store[V], value: V, *, replacing: str | None = None) -> str:
    """Sign-in: a session under a new token, ending the one the browser held (`replacing`); returns the token."""
    if replacing:
        await store.revoke(replacing)
    token = new_token()
    await store.save(token, value)
    return token


# ---- the resident site's store and its use in a request -----------------------------------------------

_PREFIX = "kyufu:session:"
_SUBJECT = "kyufu:session-subject:"


class RedisStore:
    """The resident site's sessions: Redis key = prefix + token, value = nonce || AES-GCM(JSON data)."""

    def __init__(self, redis, secret: bytes, idle_s: int = IDLE_TTL_S):
        self.redis = redis
        self.idle_s = idle_s
        self._aead = AESGCM(derive_key(secret, "resident-session-data"))

    async def load(self, token: str) -> dict[str, Any] | None:
        blob = await self.redis.get(_PREFIX + token)
        if blob is None:
            return None
        try:
            return json.loads(self._aead.decrypt(blob[:12], blob[12:], token.encode()))
        except (InvalidTag, ValueError):
            return None  # a tampered or foreign entry is treated as no session

    async def save(self, token: str, value: dict[str, Any], *, subject: str | None = None) -> None:
        nonce = os.urandom(12)
        blob = nonce + self._aead.encrypt(nonce, json.dumps(value).encode(), token.encode())
        # Saving every time also slides the idle expiry.
        await self.redis.set(_PREFIX + token, blob, ex=self.idle_s)
        if subject:
            key = _SUBJECT + subject
            await self.redis.sadd(key, token)
            await self.redis.expire(key, self.idle_s)

    async def revoke(self, token: str) -> None:
        await self.redis.delete(_PREFIX + token)

    async def revoke_subject(self, subject: str) -> int:
        """End every session saved with this subject (a letter that got locked); return how many."""
        key = _SUBJECT + subject
        ids = await self.redis.smembers(key)
        if ids:
            await self.redis.delete(*[_PREFIX + (i.decode() if isinstance(i, bytes) else i) for i in ids])
        await self.redis.delete(key)
        return len(ids)


@dataclass
class Session:
    """A resident's session during one request (load_session ... save_session)."""

    id: str
    data: dict[str, Any] = field(default_factory=dict)
    dirty: bool = False
    is_new: bool = False
    old_id: str | None = None

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.dirty = True

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def pop(self, key: str, default: Any = None) -> Any:
        self.dirty = True
        return self.data.pop(key, default)

    def clear(self) -> None:
        self.data.clear()
        self.dirty = True


def _store(request: Request) -> RedisStore:
    # The data key is derived in two steps ("resident-session", then "resident-session-data" in RedisStore):
    # the sessions in Redis are encrypted under it, so it stays as it is.
    return RedisStore(
        request.app.state.redis, derive_key(request.app.state.settings.session_secret or "", "resident-session")
    )


def _valid_id(value: str | None) -> TypeGuard[str]:
    return value is not None and len(value) == 43 and all(c.isalnum() or c in "-_" for c in value)


async def load_session(request: Request) -> Session:
    """The request's session (a new, empty one if the cookie is missing, unknown or expired)."""
    existing = getattr(request.state, "session", None)
    if existing is not None:
        return existing
    sid = request.cookies.get(RESIDENT_COOKIE.name)
    data = await _store(request).load(sid) if _valid_id(sid) else None
    if sid is not None and data is not None:
        session = Session(sid, data)
    else:
        session = Session(new_token(), {}, dirty=True, is_new=True)
    request.state.session = session
    return session


def rotate(session: Session) -> None:
    """Give the session a new token (call on sign-in); the old one stops working when saved."""
    session.old_id = session.old_id or session.id
    session.id = new_token()
    session.dirty = True


async def save_session(request: Request, response: Response, *, subject: str | None = None) -> None:
    """Store the session and set its cookie on the response; `subject` lets revoke_subject find it."""
    session: Session | None = getattr(request.state, "session", None)
    if session is None:
        return
    store = _store(request)
    if session.old_id:
        await store.revoke(session.old_id)
        session.old_id = None
    await store.save(session.id, session.data, subject=subject)
    session.dirty = False
    set_cookie(request, response, RESIDENT_COOKIE, session.id)


async def revoke(request: Request, response: Response | None = None) -> None:
    """End the request's session now (sign-out)."""
    session: Session | None = getattr(request.state, "session", None)
    if session is not None:
        await _store(request).revoke(session.id)
        request.state.session = None
    if response is not None:
        clear_cookie(response, RESIDENT_COOKIE)

"""Server-side sessions in Redis.

The cookie carries only a random 256-bit id. The session's data is stored under that id, encrypted with
a key derived from KYUFU_SESSION_SECRET (AES-GCM, the id as associated data), because a resident's
session may briefly hold a bank account number between the form and the confirmation page.

* Cookie: HttpOnly, SameSite=Lax, Path=/, Secure in production; expires with the session (idle TTL).
* `rotate` issues a new id on sign-in (fixation), `revoke` deletes one session, `revoke_subject`
  deletes every session of a subject (a letter that got locked, a staff account disabled).

Usage in a handler:  session = await load_session(request) ... await save_session(request, response).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.requests import Request
from starlette.responses import Response

from app.crypto import derive_key

COOKIE = "kyufu_session"
IDLE_TTL_S = 30 * 60
_PREFIX = "kyufu:session:"
_SUBJECT = "kyufu:session-subject:"


@dataclass
class Session:
    id: str
    data: dict[str, Any] = field(default_factory=dict)
    secret: bytes = b""
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

    @property
    def csrf_token(self) -> str:
        return token_for(self.secret, self.id)


def _secret(request: Request) -> bytes:
    return derive_key(request.app.state.settings.session_secret or "", "resident-session")


def _aead(secret: bytes) -> AESGCM:
    return AESGCM(derive_key(secret, "resident-session-data"))


def _new_id() -> str:
    return secrets.token_urlsafe(32)


def _valid_id(value: str | None) -> TypeGuard[str]:
    return value is not None and len(value) == 43 and all(c.isalnum() or c in "-_" for c in value)


async def load_session(request: Request) -> Session:
    """The request's session (a new, empty one if the cookie is missing, unknown or expired)."""
    existing = getattr(request.state, "session", None)
    if existing is not None:
        return existing
    secret = _secret(request)
    sid = request.cookies.get(COOKIE)
    session = None
    if _valid_id(sid):
        blob = await request.app.state.redis.get(_PREFIX + sid)
        if blob is not None:
            try:
                raw = _aead(secret).decrypt(blob[:12], blob[12:], sid.encode())
                session = Session(sid, json.loads(raw), secret)
            except (InvalidTag, ValueError):
                session = None  # a tampered or foreign entry is treated as no session
    if session is None:
        session = Session(_new_id(), {}, secret, dirty=True, is_new=True)
    request.state.session = session
    return session


def rotate(session: Session) -> None:
    """Give the session a new id (call on sign-in); the old id stops working when saved."""
    session.old_id = session.old_id or session.id
    session.id = _new_id()
    session.dirty = True


async def save_session(request: Request, response: Response, *, subject: str | None = None) -> None:
    """Store the session (if changed) and set its cookie on the response."""
    session: Session | None = getattr(request.state, "session", None)
    if session is None:
        return
    redis = request.app.state.redis
    if session.old_id:
        await redis.delete(_PREFIX + session.old_id)
        session.old_id = None
    nonce = os.urandom(12)
    blob = nonce + _aead(session.secret).encrypt(nonce, json.dumps(session.data).encode(), session.id.encode())
    # Saving every time also slides the idle expiry.
    await redis.set(_PREFIX + session.id, blob, ex=IDLE_TTL_S)
    if subject:
        key = _SUBJECT + subject
        await redis.sadd(key, session.id)
        await redis.expire(key, IDLE_TTL_S)
    session.dirty = False
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=IDLE_TTL_S,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.production,
    )


async def revoke(request: Request, response: Response | None = None) -> None:
    """End the request's session now (sign-out)."""
    session: Session | None = getattr(request.state, "session", None)
    if session is not None:
        await request.app.state.redis.delete(_PREFIX + session.id)
        request.state.session = None
    if response is not None:
        response.delete_cookie(COOKIE, path="/")


async def revoke_subject(redis, subject: str) -> int:
    """End every session saved with this subject; return how many."""
    key = _SUBJECT + subject
    ids = await redis.smembers(key)
    if ids:
        await redis.delete(*[_PREFIX + (i.decode() if isinstance(i, bytes) else i) for i in ids])
    await redis.delete(key)
    return len(ids)


def sign(secret: bytes, value: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(secret, value.encode(), hashlib.sha256).digest()).decode().rstrip("=")


def token_for(secret: bytes, session_id: str) -> str:
    """The CSRF token of forms rendered for session `session_id` (checked by app/web/csrf.py)."""
    return sign(secret, "csrf|" + session_id)

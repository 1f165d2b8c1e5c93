"""The one CSRF rule of both sites: a form's token is an HMAC of what the form is bound to, under a key of
its purpose, and a POST passes only with the token of its own purpose and binding (constant-time compare).

* Pages of a session bind to the session cookie (the resident's session id; the console's "<code>.<token>"):
  the token needs no storage, dies with the session and changes when sign-in rotates it.
* Forms shown before any session (staff sign-in, enrolment) bind to a nonce (`new_token`) that the same
  response sets as an HttpOnly cookie: a cross-site page can make the browser send that cookie but can
  read neither it nor the token (double submit, signed).
* The key is app.crypto.derive_key(KYUFU_SESSION_SECRET, purpose), one purpose per kind of form below, so a
  token made for one site or form is worthless for another, even for the same bound value.

A refused form is CsrfError: 403, 「ページの有効期限が切れました…」.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from starlette.datastructures import FormData
from starlette.requests import Request

from app.crypto import derive_key
from app.web.bodies import read_form
from app.web.errors import CsrfError
from app.web.sessions import Session, load_session

FIELD = "csrf_token"
RESIDENT = "csrf:resident-session"  # the resident site's pages, bound to the session id
STAFF = "csrf:staff-session"  # the console's pages, bound to the session cookie
STAFF_LOGIN = "csrf:staff-login"  # the console's sign-in form, bound to its nonce cookie
STAFF_ENROL = "csrf:staff-enrol"  # the enrolment form, bound to its nonce cookie


def mint(secret: str | bytes, purpose: str, bound_to: str) -> str:
    """The token of a form of `purpose` bound to `bound_to` (43 URL-safe characters)."""
    digest = hmac.new(derive_key(secret, purpose), bound_to.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def matches(secret: str | bytes, purpose: str, bound_to: str | None, sent: object) -> bool:
    """Whether `sent` (a form field as read: str, or None when missing) is the token of (purpose, bound_to).
    Nothing to bind to (no session, no nonce cookie) matches nothing."""
    if not bound_to or not isinstance(sent, str) or not sent:
        return False
    # Bytes, so that a non-ASCII field is just wrong rather than a TypeError in compare_digest.
    return hmac.compare_digest(mint(secret, purpose, bound_to).encode(), sent.encode())


def _secret(request: Request) -> str:
    return request.app.state.settings.session_secret or ""


def token_for(request: Request, purpose: str, bound_to: str) -> str:
    """The token to put in a form rendered for this request."""
    return mint(_secret(request), purpose, bound_to)


def check(request: Request, purpose: str, bound_to: str | None, form: FormData) -> None:
    """Refuse (CsrfError) a submitted form without the token of (purpose, bound_to)."""
    if not matches(_secret(request), purpose, bound_to, form.get(FIELD)):
        raise CsrfError()


async def verify_form(request: Request):
    """The resident site: read the form of a POST and check it against the request's session; return
    (session, form). A POST without a live session has nothing to be bound to and is refused."""
    session: Session = await load_session(request)
    form = await read_form(request)
    check(request, RESIDENT, None if session.is_new else session.id, form)
    return session, form

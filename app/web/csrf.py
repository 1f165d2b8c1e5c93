"""CSRF tokens for every form: an HMAC of the session id (synchronizer token without storage).

A form rendered for session S carries token_for(S); a POST is accepted only with the token of the
session its cookie names. Rotating the session (sign-in) invalidates tokens of the old id.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from app.web.bodies import read_form
from app.web.errors import CsrfError
from app.web.sessions import Session, load_session, token_for

FIELD = "csrf_token"
__all__ = ["FIELD", "token_for", "verify_form"]


async def verify_form(request: Request):
    """Read the form of a POST and check its CSRF token; return (session, form). Raises CsrfError."""
    session: Session = await load_session(request)
    form = await read_form(request)
    sent = form.get(FIELD)
    if session.is_new or not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf_token):
        raise CsrfError()
    return session, form

"""Cross-cutting web setup: security headers, a request body limit, the static files and one error
handler that renders every failure in Japanese (HTML for pages, JSON under /api/), never a bare 500.

Applied by app/main.py to the whole app, so the resident site and the staff console share it.
"""

from __future__ import annotations

import contextlib
import logging

import asyncpg
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import DATABASE_UNAVAILABLE, connection_lost
from app.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, RateLimited, Unauthenticated
from app.web.admission import AdmissionMiddleware
from app.web.errors import WebError
from app.web.responses import STATUS_MESSAGES, error_response
from app.web.templates import STATIC_DIR

log = logging.getLogger("kyufu.web")

# Forms and JSON bodies here are a few kilobytes; uploads (registry extracts) go through the CLI.
MAX_BODY_BYTES = 64 * 1024

# No inline script or style anywhere: everything comes from /static on this origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class BodyTooLarge(Exception):
    """The request body exceeded MAX_BODY_BYTES while streaming (no or a false Content-Length)."""


class SecurityMiddleware:
    """Pure ASGI (no per-request task, unlike BaseHTTPMiddleware): adds headers, refuses big bodies."""

    def __init__(self, app: ASGIApp, *, production: bool, max_body: int = MAX_BODY_BYTES):
        self.app = app
        self.headers = SECURITY_HEADERS + ([HSTS] if production else [])
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_body:
                    await _too_large(scope, receive, send, self.headers)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise HTTPException(413)
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        await self.app(scope, limited_receive, send_with_headers)


async def _too_large(scope: Scope, receive: Receive, send: Send, headers) -> None:
    response = error_response(Request(scope, receive), 413, STATUS_MESSAGES[413])
    response.raw_headers.extend(headers)
    await response(scope, receive, send)


async def web_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WebError)
    response = error_response(request, exc.status, exc.message, exc.extra)
    for name, value in exc.headers.items():
        response.headers[name] = value
    return response


# Domain errors (app/errors.py) carry no HTTP status: the web layer decides it, by class.
DOMAIN_STATUS = {
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    InvalidInput: 422,
    Unauthenticated: 401,
    RateLimited: 429,
}


def domain_status(exc: DomainError) -> int:
    """The HTTP status of a domain error (the console's pages answer with it too: app/staff/web/common.py)."""
    return next((DOMAIN_STATUS[c] for c in type(exc).__mro__ if c in DOMAIN_STATUS), 400)


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    status = domain_status(exc)
    if isinstance(exc, RateLimited):
        response = error_response(request, status, exc.message, {"retry_after_s": exc.retry_after_s})
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    return error_response(request, status, exc.message)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = STATUS_MESSAGES.get(exc.status_code, STATUS_MESSAGES[400 if exc.status_code < 500 else 500])
    response = error_response(request, exc.status_code, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def unrepresentable_input(request: Request, exc: Exception) -> Response:
    """Text PostgreSQL cannot store (NUL, a lone surrogate) reached a query: the client's input is at
    fault, not the server, and the transaction it was in has rolled back. Found by tests/hostile/."""
    log.warning("unrepresentable input (%s) on %s %s", type(exc).__name__, request.method, request.url.path)
    return error_response(request, 400, STATUS_MESSAGES[400])


# PostgreSQL restarting or unreachable (app.db.DATABASE_UNAVAILABLE): answer "try again shortly", not a 500.
# Found by tests/chaos/test_postgres.py (the status API answered 500 while PostgreSQL restarted).
DATABASE_RETRY_AFTER_S = 5


async def database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable (%s) on %s %s", type(exc).__name__, request.method, request.url.path)
    response = error_response(request, 503, STATUS_MESSAGES[503])
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
    response.headers["Cache-Control"] = "no-store"
    return response


async def interface_error(request: Request, exc: Exception) -> Response:
    """asyncpg's InterfaceError is a bug (500) unless it is a transaction closing on a lost connection."""
    if connection_lost(exc):
        return await database_unavailable(request, exc)
    return await server_error(request, exc)


async def client_disconnected(request: Request, exc: Exception) -> Response:
    """The client went away mid-request: nobody reads the answer, and it is not the server's fault (it
    was a traceback per connection; issue 12)."""
    log.info("client disconnected on %s %s", request.method, request.url.path)
    return Response(status_code=400)


async def server_error(request: Request, exc: Exception) -> Response:
    # The exception type and path only: a message may carry request data.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return error_response(request, 500, STATUS_MESSAGES[500])


def _with_shutdown_hooks(app) -> None:
    """Give areas `app.state.shutdown_hooks`: async callables run at shutdown, before the lifespan
    closes the pool and Redis client (an area's background tasks still need them to finish)."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_):
        async with inner(app_) as state:
            app_.state.shutdown_hooks = []
            try:
                yield state
            finally:
                for hook in reversed(app_.state.shutdown_hooks):
                    await hook()

    app.router.lifespan_context = lifespan


def setup(app, settings) -> None:
    """Install middleware, error handlers, /static and shutdown hooks on the app."""
    _with_shutdown_hooks(app)
    app.router.routes.insert(0, Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"))
    app.add_exception_handler(WebError, web_error)
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(HTTPException, http_error)
    for exc_type in (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError, UnicodeEncodeError):
        app.add_exception_handler(exc_type, unrepresentable_input)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, database_unavailable)
    app.add_exception_handler(asyncpg.InterfaceError, interface_error)
    app.add_exception_handler(ClientDisconnect, client_disconnected)
    app.add_exception_handler(Exception, server_error)
    # Admission inside SecurityMiddleware (added later = outer), so a shed 503 gets the same headers.
    app.add_middleware(
        AdmissionMiddleware,
        max_in_flight=settings.max_in_flight,
        retry_after_s=settings.busy_retry_after_s,
        target_latency_s=settings.admission_target_ms / 1000,
        min_in_flight=min(settings.admission_min_in_flight, settings.max_in_flight),
        max_in_flight_per_client=settings.max_in_flight_per_client,
        body_timeout_s=settings.body_timeout_s,
        max_pending_bodies_per_client=settings.max_pending_bodies_per_client,
        state=app.state,
    )
    app.add_middleware(SecurityMiddleware, production=settings.production)

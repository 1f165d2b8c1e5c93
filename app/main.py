"""The Starlette application factory. `create_app(settings)` is what uvicorn serves (see `kyufu serve`)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator

from arq.connections import ArqRedis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.db import create_app_pool, ping
from app.redisconn import arq_client
from app.settings import Settings, load_settings, require

log = logging.getLogger("kyufu.app")

# Each area contributes routes: the module has `routes(settings) -> list[BaseRoute]`.
AREA_ROUTES = [
    "app.intake.web.routes",  # /api/v1, resident pages and the site root (before staff: routes are tried in
    # order and the submit API takes the surges; no paths overlap)
    "app.staff.web.routes",  # /staff/...
]
# Cross-cutting web setup (middleware, exception handlers): `setup(app, settings)`.
AREA_SETUP = [
    "app.web.setup",
    "app.observability",  # outermost: request id, metrics and the access log see every response
]


def arq_redis(settings: Settings) -> ArqRedis:
    """An arq client that connects lazily: the app must start, and take applications, while Redis is
    down (the outbox keeps the jobs until the dispatcher or sweeper can enqueue them)."""
    # One server or, with a redis+sentinel:// URL, whichever one the Sentinels call primary (app/redisconn.py).
    return arq_client(require(settings.redis_url, "REDIS_URL"))


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when both PostgreSQL and Redis answer within a second and admission control is not
    shedding; 503 names what failed (or says `saturated`)."""
    failed: dict[str, str] = {}
    try:
        async with asyncio.timeout(1):
            await ping(request.app.state.pool)
    except Exception as exc:  # any failure means not ready; the type is reported, not swallowed
        failed["postgres"] = type(exc).__name__
    try:
        async with asyncio.timeout(1):
            await request.app.state.redis.ping()
    except Exception as exc:
        failed["redis"] = type(exc).__name__
    if failed:
        return JSONResponse({"status": "unavailable", "failed": failed}, status_code=503)
    # Shedding requests (app/web/admission.py): alive, but a load balancer should send new work elsewhere.
    admission = getattr(request.app.state, "admission", None)
    if admission is not None and admission.saturated():
        return JSONResponse({"status": "saturated", "admission": admission.snapshot()}, status_code=503)
    return JSONResponse({"status": "ready"})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.pool = await create_app_pool(settings)
        app.state.redis = arq_redis(settings)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.pool.close()

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    for module in AREA_ROUTES:
        routes.extend(importlib.import_module(module).routes(settings))
    app = Starlette(routes=routes, lifespan=lifespan)
    for module in AREA_SETUP:
        importlib.import_module(module).setup(app, settings)
    return app


def app_factory() -> Starlette:
    """For `uvicorn --factory app.main:app_factory`: builds Settings from the environment."""
    return create_app(load_settings())

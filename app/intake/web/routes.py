"""Routes of this area (mounted by app/main.py): the resident pages and the JSON API."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Route

from app.intake.web import api, i18n, pages
from app.web.templates import add_context_processor, add_template_dir

add_template_dir(Path(__file__).resolve().parent / "templates")
add_context_processor(i18n.context)


def routes(settings) -> list:
    m = "/m/{code:str}"
    # The API first: the router (and the metrics middleware, for the route label) tries routes in
    # order, and the submit endpoint is the one that takes a surge.
    return [
        Route("/api/v1/applications", api.create_application, methods=["POST"]),
        Route("/api/v1/status", api.application_status, methods=["POST"]),
        Route("/api/v1/account", api.change_account_api, methods=["POST"]),
        Route("/api/v1/banks", api.bank_search),
        Route("/api/v1/banks/{bank_code:str}/branches", api.branch_search),
        Route("/api/v1/openapi.json", api.openapi),
        Route("/", pages.index),
        Route("/lang/{lang:str}", i18n.choose),
        Route(m + "/", pages.start),
        Route(m + "/signin", pages.signin, methods=["GET", "POST"]),
        Route(m + "/identify", pages.identify, methods=["GET", "POST"]),
        Route(m + "/signout", pages.signout, methods=["POST"]),
        Route(m + "/household", pages.household),
        Route(m + "/bank", pages.bank, methods=["GET", "POST"]),
        Route(m + "/confirm", pages.confirm, methods=["GET", "POST"]),
        Route(m + "/receipt", pages.receipt),
        Route(m + "/status", pages.status, methods=["GET", "POST"]),
        Route(m + "/decline", pages.decline, methods=["GET", "POST"]),
        Route(m + "/account-change", pages.account_change, methods=["GET", "POST"]),
    ]

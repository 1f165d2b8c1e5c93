"""The Jinja2 environment shared by the resident site and the staff console.

Autoescape is on for every template. Areas add their own template folder with `add_template_dir`;
shared pieces (base.html, error.html, the CSS) live in app/web/templates and app/web/static.
Templates get `csrf_token`, the token of the request's resident session (app/web/csrf.py), so every form
can carry it with `{{ csrf_field() }}`; the console's pages pass their own (app/staff/web/common.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from app.web import csrf

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
_dirs: list[str] = [str(WEB_DIR / "templates")]

env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_dirs),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def add_template_dir(path: Path) -> None:
    """Let an area's templates be found (area folders first, so names must be unique across areas)."""
    searchpath = env.loader.searchpath  # type: ignore[union-attr]
    if str(path) not in searchpath:
        searchpath.insert(0, str(path))


# Functions that add to every page's context, e.g. the resident site's language (app/intake/web/i18n.py).
_context_processors: list[Callable[[Request, dict[str, Any]], None]] = []


def add_context_processor(processor: Callable[[Request, dict[str, Any]], None]) -> None:
    if processor not in _context_processors:
        _context_processors.append(processor)


@jinja2.pass_context
def yen(context: Any, amount: int) -> str:
    if context.get("lang") == "en":
        return f"¥{int(amount):,}"
    return f"{int(amount):,}円"


_MONTHS = "January February March April May June July August September October November December".split()


@jinja2.pass_context
def jdate(context: Any, day: Any) -> str:
    """A date as residents read it: 2026年5月31日 (31 May 2026 on a page in English)."""
    if context.get("lang") == "en":
        return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"
    return f"{day.year}年{day.month}月{day.day}日"


env.filters["yen"] = yen
env.filters["jdate"] = jdate


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    ctx = dict(context or {})
    session = getattr(request.state, "session", None) if hasattr(request, "state") else None
    token = csrf.token_for(request, csrf.RESIDENT, session.id) if session is not None else ""
    ctx.setdefault("csrf_token", token)
    ctx["csrf_field"] = lambda: Markup('<input type="hidden" name="csrf_token" value="{}">').format(token)
    ctx.setdefault("title", "")
    for processor in _context_processors:
        processor(request, ctx)
    html = env.get_template(name).render(ctx)
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    # Pages may show personal data: never keep them in a shared cache or the browser's back cache.
    response.headers["cache-control"] = "no-store"
    return response

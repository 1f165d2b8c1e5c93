"""The resident site in Japanese or English (issue 18): foreign residents are eligible too.

Every word a resident reads lives in the catalogues `messages/ja.toml` and `messages/en.toml` (same keys,
same placeholders; tests/intake/test_i18n.py holds them together). Templates call `t("key", name=value)`;
a catalogue text is trusted HTML (it may hold <strong>), its placeholders are escaped.

Messages made by the domains (a field's error, a lockout, the status of an application) stay Japanese
there, where the JSON API and the CLI use them too. The catalogues' `[domain]` section holds each of them
word for word in ja.toml, with `{name}` where the domain puts a value; `tr(message)` finds the entry a
message was made from and renders the English one with the same values, each translated in turn (a
field's label) when the catalogue has it. In Japanese `tr` returns the message untouched, so the
Japanese wording is exactly the domain's.

The language: the resident's choice (the switch on every page, `/lang/{lang}`, kept in a cookie), else
the browser's Accept-Language on a first visit, else Japanese.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.web.sessions import CookiePolicy, set_cookie

LANGUAGES = ("ja", "en")
DEFAULT = "ja"
COOKIE = "kyufu_lang"
COOKIE_MAX_AGE_S = 365 * 24 * 3600
# Set like every cookie of both sites, through app/web/sessions.py (HttpOnly, Secure in production).
LANG_COOKIE = CookiePolicy(COOKIE, "/", "lax", COOKIE_MAX_AGE_S)
CATALOGUE_DIR = Path(__file__).resolve().parent / "messages"
# What each language is called in itself, for the switch.
NAMES = {"ja": "日本語", "en": "English"}
_PLACEHOLDER = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_JA_DATE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
_MONTHS = ("January February March April May June July August September October November December").split()


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


@cache
def catalogue(lang: str) -> dict[str, str]:
    """Every message of one language by its dotted key."""
    with open(CATALOGUE_DIR / f"{lang}.toml", "rb") as fh:
        return _flatten(tomllib.load(fh))


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


@cache
def _domain_patterns() -> tuple[dict[str, str], list[tuple[re.Pattern, str]]]:
    """The Japanese domain messages: the literal ones by text, the ones with values as patterns (longest
    first, so the most specific wins)."""
    literal: dict[str, str] = {}
    patterns = []
    for key, text in catalogue("ja").items():
        if not key.startswith("domain."):
            continue
        if not placeholders(text):
            literal[text] = key
            continue
        seen: set[str] = set()
        regex = ""
        for part in re.split(r"(\{\w+\})", text):
            name = part[1:-1] if _PLACEHOLDER.fullmatch(part) else None
            if name is None:
                regex += re.escape(part)
            elif name in seen:
                regex += f"(?P={name})"
            else:
                seen.add(name)
                regex += f"(?P<{name}>.+?)"
        patterns.append((re.compile(regex, re.S), key))
    patterns.sort(key=lambda p: -len(_PLACEHOLDER.sub("", catalogue("ja")[p[1]])))
    return literal, patterns


def domain_key(message: str) -> tuple[str, dict[str, str]] | None:
    """The `domain.*` entry a Japanese message was made from, and the values in it; None if none."""
    literal, patterns = _domain_patterns()
    if message in literal:
        return literal[message], {}
    for regex, key in patterns:
        found = regex.fullmatch(message)
        if found:
            return key, found.groupdict()
    return None


# Japanese inside an English page (a term in brackets, a kana example, a municipality's name) is marked
# as such, so a screen reader reads it in Japanese (WCAG 3.1.2, language of parts).
_JA = r"[\u3000-\u30ff\u3400-\u9fff\uff01-\uff9f]"
_JAPANESE_RUN = re.compile(rf"{_JA}+(?: ?{_JA}+)*")


def mark_japanese(html: Markup) -> Markup:
    """`html` (already safe, no Japanese inside its tags) with each run of Japanese in <span lang="ja">."""
    return Markup(_JAPANESE_RUN.sub(lambda m: f'<span lang="ja">{m.group(0)}</span>', str(html)))


def english_date(day: dt.date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


class Translator:
    """`t(key, **values)` for templates and handlers, `tr(message)` for a domain's Japanese message."""

    def __init__(self, lang: str):
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self.messages = catalogue(self.lang)

    def __call__(self, key: str, **values: Any) -> Markup:
        text = self.messages.get(key) or catalogue(DEFAULT)[key]
        if self.lang == DEFAULT:
            return Markup(text).format(**values) if values else Markup(text)
        values = {k: mark_japanese(escape(v)) for k, v in values.items()}
        return Markup(mark_japanese(Markup(text)).format(**values) if values else mark_japanese(Markup(text)))

    def tr(self, message: str) -> str:
        """A domain's Japanese message in this language, as HTML (Japanese parts marked)."""
        if self.lang == DEFAULT or not message:
            return message
        return mark_japanese(escape(self._tr(message, depth=0)))

    def text(self, message: str) -> str:
        """The same as plain text, for where no markup may go (the page's <title>)."""
        if self.lang == DEFAULT or not message:
            return message
        return self._tr(message, depth=0)

    def _tr(self, message: str, depth: int) -> str:
        found = domain_key(message) if depth < 4 else None
        if found is None:
            date = _JA_DATE.fullmatch(message)
            if date:
                try:
                    return english_date(dt.date(*(int(g) for g in date.groups())))
                except ValueError:  # not a real day: not one of ours, shown as it is
                    return message
            return message  # a value the catalogue does not name (a municipality's name): as it is
        key, values = found
        return self.messages[key].format(**{k: self._tr(v, depth + 1) for k, v in values.items()})


def language(request: Request) -> str:
    """The resident's choice (cookie), else the first of ja/en the browser prefers, else Japanese."""
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return from_accept_language(request.headers.get("accept-language", ""))


def from_accept_language(header: str) -> str:
    best, best_q = DEFAULT, 0.0
    for item in header.split(",")[:20]:
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q:  # strictly: of equal weights, the tag the browser listed first
            best, best_q = primary, q
    return best


def resident_path(path: str) -> bool:
    """The resident site's pages (and their error pages): the index and everything under /m/."""
    return path == "/" or path.startswith("/m/")


def _local(target: str) -> str:
    """`next` only ever leads back into this site: a path, never another host (`//host`, `/\\host`)."""
    # Control characters and spaces too: browsers drop a tab or newline inside a URL, so "/\t/host" is "//host".
    if not target.startswith("/") or target.startswith(("//", "/\\")) or any(c <= " " or c in "\\\x7f" for c in target):
        return "/"
    return target


def switch_url(request: Request, lang: str) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/lang/{lang}?next={quote(here, safe='')}"


def context(request: Request, ctx: dict[str, Any]) -> None:
    """Template context of a resident page (app.web.templates' context processor): the language, `t`, `tr`
    and the switch to the other language."""
    if not resident_path(request.url.path):
        return
    lang = language(request)
    translator = Translator(lang)
    ctx.setdefault("lang", lang)
    ctx["t"] = translator
    ctx["tr"] = translator.tr
    # Handlers name a page by its Japanese title (the page's <h1>), in the catalogue's domain.page_title.
    if isinstance(ctx.get("title"), str):
        ctx["title"] = translator.text(ctx["title"])
    other = "en" if lang == "ja" else "ja"
    ctx["switch"] = {"lang": other, "name": NAMES[other], "url": switch_url(request, other)}


async def choose(request: Request) -> Response:
    """GET /lang/{lang}?next=...: remember the choice and go back to the page it was made on. A GET link so
    it works without script and from every page; choosing a language changes nothing else."""
    lang = request.path_params["lang"]
    target = _local(request.query_params.get("next", "/"))
    response = RedirectResponse(target, status_code=303)
    if lang in LANGUAGES:
        set_cookie(request, response, LANG_COOKIE, lang)
    return response

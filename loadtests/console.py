"""The staff console as a browser uses it, for load tests: sign in (CSRF nonce, TOTP), read a page's
forms, submit one. Plain HTTP against a running kyufu; nothing here imports the service.

A form is read from the page the server rendered (its action, its hidden and pre-filled fields: the
CSRF token, the figures a drafter saw, the SHA-256 an approver approves), so the bench sends what a
person's click would send and breaks, loudly, when the page stops offering the action.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx
import pyotp

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class ConsoleError(RuntimeError):
    """The console refused or did not offer what the bench needed; the message quotes the page."""


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._open: Form | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = Form(a.get("action", ""), a.get("method", "get").lower())
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and a.get("name"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self._open.fields[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


def forms(page: str) -> list[Form]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


def form_ending(page: str, suffix: str) -> Form | None:
    """The page's form whose action ends with `suffix` (e.g. "/approve"), or None."""
    return next((f for f in forms(page) if f.action.endswith(suffix)), None)


def page_text(page: str, limit: int = 400) -> str:
    """The visible text of a page, squeezed: for error messages (the console's errors are Japanese prose)."""
    body = re.sub(r"(?s)<(script|style|head)\b.*?</\1>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body))).strip()[:limit]


def element_text(page: str, element_id: str) -> str | None:
    m = re.search(rf'<[^>]+\bid="{re.escape(element_id)}"[^>]*>(.*?)</', page, re.S)
    return None if m is None else html.unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip()


class StaffSession:
    """One signed-in member of staff (one cookie jar); every call is one request, timed by the caller."""

    def __init__(
        self,
        base_url: str,
        code: str,
        login: str,
        password: str,
        totp_secret: str | None = None,
        *,
        timeout_s: float = 600.0,
    ) -> None:
        self.code, self.login, self.password, self.totp_secret = code, login, password, totp_secret
        # A page that renders a whole batch (today's approval page) can take a while at a million rows.
        self.client = httpx.Client(base_url=base_url, timeout=timeout_s, follow_redirects=False, trust_env=False)

    def close(self) -> None:
        self.client.close()

    def sign_in(self) -> None:
        page = self.client.get("/staff/login")
        form = form_ending(page.text, "/staff/login")
        if page.status_code != 200 or form is None:
            raise ConsoleError(f"sign-in page: HTTP {page.status_code} {page_text(page.text)}")
        fields = dict(
            form.fields,
            municipality_code=self.code,
            login=self.login,
            password=self.password,
            totp=pyotp.TOTP(self.totp_secret).now() if self.totp_secret else "",
        )
        r = self.client.post("/staff/login", data=fields)
        if r.status_code != 303 or not r.headers.get("location", "").startswith("/staff/"):
            raise ConsoleError(f"sign-in of {self.login}: HTTP {r.status_code} {page_text(r.text)}")

    def get(self, path: str) -> str:
        r = self.client.get(path)
        if r.status_code != 200:
            raise ConsoleError(f"GET {path}: HTTP {r.status_code} {page_text(r.text)}")
        return r.text

    def submit(self, form: Form, **overrides: str) -> str:
        """POST the form as rendered (plus `overrides`); return the redirect's target (the console answers
        every successful action with 303)."""
        r = self.client.post(form.action, data=dict(form.fields, **overrides))
        if r.status_code != 303:
            raise ConsoleError(f"POST {form.action}: HTTP {r.status_code} {page_text(r.text)}")
        return r.headers["location"]


def batch_id_from(location: str) -> int:
    m = re.fullmatch(r"/staff/batches/(\d+)", location)
    if m is None:
        raise ConsoleError(f"drafting did not lead to a batch page: {location}")
    return int(m.group(1))


def approvable_sha256(page: str) -> str | None:
    """The SHA-256 the approval form would approve, once the page offers it (today the page renders the
    file while it is requested; when a worker computes it after drafting, the page says ハッシュ計算中 and
    offers no form until it is done). Raises if the page reports that hashing failed."""
    error = element_text(page, "hash-error")
    if error:
        raise ConsoleError(f"hashing failed: {error}")
    form = form_ending(page, "/approve")
    value = (form.fields.get("sha256", "") if form else "").strip().lower()
    return value if SHA256_HEX.match(value) else None


def wait_for(check, *, timeout_s: float, interval_s: float, what: str):
    """Call `check()` until it returns something truthy; return it (or raise after timeout_s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise ConsoleError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)

"""Every route of the app, walked with hostile input: no path parameter, query string, body or content type
gives a 5xx, anonymously, as a signed-in resident, or as a staff member of each role.

The routes come from `create_app(settings).routes` (mounts included), so a route added later is walked
without editing this file; a route of a kind this walker cannot fill fails the test instead of being
skipped. Each route gets plausible path values (the world's real municipality and ids) and hostile ones
(missing ids, negative, huge, NUL, unicode, very long), every method it declares plus one it does not,
and hostile bodies: JSON nested 10,000 deep, 60 KB of `[`, invalid UTF-8, NaN, forms with huge, repeated
or too many fields, multipart with every field a file, wrong and missing content types, empty. Form
bodies carry the identity's real CSRF token, so the walk reaches the handlers behind the CSRF check.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from app.intake.identity import FIELDS as IDENTITY_FIELDS
from app.main import create_app
from app.staff import enrolment, grants
from app.staff.bank_form import LABELS as BANK_SETTINGS_FIELDS
from app.tenancy.transaction import tenant_transaction
from payouts import holds
from tests.conftest import next_municipality_code
from tests.hostile.helpers import csrf_from, forget_ip_failures, resident_sign_in, staff_signed_in
from tests.intake.helpers import make_letters
from tests.jobs import draft
from tests.staff.conftest import add_application, add_bank_settings, make_staff

# Every form field and query parameter the app reads (a new one only adds coverage when listed here).
FORM_FIELDS = sorted(
    {
        "municipality_code",
        "login",
        "password",
        "password_confirm",
        "totp",
        "receipt_no",
        "decision",
        "comment",
        "transfer_date",
        "expected_count",
        "expected_total_yen",
        "sha256",
        "note",
        "display_name",
        "roles",
        "access_code",
        "pin",
        "bank_code",
        "branch_code",
        "account_type",
        "account_number",
        "yucho_kigou",
        "yucho_bangou",
        "holder_kana",
        "program",
        "next",
        "reason",
        "outcome",
        "bank_answer",
        "fee_yen",
        "amount_yen",
        "kind",
        "sent_on",
        "received_on",
        "hold",
        "rule",
        *IDENTITY_FIELDS,
        *BANK_SETTINGS_FIELDS,
    }
)
QUERY_FIELDS = ("q", "purpose", "format", "expired", "saved", "next", "program", "batch", "hold")

# Values that are not ids, not codes, not text a handler expects (and some that almost are).
HOSTILE_PATH_VALUES = [
    "0",
    "-1",
    "999999999",
    "9" * 18,
    "9" * 19,
    "9" * 400,
    "1.5",
    "1e3",
    " 1",
    "+1",
    "0x10",
    "１２３",
    "፩",
    "²",
    "\x00",
    "a\x00b",
    "%00",
    "%",
    "\ud800",
    "😀",
    "ﾔﾏﾀﾞ",
    "\u202e1",
    "' OR '1'='1",
    "<script>alert(1)</script>",
    "{{7*7}}",
    "..",
    "Ａ" * 2000,
    "000000",
    "131016",
    "13101",
    "1310160",
]
HOSTILE_VALUES = [
    "\x00",
    "\ud800",
    "' OR '1'='1",
    "-1",
    "9" * 400,
    "፩",
    "²",
    "1e308",
    "Ａ" * 300,
    "<script>alert(1)</script>",
    "\r\nX: y",
    "",
]

PLAUSIBLE_QUERY = {"q": "ﾐｽﾞﾎ", "purpose": "review", "format": "jsonl", "expired": "1", "saved": "1"}
GET_BODIES = {"JSON object nested 10,000 deep", "60 KB of [ as JSON", "multipart, every field a file"}

JSON, FORM, MULTIPART = "application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=kyufu"


def _urlencoded(pairs) -> bytes:
    return urlencode(pairs, doseq=True, encoding="utf-8", errors="surrogatepass").encode()


def _multipart(token: str) -> bytes:
    """The CSRF token as a field, every other field as a file upload (a str where handlers expect one)."""
    parts = [b'--kyufu\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n' + token.encode() + b"\r\n"]
    for name in FORM_FIELDS:
        parts.append(
            b'--kyufu\r\nContent-Disposition: form-data; name="' + name.encode() + b'"; filename="../x.txt"'
            b"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\xff\xfe" + b"\r\n"
        )
    return b"".join(parts) + b"--kyufu--\r\n"


def hostile_bodies(token: str, code: str) -> list[tuple[str, bytes, str | None]]:
    """(name, body, content type) for a POST; `token` is the identity's CSRF token for that area."""
    deep_object = b'{"a":' * 10_000 + b"1" + b"}" * 10_000  # 60,001 bytes: under the body limit
    deep_array = b"[" * (60 * 1024)
    nested_31 = (
        b'{"municipality_code":"'
        + code.encode()
        + b'","access_code":"A","pin":"1","bank":{"holder_kana":'
        + b"[" * 31
        + b"]" * 31
        + b"}}"
    )
    bodies: list[tuple[str, bytes, str | None]] = [
        ("empty, no content type", b"", None),
        ("empty JSON", b"", JSON),
        ("empty form", b"", FORM),
        ("JSON object nested 10,000 deep", deep_object, JSON),
        ("60 KB of [ as JSON", deep_array, JSON),
        ("60 KB of [ as a form", deep_array, FORM),
        ("60 KB of [ as text/plain", deep_array, "text/plain"),
        ("60 KB of [ as multipart", deep_array, MULTIPART),
        ("JSON nested 31 deep inside a field", nested_31, JSON),
        ("invalid UTF-8 JSON", b'{"municipality_code":"\xff\xfe\xed\xa0\x80","pin":"\xc0\xaf"}', JSON),
        ("JSON NaN and Infinity", b'{"municipality_code":NaN,"access_code":Infinity,"pin":-Infinity}', JSON),
        ("JSON 5,000-digit number", b'{"municipality_code":1' + b"0" * 5000 + b"}", JSON),
        ("JSON 1e999", b'{"municipality_code":1e999,"bank":{"account_type":1e999}}', JSON),
        ("JSON duplicate keys", b'{"pin":"1","pin":{"pin":[]},"bank":1,"bank":{}}', JSON),
        ("JSON array", b"[]", JSON),
        ("JSON string", b'"x"', JSON),
        ("JSON null", b"null", JSON),
        ("JSON with a BOM", b"\xef\xbb\xbf{}", JSON),
        ("JSON in UTF-16", '{"pin":"1"}'.encode("utf-16"), JSON),
        ("JSON labelled as a form", b'{"csrf_token":"' + token.encode() + b'"}', FORM),
        ("form labelled as JSON", _urlencoded({"csrf_token": token, "pin": "1"}), JSON),
        ("form with an unknown charset", _urlencoded({"csrf_token": token}), FORM + "; charset=x-unknown"),
        (
            "invalid UTF-8 form",
            b"csrf_token="
            + token.encode()
            + b"".join(b"&" + f.encode() + b"=%ff%fe%ed%a0%80\xff\xc0\xaf" for f in FORM_FIELDS),
            FORM,
        ),
        (
            "form with every field repeated",
            _urlencoded([("csrf_token", token)] + [(f, v) for f in FORM_FIELDS for v in ("1", "x", "\x00")] * 8),
            FORM,
        ),
        ("form with 2,000 fields", _urlencoded([("csrf_token", token)] + [(f"f{i}", "x") for i in range(2000)]), FORM),
        ("form with one 60 KB field", _urlencoded({"csrf_token": token, "comment": "x" * (60 * 1024)}), FORM),
        ("form with a 60 KB field name", _urlencoded({"csrf_token": token, "x" * (60 * 1024): "1"}), FORM),
        ("multipart, every field a file", _multipart(token), MULTIPART),
        ("multipart without a boundary", _multipart(token), "multipart/form-data"),
        ("multipart cut short", _multipart(token)[:200], MULTIPART),
    ]
    for value in HOSTILE_VALUES:
        bodies.append(
            (
                f"form, every field {value[:12]!r}",
                _urlencoded([("csrf_token", token)] + [(f, value) for f in FORM_FIELDS]),
                FORM,
            )
        )
    return bodies


def plausible_form(token: str) -> tuple[str, bytes, str]:
    return "plausible form", _urlencoded({"csrf_token": token}), FORM


@dataclass(frozen=True)
class Endpoint:
    path: str  # with {name} placeholders
    methods: frozenset[str]
    params: tuple[str, ...]


def endpoints(routes, prefix: str = "") -> list[Endpoint]:
    """Every endpoint of a route list, mounts included (a mount without routes, like /static, is one
    endpoint with its remaining path as the parameter `path`)."""
    found = []
    for route in routes:
        if isinstance(route, Mount):
            if route.routes:
                found.extend(endpoints(route.routes, prefix + route.path))
            else:
                found.append(Endpoint(prefix + route.path + "/{path}", frozenset({"GET", "HEAD"}), ("path",)))
        elif isinstance(route, Route):
            found.append(
                Endpoint(prefix + route.path_format, frozenset(route.methods or {"GET"}), tuple(route.param_convertors))
            )
        else:
            raise AssertionError(f"{route!r}: a route of a kind this walker cannot fill; teach it")
    return found


@dataclass
class Walk:
    client: TestClient
    identity: str
    failures: list[str] = field(default_factory=list)
    requests: int = 0

    def send(self, method: str, url: str, what: str, content: bytes = b"", content_type: str | None = None) -> None:
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        if content_type:
            headers["content-type"] = content_type
        r = self.client.request(method, url, content=content or None, headers=headers)
        self.requests += 1
        if r.status_code >= 500:
            self.failures.append(f"{self.identity}: {method} {url[:120]} [{what}] -> {r.status_code}")


def _fill(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        # Percent-encoded as a client would send it (surrogates as the bytes a hostile client can send).
        path = path.replace("{" + name + "}", quote(value.encode("utf-8", "surrogatepass"), safe=""))
    return path


async def _entitlement_of(conn, application_id: int) -> int:
    return await conn.fetchval("SELECT entitlement_id FROM applications WHERE application_id = $1", application_id)


async def _paper_box(app_pool, w) -> dict[str, str]:
    """A box of one paper form (app/intake/paper.py), received by the reviewer."""
    import datetime as dt

    from app.intake import paper

    async with tenant_transaction(app_pool, w.code) as conn:
        box_id = await paper.receive_box(conn, w.code, w.staff["rev"], w.program_id, "B-1", dt.date.today(), 1)
        form_id = (await paper.box(conn, w.code, box_id))["forms"][0]["form_id"]
    return {"box_id": str(box_id), "form_id": str(form_id)}


@dataclass
class Targets:
    """What plausible path values point at: a municipality with staff of every role, applications, a
    drafted batch and its payment, a staff member to administer, and a resident's letter."""

    code: str
    ids: dict[str, str]
    staff: dict[str, int]
    letter: object


@pytest.fixture
async def world(make_world, app_pool, settings, transfer_date) -> Targets:
    w = await make_world(applications=2)
    async with tenant_transaction(app_pool, w.code) as conn:
        await add_bank_settings(conn, w.code)
        await add_application(conn, w, status="approved")
    batch_id = await draft(app_pool, w, transfer_date)
    async with tenant_transaction(app_pool, w.code) as conn:
        payment_id = await conn.fetchval("SELECT payment_id FROM payments WHERE batch_id = $1", batch_id)
        # Admin actions on staff ids act on this one, so the walk never disables the identities it uses.
        victim = await make_staff(conn, w, "victim", ["reviewer"])
        # An open enrolment link and a pending role request (app/staff/enrolment.py, grants.py).
        enrol_token = (await enrolment.issue(conn, w.cipher, w.code, w.staff["admin"], victim.staff_id)).token
        [grant_id] = await grants.request(conn, w.code, w.staff["admin"], victim.staff_id, ["drafter"])
        # A hold on the first application's entitlement (payouts/holds.py).
        hold_id = await holds.place_hold(
            conn, w.code, w.staff["rev"], await _entitlement_of(conn, w.applications[0]), "investigation", "x"
        )
    letter = (await make_letters(app_pool, settings.master_key_bytes, w.code, 1))[0]
    paper_ids = await _paper_box(app_pool, w)
    ids = {
        "code": w.code,
        "bank_code": "0001",
        "application_id": str(w.applications[0]),
        "program_id": str(w.program_id),
        "batch_id": str(batch_id),
        "payment_id": str(payment_id),
        "staff_id": str(victim.staff_id),
        "path": "kyufu.css",
        "token": enrol_token,
        "grant_id": str(grant_id),
        "account": "0" * 64,  # an account fingerprint no batch flags (guardrails' override)
        "lang": "en",  # the resident site's language switch (/lang/{lang})
        **paper_ids,
        "hold_id": str(hold_id),
    }
    return Targets(w.code, ids, {login: s.staff_id for login, s in w.staff.items()}, letter)


@pytest.fixture
def client(settings):
    # 5xx are collected, not raised: the walk reports every one it finds.
    with TestClient(create_app(settings), follow_redirects=False, raise_server_exceptions=False) as c:
        yield c


STAFF_ROLES = {"reviewer": "rev", "drafter": "draft", "approver": "appr", "admin": "admin"}


async def _become(client: TestClient, identity: str, world: Targets, app_pool, settings) -> dict[str, str]:
    """Sign the client in as `identity` (fresh: the previous route may have ended the session); return
    the CSRF token of each area."""
    client.cookies.clear()
    await forget_ip_failures(settings.redis_url)
    tokens = {"staff": csrf_from(client.get("/staff/login").text)}
    if identity == "anonymous":
        tokens["resident"] = csrf_from(client.get(f"/m/{world.code}/signin").text)
    elif identity == "resident":
        resident_sign_in(client, world.code, world.letter)
        tokens["resident"] = csrf_from(client.get(f"/m/{world.code}/bank").text)
    else:
        tokens["staff"] = await staff_signed_in(client, app_pool, world.code, world.staff[STAFF_ROLES[identity]])
    return tokens


def _walked_by(identity: str, endpoint: Endpoint) -> bool:
    # Staff cookies are scoped to /staff and a resident's session means nothing there: outside its area a
    # signed-in identity is the anonymous walk again.
    staff_area = endpoint.path.startswith("/staff")
    if identity == "anonymous":
        return True
    if identity == "resident":
        return not staff_area
    return staff_area


# A destructive route goes last, so the rest of the walk keeps its session for longer.
def _order(endpoint: Endpoint) -> tuple[bool, str]:
    return (endpoint.path.endswith(("/logout", "/signout")), endpoint.path)


@pytest.mark.slow
@pytest.mark.parametrize("identity", ["anonymous", "resident", *STAFF_ROLES])
async def test_no_route_answers_5xx_to_hostile_input(identity, world, client, app_pool, settings, caplog):
    all_endpoints = endpoints(client.app.routes)
    assert any(e.params for e in all_endpoints) and any(e.path.startswith("/static") for e in all_endpoints)
    walk = Walk(client, identity)
    caplog.set_level(logging.ERROR, logger="kyufu")
    for endpoint in sorted((e for e in all_endpoints if _walked_by(identity, e)), key=_order):
        tokens = await _become(client, identity, world, app_pool, settings)
        token = tokens["staff" if endpoint.path.startswith("/staff") else "resident"]
        missing = set(endpoint.params) - world.ids.keys()
        assert not missing, f"{endpoint.path}: give the walker a plausible value for {missing}"
        plausible = {p: world.ids[p] for p in endpoint.params}
        methods = sorted(endpoint.methods - {"HEAD"})
        # Path parameters, one at a time, hostile; the rest plausible.
        for param in endpoint.params:
            values = HOSTILE_PATH_VALUES + [world.ids[param], next_municipality_code()]
            for value in values:
                url = _fill(endpoint.path, plausible | {param: value})
                for method in methods:
                    what, content, ctype = plausible_form(token) if method == "POST" else ("", b"", None)
                    walk.send(method, url, f"{param}={value[:20]!r}", content, ctype)
        url = _fill(endpoint.path, plausible)
        if "HEAD" in endpoint.methods:
            walk.send("HEAD", url, "HEAD")
        if "PATCH" not in endpoint.methods:
            walk.send("PATCH", url, "undeclared method")
        bodies = hostile_bodies(token, world.code)
        for method in methods:
            if method != "GET":
                for name, content, ctype in bodies:
                    walk.send(method, url, name, content, ctype)
                continue
            # Handlers of GET read the query string, and must ignore a body.
            for value in HOSTILE_VALUES:
                walk.send(
                    "GET", url + "?" + _urlencoded([(q, value) for q in QUERY_FIELDS]).decode(), f"query {value[:12]!r}"
                )
            walk.send("GET", url + "?" + _urlencoded(PLAUSIBLE_QUERY).decode(), "plausible query")
            for name, content, ctype in bodies:
                if name in GET_BODIES:
                    walk.send("GET", url, name, content, ctype)
    errors = sorted({r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR})
    assert not walk.failures, (
        "\n".join(walk.failures[:80] + ["server log:"] + errors[:40])
        + f"\n({len(walk.failures)} of {walk.requests} requests)"
    )
    assert walk.requests > 500, walk.requests

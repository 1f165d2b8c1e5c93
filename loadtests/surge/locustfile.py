"""The surge scenario for locust: residents applying in a browser and through the API, residents
checking their status, and reviewers working the 審査 queue, all at once.

Run by loadtests/surge/run.py (`locust --headless`), configured by environment variables:

  SURGE_LETTERS       letters file of loadtests/submit_bench.py ("code<TAB>access_code<TAB>pin" lines)
  SURGE_LETTER_RANGE  "a:b": the lines this run may consume, one resident per line, never reused
  SURGE_STATUS_RANGE  "a:b": lines never applied with, for status checks before anyone has a receipt
  SURGE_STAFF         JSON list of reviewer accounts (login, password, TOTP secret or null)
  SURGE_RECORDS       where every request goes: "start_epoch_s,latency_ms,status,name" lines
  SURGE_RECEIPTS      where every receipt a client was given goes (JSON lines)
  SURGE_SUMMARY       a JSON summary written at exit (letters used, retries, give-ups)
  SURGE_PACING_S      each resident user starts one journey every this many seconds (default 10)
  SURGE_RETRY_CAP_S   clients honour Retry-After up to this many seconds (default 3)

Why the rate is set by pacing: each user is a slot that brings a new resident every SURGE_PACING_S
seconds (from a random first slot), whatever the answers took, so users / pacing is the offered
arrival rate (journeys/s) and doubling the users doubles it. The app's Retry-After is a minute; clients
wait at most SURGE_RETRY_CAP_S so that their retries land inside a bounded run (which makes the test
harsher, not kinder). Every wrong code/PIN would count against the single loopback address's failure
limit and soon answer 429 to everyone, so residents here never mistype.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pyotp
from locust import FastHttpUser, constant, events, task

PACING_S = float(os.environ.get("SURGE_PACING_S", "10"))
RETRY_CAP_S = float(os.environ.get("SURGE_RETRY_CAP_S", "3"))
THINK_S = (0.1, 0.4)  # between pages of one resident (short: a run reaches its steady load sooner)
API_ATTEMPTS = 6  # first try + retries with the same Idempotency-Key
WEB_ATTEMPTS = 3  # a browser user reloads a 「混み合っています」 page twice, then leaves
LOST_RESPONSE_SHARE = 0.05  # API clients that never saw their 201 and send the same request again
OTHER_HOLDER_SHARE = 10  # every 10th letter: an account in another person's name → 要審査
BANK = {"bank_code": "0001", "branch_code": "001", "account_type": "1"}

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
RECEIPT = re.compile(r'id="receipt-no">\s*([0-9-]+)\s*<')
REVIEW_LINK = re.compile(r'href="/staff/applications/(\d+)\?purpose=review"')


def _range(name: str) -> tuple[int, int]:
    a, b = os.environ.get(name, "0:0").split(":")
    return int(a), int(b)


def _load_letters() -> list[tuple[str, str, str]]:
    path = os.environ.get("SURGE_LETTERS")
    if not path:
        return []
    with open(path) as fh:
        return [tuple(line.rstrip("\n").split("\t")) for line in fh]  # type: ignore[misc]


LETTERS = _load_letters()
_next_letter = itertools.count(_range("SURGE_LETTER_RANGE")[0])
_letters_end = _range("SURGE_LETTER_RANGE")[1]
_status_range = _range("SURGE_STATUS_RANGE")
STAFF = json.loads(Path(os.environ["SURGE_STAFF"]).read_text()) if os.environ.get("SURGE_STAFF") else []
_next_staff = itertools.count()
# Which TOTP step each account last signed in with, kept across locust runs (one process per run).
_TOTP_USED = Path(os.environ.get("SURGE_STAFF", os.devnull) + ".totp-used")
TOTP_STEP_S = 30

applied: list[int] = []  # letters with a receipt: who checks status later
counts: dict = {
    "letters_used": 0,
    "letters_exhausted": 0,
    "api_retries": 0,
    "api_gave_up": 0,
    "web_retries": 0,
    "web_abandoned": 0,
    "web_abandoned_after_submit": 0,
    "replays": 0,
    "replay_mismatch": 0,
    "replay_gave_up": 0,
    "unexpected": 0,
    "reviews": 0,
    "review_conflicts": 0,
}
_files: dict = {}


@events.init.add_listener
def _open(environment, **_kw):
    _files["records"] = open(os.environ.get("SURGE_RECORDS", os.devnull), "w", buffering=1 << 16)
    _files["receipts"] = open(os.environ.get("SURGE_RECEIPTS", os.devnull), "w")


@events.test_start.add_listener
def _started(**_kw):
    counts["test_start"] = time.time()  # the run's clock starts here, after locust's own start-up


@events.test_stopping.add_listener
def _stopping(**_kw):
    # Where the offered load ends: measured, because locust's --run-time timer does not start exactly
    # at test_start (up to a second apart on a busy machine).
    counts["test_stopping"] = time.time()


@events.request.add_listener
def _record(request_type, name, response_time, response, exception, start_time=None, **_kw):
    status = getattr(response, "status_code", None) or 0  # 0: no HTTP answer (refused, reset, timed out)
    _files["records"].write(f"{start_time or time.time():.4f},{response_time:.2f},{status},{name}\n")


@events.quit.add_listener
def _close(**_kw):
    for fh in _files.values():
        fh.close()
    path = os.environ.get("SURGE_SUMMARY")
    if path:
        with open(path, "w") as fh:
            json.dump(counts | {"applied": len(applied)}, fh)


def _totp_used() -> dict:
    return json.loads(_TOTP_USED.read_text()) if _TOTP_USED.exists() else {}


def _receipt(letter: int, receipt_no: str, via: str) -> None:
    applied.append(letter)
    _files["receipts"].write(json.dumps({"letter": letter, "receipt_no": receipt_no, "via": via}) + "\n")


def _take_letter() -> int | None:
    i = next(_next_letter)
    if i >= _letters_end:
        counts["letters_exhausted"] += 1
        return None
    counts["letters_used"] += 1
    return i


def _holder(i: int) -> str:
    # make_letters registers ヤマダ タロウ as the head; another name is a kana mismatch for 審査.
    return "スズキ イチロウ" if i % OTHER_HOLDER_SHARE == OTHER_HOLDER_SHARE - 1 else "ヤマダ タロウ"


def _account(i: int) -> str:
    return f"{1000000 + i % 9000000:07d}"  # one account per letter: no account_shared flags


def _wait_after(response) -> float:
    """Honour Retry-After (capped), with jitter so retries do not arrive in lockstep."""
    try:
        asked = float(response.headers.get("Retry-After") or 1)
    except (TypeError, ValueError, AttributeError):
        asked = 1.0
    return min(asked, RETRY_CAP_S) * random.uniform(0.5, 1.0)


def _status(response) -> int:
    return getattr(response, "status_code", None) or 0


def _paced(user) -> float:
    """Wait until this user's next slot: slots are PACING_S apart from a random first one, whatever
    the journeys took. (locust's constant_pacing counts from the user's creation, so the random start
    delay eats into the first period and late starters begin their second journey right after the
    first: a burst of up to twice the rate in the first seconds of every run.)"""
    user.next_start += PACING_S
    return max(0.0, user.next_start - time.time())


_addresses = itertools.count(1)


def _own_address() -> dict:
    """Every simulated person comes from an address of their own (RFC 2544's benchmark range; a header
    only, no traffic goes there). The cluster's uvicorn believes X-Forwarded-For from loopback, as from a
    proxy; without it the whole surge would be one client to kyufu's per-client share."""
    n = next(_addresses)
    return {"X-Forwarded-For": f"198.{18 + (n >> 16) % 2}.{(n >> 8) & 255}.{n & 255}"}


class Resident(FastHttpUser):
    abstract = True
    wait_time = _paced
    network_timeout = 15.0
    connection_timeout = 5.0

    def __init__(self, environment) -> None:
        self.default_headers = _own_address()  # read by FastHttpUser.__init__ when it makes the client
        super().__init__(environment)

    def on_start(self) -> None:
        # Users are spawned at once; a random first slot spreads their arrivals evenly over one period.
        self.next_start = time.time() + random.uniform(0, PACING_S)
        time.sleep(self.next_start - time.time())

    def think(self) -> None:
        time.sleep(random.uniform(*THINK_S))

    def new_resident(self) -> None:
        """The next journey is another person on another device: no cookies, no open connection.
        (A connection kept across the pacing gap outlives uvicorn's 5 s keep-alive, and reusing it races
        with the server closing it: a POST then fails with 'connection closed'.)"""
        self.client.cookiejar.clear()
        self.client.client.close()

    def next_applicant(self) -> int | None:
        """Index of the next unused letter, as a new resident (None once the letters run out)."""
        i = _take_letter()
        if i is not None:
            self.new_resident()
        return i


class ResidentWeb(Resident):
    """A resident with a 確認書 in a browser: start, sign-in, household, bank (with type-ahead),
    confirm, receipt, sometimes status, sign-out. Every form POST carries the page's CSRF token."""

    weight = 2

    def page(self, method: str, url: str, name: str, data: dict | None = None):
        for attempt in range(WEB_ATTEMPTS):
            r = self.client.request(
                method, url, name=name + (" (retry)" if attempt else ""), data=data, allow_redirects=False
            )
            if _status(r) not in (0, 503):
                return r
            if attempt + 1 < WEB_ATTEMPTS:
                counts["web_retries"] += 1
                time.sleep(_wait_after(r))
        return None

    @task
    def apply(self) -> None:
        i = self.next_applicant()
        if i is None:
            return
        code, access, pin = LETTERS[i]
        m = f"/m/{code}"
        steps = [
            ("GET", m + "/", "web GET start", None, 200),
            ("GET", "/static/kyufu.css", "web GET static", None, 200),
            ("GET", m + "/signin", "web GET signin", None, 200),
            ("POST", m + "/signin", "web POST signin", {"access_code": access, "pin": pin}, 303),
            ("GET", m + "/household", "web GET household", None, 200),
            ("GET", "/api/v1/banks?q=" + quote("みずほ"), "web GET bank type-ahead", None, 200),
            ("GET", m + "/bank", "web GET bank", None, 200),
            ("GET", "/api/v1/banks/0001/branches?q=" + quote("東京"), "web GET branch type-ahead", None, 200),
            (
                "POST",
                m + "/bank",
                "web POST bank",
                BANK | {"account_number": _account(i), "holder_kana": _holder(i)},
                303,
            ),
            ("GET", m + "/confirm", "web GET confirm", None, 200),
            ("POST", m + "/confirm", "web POST confirm", {}, 303),
            ("GET", m + "/receipt", "web GET receipt", None, 200),
        ]
        token = ""
        for method, url, name, data, expected in steps:
            if method == "POST":
                assert data is not None, "every POST step above lists its form's fields ({} for none)"
                data = dict(data, csrf_token=token)
            r = self.page(method, url, name, data)
            if r is None or _status(r) != expected:
                counts[
                    "web_abandoned_after_submit" if name in ("web POST confirm", "web GET receipt") else "web_abandoned"
                ] += 1
                if r is not None:
                    counts["unexpected"] += 1
                return
            found = CSRF.search(r.text or "") if expected == 200 and method == "GET" else None
            token = found.group(1) if found else token
            if name == "web GET receipt":
                got = RECEIPT.search(r.text or "")
                if got is None:
                    counts["unexpected"] += 1
                    return
                _receipt(i, got.group(1).replace("-", ""), "web")
            self.think()
        if random.random() < 0.3:
            self.page("GET", m + "/status", "web GET status (signed in)")
            self.think()
        self.page("POST", m + "/signout", "web POST signout", {"csrf_token": token})


class ResidentApi(Resident):
    """A client of the JSON API: one POST per resident with its own Idempotency-Key; on 503, a
    connection error or a timeout it sends the same request with the same key again, after the
    (capped) Retry-After. Some never saw their 201 and resend it: the answer must be the same receipt."""

    weight = 2

    def submit(self, body: dict, key: str, name: str):
        return self.client.post("/api/v1/applications", json=body, headers={"Idempotency-Key": key}, name=name)

    @task
    def apply(self) -> None:
        i = self.next_applicant()
        if i is None:
            return
        code, access, pin = LETTERS[i]
        body = {
            "municipality_code": code,
            "access_code": access,
            "pin": pin,
            "bank": {
                "bank_code": BANK["bank_code"],
                "branch_code": BANK["branch_code"],
                "account_type": 1,
                "account_number": _account(i),
                "holder_kana": _holder(i),
            },
        }
        key = str(uuid.uuid4())
        for attempt in range(API_ATTEMPTS):
            r = self.submit(body, key, "api POST applications" + (" (retry)" if attempt else ""))
            status = _status(r)
            if status in (201, 409):
                payload = _json(r)
                if status == 409 and payload.get("error", {}).get("type") == "in_flight":
                    time.sleep(1.0)  # our own earlier attempt is still being written
                elif "receipt_no" in payload:
                    _receipt(i, payload["receipt_no"], "api")
                    if status == 201 and random.random() < LOST_RESPONSE_SHARE:
                        self.replay(body, key, payload["receipt_no"])
                    return
                else:
                    counts["unexpected"] += 1
                    return
            elif status in (0, 503):
                time.sleep(_wait_after(r) if status == 503 else random.uniform(0.5, 1.0) * RETRY_CAP_S)
            else:
                counts["unexpected"] += 1
                return
            counts["api_retries"] += 1
        counts["api_gave_up"] += 1

    def replay(self, body: dict, key: str, receipt_no: str) -> None:
        time.sleep(random.uniform(0.1, 0.5))
        for _ in range(API_ATTEMPTS):
            r = self.submit(body, key, "api POST applications (lost-response replay)")
            if _status(r) not in (0, 503):
                break
            time.sleep(_wait_after(r))
        if _status(r) in (0, 503):
            counts["replay_gave_up"] += 1  # never answered: nothing to compare
            return
        counts["replays"] += 1
        if _status(r) != 201 or _json(r).get("receipt_no") != receipt_no:
            counts["replay_mismatch"] += 1


def _json(r) -> dict:
    try:
        data = r.json()
    except Exception:  # not JSON (a proxy page, a cut connection): the caller counts it as unexpected
        return {}
    return data if isinstance(data, dict) else {}


class StatusChecker(Resident):
    """A resident asking where their application stands: half through the API, half on the status page
    (code + PIN form). Letters that got a receipt in this run are asked about; before there are any, a
    reserved range of letters nobody applies with (answer: 未申請)."""

    weight = 1

    def _letter(self) -> tuple[str, str, str]:
        if applied:
            return LETTERS[random.choice(applied)]
        a, b = _status_range
        return LETTERS[random.randrange(a, b)]

    @task
    def check(self) -> None:
        code, access, pin = self._letter()
        self.new_resident()
        api = random.random() < 0.5
        for attempt in range(WEB_ATTEMPTS):
            again = " (retry)" if attempt else ""
            if api:
                r = self.client.post(
                    "/api/v1/status",
                    json={"municipality_code": code, "access_code": access, "pin": pin},
                    name="status POST api" + again,
                )
            else:
                self.client.cookiejar.clear()
                r = self.client.get(f"/m/{code}/status", name="status GET page" + again, allow_redirects=False)
                found = CSRF.search(r.text or "") if _status(r) == 200 else None
                if found:
                    self.think()
                    r = self.client.post(
                        f"/m/{code}/status",
                        name="status POST page",
                        allow_redirects=False,
                        data={"csrf_token": found.group(1), "access_code": access, "pin": pin},
                    )
            if _status(r) not in (0, 503):
                if _status(r) != 200:
                    counts["unexpected"] += 1
                return
            time.sleep(_wait_after(r))


class StaffReviewer(FastHttpUser):
    """A 審査 reviewer: signs in (password, and a TOTP code where the account has one), opens the
    dashboard, then takes applications from the queue one by one: the detail view for the purpose
    「審査」 and a decision (mostly approve; a rejection carries a comment). Two reviewers may pick the
    same application; the second gets 409, as in the office."""

    abstract = not STAFF  # no accounts given: no reviewers (locust would otherwise weight them in)
    fixed_count = len(STAFF)
    wait_time = constant(2)  # plus the reading and deciding inside the task: ~one decision per 3-4 s
    network_timeout = 15.0

    def __init__(self, environment) -> None:
        self.default_headers = _own_address()
        super().__init__(environment)

    def on_start(self) -> None:
        self.account = STAFF[next(_next_staff) % len(STAFF)]
        self.signed_in = False

    def sign_in(self) -> None:
        r = self.client.get("/staff/login", name="staff GET login")
        token = CSRF.search(r.text or "") if _status(r) == 200 else None
        if token is None:
            return  # shed or failed: the next task tries again
        totp = self.totp_code()
        r = self.client.post(
            "/staff/login",
            name="staff POST login",
            allow_redirects=False,
            data={
                "csrf_token": token.group(1),
                "municipality_code": self.account["municipality"],
                "login": self.account["login"],
                "password": self.account["password"],
                "totp": totp,
            },
        )
        if _status(r) == 303:
            self.signed_in = True
            if totp:
                _TOTP_USED.write_text(json.dumps(_totp_used() | {self.account["login"]: self.step}))
            self.client.get("/staff/", name="staff GET dashboard")
        elif _status(r) != 503:
            counts["unexpected"] += 1

    def totp_code(self) -> str:
        """The authenticator's code. kyufu refuses a step at or before the last one used (replay) and
        accepts one step ahead (clock drift); when the previous locust run signed in within this same
        30 s step, the next step's code is used, so every sign-in happens at the start of its run
        instead of up to 30 s into it. A failed sign-in would count towards the account's lockout."""
        if not self.account["totp_secret"]:
            return ""
        current = int(time.time() // TOTP_STEP_S)
        self.step = max(current, _totp_used().get(self.account["login"], -1) + 1)
        if self.step > current + 1:  # two runs within one step: wait like a person would
            time.sleep((self.step - 1) * TOTP_STEP_S - time.time() + 0.1)
        return pyotp.TOTP(self.account["totp_secret"]).at(self.step * TOTP_STEP_S)

    @task
    def review(self) -> None:
        if not self.signed_in:
            self.sign_in()
            return
        r = self.client.get("/staff/review", name="staff GET review queue", allow_redirects=False)
        if _status(r) == 303:
            self.signed_in = False
            return
        ids = REVIEW_LINK.findall(r.text or "") if _status(r) == 200 else []
        if not ids:
            return
        app_id = random.choice(ids)  # all shown (≤ 200): two reviewers rarely pick the same
        time.sleep(random.uniform(0.5, 1.0))
        r = self.client.get(f"/staff/applications/{app_id}?purpose=review", name="staff GET application")
        token = CSRF.search(r.text or "") if _status(r) == 200 else None
        if token is None:
            return
        time.sleep(random.uniform(0.5, 1.0))
        decision = (
            {"decision": "approve", "comment": ""}
            if random.random() < 0.9
            else {"decision": "reject", "comment": "口座名義が申請者と異なるため"}
        )
        r = self.client.post(
            f"/staff/applications/{app_id}/decision",
            name="staff POST decision",
            allow_redirects=False,
            data={"csrf_token": token.group(1)} | decision,
        )
        if _status(r) == 303:
            counts["reviews"] += 1
        elif _status(r) == 409:
            counts["review_conflicts"] += 1
        elif _status(r) != 503:
            counts["unexpected"] += 1

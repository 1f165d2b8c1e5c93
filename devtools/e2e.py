"""`kyufu demo e2e`: the whole chain, headless, on the real functions and a live database.

synthetic registry → 確認書型 program → eligibility → letters (print file) → residents sign in with the
letter and apply (most households online through the API's write path; some return the paper form, which
two clerks key at the console, app/intake/paper.py; some with a holder name or an account that
verification must flag) → the verification job → 審査 of what it flagged →
振込起案 → 振込承認 by a second staff member → release (render, age, signed manifest) → the bank
(verify and accept into its ledger, execute in the simulator, returns CSV) → returns import.

Every step opens its own tenant transaction here, as the request or job doing it in production would;
none is re-implemented. What residents and staff choose comes from one seeded random generator.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import datetime as dt
import hashlib
import io
import json
import os
import random
import secrets
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import zengin_code

from app.db import connect_owner, create_app_pool
from app.intake import banks, paper
from app.intake.claims import Claim, insert_claims
from app.intake.forms import BankAccount, FormInvalid, normalise_access_code, normalise_pin, parse_bank
from app.intake.signin import authenticate, municipality_keys
from app.registry.eligibility import determine_eligibility
from app.registry.imports import import_accounts, import_residents, import_tax
from app.registry.letters import EXPORT_HEADER, export_csv, export_letters, issue_letters
from app.registry.programs import create_program, parse_program
from app.staff import accounts, review
from app.tenancy.codes import check_digit, validate_code
from app.tenancy.municipalities import (
    MunicipalityExists,
    add_municipality,
    list_municipalities,
    load_field_cipher,
    signing_public_key,
)
from app.tenancy.transaction import tenant_transaction
from devtools import banksim
from devtools.synthetic import generate
from payouts import bank, batches, drafting, reconcile, sealing, settings_store, zengin
from payouts.bankdays import JST, earliest_transfer_date, today_jst
from payouts.returns_csv import write_returns_csv
from payouts.settings_store import BankSettingsMissing, StoredBankSettings
from workers.payouts import run_due
from workers.verification import verify_applications_batch

ACTOR = "demo-e2e"
BASE_DATE = dt.date(2026, 4, 1)  # before the synthetic extract's 世帯分離 (May), as in the registry demo
FISCAL_YEAR = 2026
APPLY_SHARE = 0.9  # of entitled households
PAPER_SHARE = 0.1  # of applicants: a returned paper 申請書, keyed twice by two clerks at the console
PAPER_BOX = 500  # forms per box of returned paper forms
OTHER_NAME_SHARE = 0.05  # holder kana of nobody in the household (kana_mismatch)
MEMBER_HOLDER_SHARE = 0.04  # another member's account (holder_is_member_not_applicant)
RETURN_SHARE = 0.05  # of payments, returned by the bank simulator
CLAIM_GROUP = 200  # online claims per transaction, as the API's batcher groups them
VERIFY_GROUP = 250  # applications per verification job
IDENTITY_FILE = "bank-identity.txt"

# Where residents bank: ゆうちょ, the megabanks and two net banks most often, else any bank of zengin-code.
POPULAR_BANKS = ["9900"] * 5 + ["0001"] * 3 + ["0005"] * 3 + ["0009"] * 3 + ["0010", "0036", "0033"]
ALL_BANKS = sorted(c for c, b in zengin_code.Bank.all.items() if b.branches and c != banks.YUCHO)
# 通常貯金 記号 1xxx0 maps to 店番 xx8 (banks.yucho_to_zengin); only 店番 that exist can be typed.
YUCHO_BRANCHES = sorted(c for c in zengin_code.Bank.all[banks.YUCHO].branches if c.endswith("8"))

APPLICATION_STATUSES = """
SELECT a.status, count(*) AS n FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
WHERE a.municipality_code = $1 AND e.program_id = $2 GROUP BY a.status ORDER BY a.status
"""
FLAGGED = """
SELECT a.application_id, a.reason_codes FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
WHERE a.municipality_code = $1 AND e.program_id = $2 AND a.status = 'needs_review' ORDER BY a.application_id
"""
BATCH_PAYMENTS = """
SELECT status, count(*) AS n FROM payments WHERE municipality_code = $1 AND batch_id = $2 GROUP BY status
"""
RETURNS = """
SELECT r.reason_code, r.reason, count(*) AS n FROM payment_returns r
JOIN payments p ON p.municipality_code = r.municipality_code AND p.payment_id = r.payment_id
WHERE r.municipality_code = $1 AND p.batch_id = $2 GROUP BY r.reason_code, r.reason ORDER BY r.reason_code
"""


class E2EError(Exception):
    """The chain cannot be completed with this data (e.g. so few households that nobody is payable)."""


@dataclass
class E2EReport:
    """What one run did and left behind; `summary()` is what `kyufu demo e2e` prints."""

    municipality_code: str
    municipality_created: bool
    out_dir: Path
    households: int = 0
    residents: int = 0
    program_id: int = 0
    entitlements: int = 0
    entitled_yen: int = 0
    letters: int = 0
    applications_submitted: dict[str, int] = field(default_factory=dict)  # by channel
    form_refused: int = 0
    paper: dict[str, int] = field(default_factory=dict)  # paper forms by their state after both entries
    verification: dict[str, int] = field(default_factory=dict)  # status right after verification
    flagged_reasons: dict[str, int] = field(default_factory=dict)
    reviewed: dict[str, int] = field(default_factory=dict)  # approve / reject
    applications: dict[str, int] = field(default_factory=dict)  # final status
    batch_ids: list[int] = field(default_factory=list)
    recovery_case: str | None = None
    record_count: int = 0
    total_yen: int = 0
    transfer_date: dt.date | None = None
    approved_sha256: str = ""
    age_path: Path | None = None
    manifest_path: Path | None = None
    identity_path: Path | None = None
    public_key_path: Path | None = None
    letters_path: Path | None = None
    returns_path: Path | None = None
    bank_key_id: str = ""
    ledger_path: Path | None = None  # the bank's ledger (payouts/bank.py), beside its identity in out_dir
    file_id: str = ""
    returned: dict[str, int] = field(default_factory=dict)  # "code reason" -> count
    paid: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def age_command(self) -> str:
        assert self.age_path is not None, "set once the file is released"
        plain = self.out_dir / self.age_path.name.removesuffix(sealing.AGE_SUFFIX)
        return f"age -d -i {self.identity_path} -o {plain} {self.age_path}"

    @property
    def verify_command(self) -> str:
        """Checks the file again without the ledger: the run has accepted it already."""
        return (
            f"kyufu bank verify {self.age_path} {self.manifest_path} --public-key {self.public_key_path} "
            f"--identity {self.identity_path} --no-ledger"
        )

    @property
    def accept_again_command(self) -> str:
        """What the bank's ledger refuses: accepting the same file a second time (already_accepted)."""
        return (
            f"kyufu bank verify {self.age_path} {self.manifest_path} --public-key {self.public_key_path} "
            f"--identity {self.identity_path} --ledger {self.ledger_path}"
        )

    def summary(self) -> list[str]:
        def counts(d: dict[str, int]) -> str:
            return ", ".join(f"{k} {v:,}" for k, v in d.items()) or "none"

        return [
            f"municipality {self.municipality_code} ({'created' if self.municipality_created else 'existing'}), "
            f"program {self.program_id}",
            f"registry: {self.households:,} households, {self.residents:,} residents",
            f"entitlements: {self.entitlements:,} households, {self.entitled_yen:,} yen; letters {self.letters:,}",
            f"applications submitted: {counts(self.applications_submitted)}"
            + (f" (bank form refused {self.form_refused})" if self.form_refused else ""),
            f"paper forms keyed twice at the console: {counts(self.paper)}",
            f"after verification: {counts(self.verification)}",
            f"flagged: {self.verification.get('needs_review', 0):,} ({counts(self.flagged_reasons)}); "
            f"reviewed: {counts(self.reviewed)}",
            f"applications now: {counts(self.applications)}",
            f"batches: {len(self.batch_ids)} ({', '.join(map(str, self.batch_ids))}), {self.record_count:,} payments, "
            f"{self.total_yen:,} yen, transfer date {self.transfer_date}",
            f"approved sha256: {self.approved_sha256}",
            f"bank verify: OK (signing key {self.bank_key_id}, plaintext, Zengin parse, count, total, references); "
            f"accepted into the bank's ledger as file {self.file_id}",
            f"returned: {sum(self.returned.values()):,} ({counts(self.returned)}); paid: {self.paid:,}",
            *([self.recovery_case] if self.recovery_case else []),
            f"files in {self.out_dir}:",
            f"  sealed file     {self.age_path}",
            f"  manifest        {self.manifest_path}",
            f"  bank identity   {self.identity_path}",
            f"  bank ledger     {self.ledger_path}",
            f"  public key      {self.public_key_path}",
            f"  letters (print) {self.letters_path}",
            f"  returns (bank)  {self.returns_path}",
            "decrypt:  " + self.age_command,
            "verify:   " + self.verify_command,
            "again:    " + self.accept_again_command + "   (refused: the ledger has accepted this file)",
            "seconds:  " + ", ".join(f"{k} {v:.2f}" for k, v in self.seconds.items()),
        ]


@dataclass(frozen=True)
class _Person:
    family_kana: str
    given_kana: str


class _Clock:
    def __init__(self, report: E2EReport) -> None:
        self.report, self.last = report, time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.report.seconds[step] = now - self.last
        self.last = now


async def run_e2e(
    settings,
    households: int,
    out_dir: Path,
    municipality: str | None = None,
    *,
    seed: int = 1,
    return_share: float = RETURN_SHARE,
) -> E2EReport:
    """Run the chain for `households` synthetic households; leave the bank's files in `out_dir`.

    `municipality` is used as it is if registered (its bank settings keep their recipients; ours is
    added), else registered; by default a fresh, unused code is chosen so runs do not interfere."""
    if households < 1:
        raise ValueError("households must be at least 1")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    code, created = await _municipality(settings, municipality)
    report = E2EReport(code, created, out_dir)
    clock = _Clock(report)
    pool = await create_app_pool(settings, min_size=1, max_size=4)
    try:
        files = generate(households, seed=seed)
        report.households, report.residents = files.households, files.residents
        people = _households(files.residents_csv)
        await _registry_and_program(pool, settings, report, files)
        clock.lap("registry+eligibility")
        rows = await _letters(pool, settings, report)
        clock.lap("letters")
        # Seeded per program too: a second run in the same municipality gives other accounts, which
        # verification would otherwise flag as shared with the first run's applications.
        staff = await _staff(pool, settings, code)
        app_ids = await _apply(
            pool, settings, report, rows, people, random.Random(f"{seed}/{report.program_id}"), staff
        )
        clock.lap("applications")
        await _verify(pool, settings, report, app_ids)
        clock.lap("verification")
        await _review(pool, settings, report, staff["reviewer"])
        clock.lap("review")
        await _bank_settings(pool, report)
        batch_id = await _draft_and_approve(pool, settings, report, staff["drafter"], staff["approver"])
        await _release(pool, settings, report, staff["approver"], batch_id)
        clock.lap("draft+approve+release")
        await _bank_side(pool, report, batch_id, seed, return_share)
        clock.lap("bank+returns")
        # A 返還 case on one paid payment (the console's own functions), for staff to open in the demo.
        from devtools.demo_recovery import seed_recovery_case

        report.recovery_case = await seed_recovery_case(pool, code, staff["drafter"], staff["reviewer"])
    finally:
        await pool.close()
    return report


# --- steps ----------------------------------------------------------------------------------------


async def _municipality(settings, code: str | None) -> tuple[str, bool]:
    conn = await connect_owner(settings)  # only the owner may register a tenant
    try:
        taken = {m.code for m in await list_municipalities(conn)}
        if code is not None:
            validate_code(code)
            if code in taken:
                return code, False
        else:
            rng = random.SystemRandom()
            while code is None or code in taken:
                body = f"{rng.randint(1, 47):02d}{rng.randint(0, 999):03d}"
                code = body + check_digit(body)
        try:
            await add_municipality(conn, settings.master_key_bytes, code, f"E2Eデモ（{code}）")
        except MunicipalityExists:  # registered by someone else since the list: use it
            return code, False
        return code, True
    finally:
        await conn.close()


def _households(residents_csv: bytes) -> dict[str, list[_Person]]:
    """Current members per 世帯番号 of the synthetic extract: what a resident knows of their family."""
    members: dict[str, list[_Person]] = collections.defaultdict(list)
    for row in csv.DictReader(io.StringIO(residents_csv.decode("utf-8"))):
        if not row["消除日"]:
            members[row["世帯番号"]].append(_Person(row["氏カナ"], row["名カナ"]))
    return members


async def _registry_and_program(pool, settings, report: E2EReport, files) -> None:
    today = today_jst()
    spec = parse_program(
        dict(
            name=f"E2Eデモ 物価高騰対策給付金（確認書型）{dt.datetime.now(JST):%Y-%m-%d %H:%M:%S}",
            base_date=BASE_DATE,
            unit="household",
            amount_yen=30000,
            child_amount_yen=20000,
            payment_mode="letter",
            apply_from=today - dt.timedelta(days=7),
            apply_until=today + dt.timedelta(days=90),
        )
    )
    async with tenant_transaction(pool, report.municipality_code) as conn:
        code = report.municipality_code
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        await import_residents(conn, code, files.residents_csv)
        await import_tax(conn, code, FISCAL_YEAR, files.tax_csv)
        if files.accounts_csv.count(b"\n") > 1:  # a handful of households may have no registered account
            await import_accounts(conn, cipher, code, files.accounts_csv)
        report.program_id = await create_program(conn, code, spec)
        result = await determine_eligibility(conn, code, report.program_id)
    report.entitlements, report.entitled_yen = result.households, result.total_yen


async def _letters(pool, settings, report: E2EReport) -> list[list[str]]:
    """Issue, then export the print file into out_dir (written before the export commits)."""
    code, program_id = report.municipality_code, report.program_id
    async with tenant_transaction(pool, code) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        report.letters = len(await issue_letters(conn, cipher, code, program_id, ACTOR))
    path = report.out_dir / f"letters-{code}-p{program_id}.csv"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        async with tenant_transaction(pool, code) as conn:
            cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
            rows = await export_letters(conn, cipher, code, program_id, ACTOR)
            data = export_csv(rows)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # the rollback keeps the PINs
        raise
    report.letters_path = path
    return rows


def _typed_account(rng: random.Random, holder_kana: str) -> dict:
    """The bank form as a resident fills it in (codes from the zengin-code data)."""
    bank_code = rng.choice(POPULAR_BANKS) if rng.random() < 0.8 else rng.choice(ALL_BANKS)
    if bank_code == banks.YUCHO:
        branch = rng.choice(YUCHO_BRANCHES)
        return {
            "bank_code": bank_code,
            "yucho_kigou": f"1{branch[:2]}{rng.randrange(10)}0",
            "yucho_bangou": f"{rng.randrange(10**7):07d}1",
            "holder_kana": holder_kana,
        }
    branch = rng.choice(banks.search_branches(bank_code, "", limit=100_000)).code
    return {
        "bank_code": bank_code,
        "branch_code": branch,
        "account_type": 4 if rng.random() < 0.03 else 1,
        "account_number": f"{rng.randrange(10**7):07d}",
        "holder_kana": holder_kana,
    }


def _holder(rng: random.Random, head_kana: str, family: list[_Person], other_families: list[str]) -> str:
    """Mostly the addressee's own name (sometimes typed without the space); a few deliberate mismatches."""
    roll = rng.random()
    head_family, _, head_given = head_kana.partition(" ")
    others = [p for p in family if (p.family_kana, p.given_kana) != (head_family, head_given)]
    if roll < OTHER_NAME_SHARE:
        return f"{rng.choice([f for f in other_families if f != head_family] or ['ヤマダ'])} {head_given}"
    if roll < OTHER_NAME_SHARE + MEMBER_HOLDER_SHARE and others:
        member = rng.choice(others)
        return f"{member.family_kana} {member.given_kana}"
    return head_kana.replace(" ", "") if rng.random() < 0.2 else head_kana


async def _apply(
    pool, settings, report: E2EReport, rows: list[list[str]], people, rng, staff: dict[str, accounts.Staff]
) -> list[int]:
    """Most households sign in with their letter and apply; a few return the paper form instead, which two
    clerks key at the console; a few pairs give the same account."""
    col = {name: i for i, name in enumerate(EXPORT_HEADER)}
    families = sorted({p.family_kana for members in people.values() for p in members})
    forms: list[list] = []  # [access code, PIN, bank form, channel]
    for row in rows:
        if rng.random() >= APPLY_SHARE:
            continue
        holder = _holder(rng, row[col["世帯主氏名カナ"]], people.get(row[col["世帯番号"]], []), families)
        channel = "paper" if rng.random() < PAPER_SHARE else "online"
        forms.append(
            [row[col["確認書番号"]], row[col["暗証番号"]], _typed_account(rng, holder), channel, row[col["対象人数"]]]
        )
    for _ in range(max(1, len(forms) // 100)):  # one household types another's account (account_shared)
        if len(forms) >= 2:
            a, b = rng.sample(range(len(forms)), 2)
            forms[b][2] = {**forms[a][2], "holder_kana": forms[b][2]["holder_kana"]}
    typed: list[tuple[str, str, BankAccount, str]] = []  # (access code, PIN, resolved account, channel)
    on_paper = [f for f in forms if f[3] == "paper"]
    for access_code, pin, form, channel, _ in forms:
        if channel == "paper":
            continue  # the clerks read the form as it is (app/intake/paper.py checks it)
        try:
            account = parse_bank(form)
        except FormInvalid:  # the page would ask again; this resident gives up
            report.form_refused += 1
            continue
        typed.append((normalise_access_code(access_code), normalise_pin(pin), account, channel))
    code = report.municipality_code
    submitted: collections.Counter[str] = collections.Counter()
    app_ids: list[int] = []
    for start in range(0, len(typed), CLAIM_GROUP):
        group = typed[start : start + CLAIM_GROUP]
        online = [t for t in group if t[3] == "online"]
        async with tenant_transaction(pool, code) as conn:  # as the API's batcher: sign in and claim together
            keys = await municipality_keys(conn, settings.master_key_bytes, code)
            claims = []
            for (access_code, _, account, _), letter in zip(
                online, await authenticate(conn, keys, code, [(t[0], t[1]) for t in online])
            ):
                body = json.dumps({"access_code": access_code, "bank": account.to_session()}, sort_keys=True)
                claims.append(
                    Claim(
                        _signed_in(letter).entitlement_id,
                        account,
                        "online",
                        idempotency_key=uuid.uuid4().hex,
                        request_sha256=hashlib.sha256(body.encode()).digest(),
                    )
                )
            app_ids += [_created(o) for o in await insert_claims(conn, keys, code, claims)]
        submitted["online"] += len(claims)
    paper_ids = await _key_paper(pool, settings, report, on_paper, staff)
    app_ids += paper_ids
    submitted["paper"] = len(paper_ids)
    report.applications_submitted = dict(sorted(submitted.items()))
    return app_ids


async def _key_paper(pool, settings, report: E2EReport, forms: list[list], staff) -> list[int]:
    """The returned paper forms, as the console handles them: received in boxes, each form keyed by two
    clerks (e2e-keyer1, then e2e-keyer2) from what is written on it, each entry in its own transaction as
    the entry page's POST does. A clerk who cannot read the account (the resident wrote one that does not
    exist) marks it illegible, and the form becomes 不備. Returns the applications created."""
    code, created = report.municipality_code, []
    for start in range(0, len(forms), PAPER_BOX):
        box = forms[start : start + PAPER_BOX]
        async with tenant_transaction(pool, code) as conn:
            box_id = await paper.receive_box(
                conn,
                code,
                staff["keyer1"],
                report.program_id,
                f"E2E-{report.program_id}-{start // PAPER_BOX + 1}",
                today_jst(),
                len(box),
            )
            form_ids = [f["form_id"] for f in (await paper.box(conn, code, box_id))["forms"]]
        for form_id, (access_code, _, account, _, members) in zip(form_ids, box):
            written = {k: str(v) for k, v in account.items()} | {
                "identifier": access_code,
                "members": ",".join(str(n) for n in range(1, int(members) + 1)),  # every member wants it
                "id_document": "1",
                "account_document": "1",
            }
            for clerk in ("keyer1", "keyer2"):
                async with tenant_transaction(pool, code) as conn:
                    try:
                        keyed = await paper.key_entry(conn, settings, code, staff[clerk], form_id, written)
                    except paper.EntryInvalid as exc:
                        written = _illegible(written, exc.errors)
                        keyed = await paper.key_entry(conn, settings, code, staff[clerk], form_id, written)
            report.paper[keyed.state] = report.paper.get(keyed.state, 0) + 1
            if keyed.state == "submitted":
                assert keyed.application_id is not None
                created.append(keyed.application_id)
    return created


def _illegible(written: dict, errors: dict[str, str]) -> dict:
    """What a clerk keys for a form whose account (or holder) cannot be what is written: marked illegible."""
    items = {"holder"} if "holder_kana" in errors else set()
    if set(errors) - {"holder_kana"}:
        items.add("account")
    return written | {"illegible": sorted(items)}


def _signed_in(letter):
    if letter is None:
        raise RuntimeError("a letter from the print file did not sign in")
    return letter


def _created(outcome) -> int:
    if outcome.kind != "created":
        raise RuntimeError(f"application not created: {outcome.kind}")
    return outcome.application_id


async def _verify(pool, settings, report: E2EReport, app_ids: list[int]) -> None:
    """The verification job, as the worker runs it (outbox rows marked done with the decisions)."""
    ctx = {"pool": pool, "settings": settings}
    for start in range(0, len(app_ids), VERIFY_GROUP):
        await verify_applications_batch(ctx, report.municipality_code, app_ids[start : start + VERIFY_GROUP])
    async with tenant_transaction(pool, report.municipality_code, readonly=True) as conn:
        report.verification = await _statuses(conn, report)
        flagged = await conn.fetch(FLAGGED, report.municipality_code, report.program_id)
    reasons = collections.Counter(r for row in flagged for r in row["reason_codes"])
    report.flagged_reasons = dict(sorted(reasons.items()))


async def _statuses(conn, report: E2EReport) -> dict[str, int]:
    rows = await conn.fetch(APPLICATION_STATUSES, report.municipality_code, report.program_id)
    return {r["status"]: r["n"] for r in rows}


async def _staff(pool, settings, code: str) -> dict[str, accounts.Staff]:
    """A reviewer, a drafter and an approver, made as a municipality makes them: two admins create and
    confirm them, and each enrols through their link (devtools/demo_staff.py). The admins are the
    municipality's first two if it has two (the demo's admin and admin2), else two that the operator "e2e"
    bootstraps."""
    from app.staff.actors import Operator
    from devtools.demo_staff import Person, provision

    async with tenant_transaction(pool, code) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        existing = await conn.fetch(
            "SELECT login FROM staff_users WHERE municipality_code = $1 AND 'admin' = ANY (roles)"
            " AND disabled_at IS NULL ORDER BY staff_id LIMIT 2",
            code,
        )
        logins = [r["login"] for r in existing] if len(existing) == 2 else ["e2e-admin1", "e2e-admin2"]
        people = [("reviewer", "reviewer"), ("drafter", "drafter"), ("approver", "approver")]
        people += [("keyer1", "keyer"), ("keyer2", "keyer")]  # the two clerks who key paper forms
        first, second = (Person(login, f"E2E {login}", ("admin",), secrets.token_urlsafe(18)) for login in logins)
        admins = (first, second)
        await provision(
            conn,
            cipher,
            code,
            Operator("e2e"),
            admins,
            [Person(f"e2e-{name}", f"E2E {name}", (role,), secrets.token_urlsafe(18)) for name, role in people],
        )
        rows = {r["login"]: r for r in await accounts.list_staff(conn, code)}
    return {name: accounts.Staff.from_row(rows[f"e2e-{name}"]) for name, _ in people}


# The reviewer's rule: a family member's account is accepted (the household confirms by phone); an
# account another household also gave, or a name nobody in the household has, is refused.
REJECT_REASONS = {
    "account_shared": "同一口座が他世帯の申請でも使われているため",
    "kana_mismatch": "口座名義が世帯員と一致しないため",
}


async def _review(pool, settings, report: E2EReport, reviewer: accounts.Staff) -> None:
    code = report.municipality_code
    async with tenant_transaction(pool, code, readonly=True) as conn:
        flagged = await conn.fetch(FLAGGED, code, report.program_id)
    done: collections.Counter[str] = collections.Counter()
    for row in flagged:
        async with tenant_transaction(pool, code) as conn:  # one screen: open the side-by-side view, decide
            cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
            await review.personal_view(conn, cipher, code, reviewer, row["application_id"], "review")
            refusals = [REJECT_REASONS[r] for r in row["reason_codes"] if r in REJECT_REASONS]
            decision = "reject" if refusals else "approve"
            comment = "、".join(refusals) if refusals else "世帯員名義の口座を電話で確認"
            await review.decide(conn, cipher, code, reviewer, row["application_id"], decision, comment)
        done[decision] += 1
    report.reviewed = dict(sorted(done.items()))


async def _bank_settings(pool, report: E2EReport) -> None:
    """The bank's age identity in out_dir (kept if present); its recipient added to the municipality's."""
    identity = report.out_dir / IDENTITY_FILE
    recipient = (
        str(bank.load_identities(identity)[0].to_public()) if identity.exists() else bank.write_identity_file(identity)
    )
    report.identity_path = identity
    code = report.municipality_code
    async with tenant_transaction(pool, code) as conn:
        try:
            stored = await settings_store.get_bank_settings(conn, code)
        except BankSettingsMissing:
            stored = StoredBankSettings(
                bank=zengin.BankSettings(
                    requester_code=f"{code}0001",
                    requester_name_kana="ﾃﾞﾓｼ ｶｲｹｲｶﾝﾘｼﾔ",
                    bank_code="0001",
                    bank_name_kana="ﾐｽﾞﾎ",
                    branch_code="001",
                    branch_name_kana="ﾄｳｷﾖｳ",
                    account_type=1,
                    account_number="1234567",
                    separator="crlf",
                ),
                age_recipients=(),
            )
        if recipient not in stored.age_recipients:
            await settings_store.put_bank_settings(
                conn,
                code,
                StoredBankSettings(stored.bank, (*stored.age_recipients, recipient), stored.min_business_days_ahead),
            )
        raw = await signing_public_key(conn, code)
    pem = sealing.public_key_pem_from_raw(raw)
    sealing.load_public_key(pem)  # the bank's reader accepts it
    report.public_key_path = report.out_dir / f"municipality-{code}-signing.pub.pem"
    report.public_key_path.write_bytes(pem)


async def _draft_and_approve(pool, settings, report: E2EReport, drafter, approver) -> int:
    code = report.municipality_code
    async with tenant_transaction(pool, code) as conn:  # the drafter's screen, then 起案
        today = today_jst()
        report.transfer_date = earliest_transfer_date(today, await batches.lead_days(conn, code))
        seen = await batches.draft_preview(conn, code, report.program_id)
        if seen["ready_count"] + seen["pending_count"] == 0:
            raise E2EError("支払対象の申請がありません（世帯数を増やしてください）。")
        batch_id = await drafting.draft_batch(
            conn,
            code,
            drafter,
            report.program_id,
            report.transfer_date,
            today=today,
            expected_count=seen["ready_count"] + seen["pending_count"],
            expected_total_yen=seen["ready_yen"] + seen["pending_yen"],
        )
    await run_due(pool, settings, code)  # the worker prepares the draft's payments, then hashes its file
    async with tenant_transaction(pool, code, readonly=True) as conn:
        drafted = await batches.get_batch(conn, code, batch_id)
    if drafted["status"] != "draft":
        raise E2EError(f"起案 {batch_id} を作成できませんでした: {drafted['draft_error']}")
    async with tenant_transaction(pool, code) as conn:  # the approver's screen shows the file's hash
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        view = await batches.approval_view(conn, settings, cipher, code, approver, batch_id)
    if view["sha256"] is None:
        raise RuntimeError(f"batch {batch_id} cannot be rendered: {view['render_error']}")
    async with tenant_transaction(pool, code) as conn:
        report.approved_sha256 = await batches.approve_batch(conn, settings, code, approver, batch_id, view["sha256"])
    report.batch_ids = [batch_id]
    report.record_count, report.total_yen = view["batch"]["record_count"], view["batch"]["total_yen"]
    return batch_id


async def _release(pool, settings, report: E2EReport, approver, batch_id: int) -> None:
    """Release, then hand the sealed file and manifest to the bank (a copy into out_dir)."""
    code = report.municipality_code
    async with tenant_transaction(pool, code) as conn:  # 送信 on the console
        await batches.release_batch(conn, settings, code, approver, batch_id)
    await run_due(pool, settings, code)  # the worker's release job
    async with tenant_transaction(pool, code, readonly=True) as conn:
        batch = await batches.get_batch(conn, code, batch_id)
    if batch["status"] != "released":
        raise RuntimeError(f"batch {batch_id} was not released: {batch['release_error']}")
    outbox = Path(settings.outbox_path) / code
    for suffix, attr in ((sealing.AGE_SUFFIX, "age_path"), (sealing.MANIFEST_SUFFIX, "manifest_path")):
        target = report.out_dir / (batch["file_name"] + suffix)
        shutil.copyfile(outbox / (batch["file_name"] + suffix), target)
        setattr(report, attr, target)


async def _bank_side(pool, report: E2EReport, batch_id: int, seed: int, return_share: float) -> None:
    """What the bank does with it: verify everything, execute, report returns; then the import."""
    assert report.age_path and report.manifest_path and report.public_key_path and report.identity_path
    # Accepted into the bank's ledger beside its identity (where `kyufu bank verify` keeps it by default), so
    # running the printed command again shows the refusal a second sending of the file gets.
    report.ledger_path = report.out_dir / bank.LEDGER_FILE_NAME
    checked, entry = bank.accept(
        report.age_path, report.manifest_path, report.public_key_path, report.identity_path, report.ledger_path
    )
    report.bank_key_id, report.file_id = checked.key_id, entry.file_id or ""
    with tempfile.TemporaryDirectory() as scratch:  # the plaintext holds account numbers: not left in out_dir
        plain = bank.decrypt(report.age_path, report.identity_path, Path(scratch) / "plain.txt")
        rows = banksim.execute(plain.read_bytes(), return_share=return_share, seed=seed)
    code = report.municipality_code
    report.returns_path = write_returns_csv(rows, report.out_dir / f"returns-{code}-b{batch_id:08d}.csv")
    await reconcile.import_returns(pool, code, report.returns_path, batch_id=batch_id)
    async with tenant_transaction(pool, code, readonly=True) as conn:
        returns = await conn.fetch(RETURNS, code, batch_id)
        payments = {r["status"]: r["n"] for r in await conn.fetch(BATCH_PAYMENTS, code, batch_id)}
        report.applications = await _statuses(conn, report)
    report.returned = {f"{r['reason_code']} {r['reason']}": r["n"] for r in returns}
    report.paid = payments.get("paid", 0)


# --- command --------------------------------------------------------------------------------------


def cmd_demo_e2e(args, settings) -> int:
    """`kyufu demo e2e --households N --out DIR [--municipality CODE]`."""
    from app.errors import UsageError
    from app.tenancy.codes import MunicipalityCodeError

    if not args.out:
        raise UsageError("--out DIR を指定してください（封緘ファイル・マニフェスト・鍵を置くディレクトリ）")
    if args.households < 1:
        raise UsageError("--households は1以上で指定してください")
    try:
        report = asyncio.run(run_e2e(settings, args.households, Path(args.out), args.municipality, seed=args.seed))
    except (MunicipalityCodeError, E2EError) as exc:
        raise UsageError(str(exc)) from None
    for line in report.summary():
        print(line)
    return 0

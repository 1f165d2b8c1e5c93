"""End-to-end pipeline benchmark: registry → eligibility → letters → applications → verification →
プッシュ型 settlement → 振込起案 → hash → 承認 → release → the bank's check, on the real processes.

    .venv/bin/python loadtests/pipeline.py [--households 1000000] [--applications 200000] [--rate 1000]
                                           [--floor | --no-floor] [--payouts-bench N] [--no-fsync] [--keep]

Loopback only and bounded (every wait has a timeout). A private cluster in a temporary directory
(loadtests/surge/cluster.py: embedded PostgreSQL, durable unless --no-fsync, and Valkey; kyufu under
`uvicorn --workers 2`; one `kyufu worker`). Every step is what a municipality runs:

 1. `kyufu demo registry` writes a synthetic extract (residents, tax, accounts); `kyufu registry import`,
    `import-tax`, `import-accounts` load it;
 2. `kyufu programs add` a 確認書型 program (every household) and a プッシュ型 one (every household, or
    --push-tax-condition exempt; its 辞退 deadline yesterday), `kyufu programs eligibility` for each;
 3. `kyufu letters issue` and `kyufu letters export` (the print file) for both;
 4. residents apply: --applications letters of the print file, each once, through POST /api/v1/applications
    with wrk and loadtests/submit.lua (own Idempotency-Key and X-Forwarded-For; the account holder is the
    letter's addressee), paced at --rate per second (0: as fast as the app answers); one shed with 503 is
    sent again after --retry-shed-ms with the same Idempotency-Key, as a client honouring Retry-After would;
 5. the worker verifies them (its batched jobs): decided/s and the lag decided_at - submitted_at;
 6. `kyufu push settle` (the deadline has passed) creates the push applications;
 7. in the staff console (/staff/login with CSRF and TOTP), the drafter drafts each program — the
    console drafts one batch per program, so there are two batches;
 8. the approver opens the batch until its page offers the SHA-256 to approve (today the page renders
    the file while it is requested; once a worker hashes after drafting the page says ハッシュ計算中 until
    then: the same poll serves both), and approves it (TOTP sign-in, the page's own form);
 9. the approver releases it (today in the request; with a release job, the bench polls until
    payout_batches.status = 'released'), while a trickle of resident requests (GET /m/{code}/ and
    GET /api/v1/banks?q=…, --trickle-rate per second, each on a new connection) measures what
    other users see meanwhile;
10. `kyufu bank verify` checks each released file with the bank identity of the municipality's bank
    settings (devtools/demo_bank.py seed_demo_bank);
11. peak RSS of the app's processes, the worker, PostgreSQL, Valkey, wrk and each `kyufu` command.
Then the consistency checks (every 201 receipt is one application; every verified application has
exactly one payment in its program's released batch; a batch's count and total are its payments' and the
bank's manifest's) and, with --floor (default), the payout stage's floor for each batch: the COPY of the
stage's read, timed by devtools.payouts_bench.floor — the function `kyufu payouts bench` uses — on this server.
--payouts-bench N also runs `kyufu payouts bench --payments N` against this server afterwards.

Set-up that is not a municipality's own step is done directly and said so: the staff accounts
(devtools.demo_staff.provision: enrolment links and grants confirmed by a second admin) and the bank settings
(devtools.demo_bank.seed_demo_bank); after the imports, VACUUM (ANALYZE) and a CHECKPOINT (what autovacuum and
the checkpointer would have done by the time residents apply; loadtests/surge/cluster.py settle).

Prints each stage's figures as it ends, then ONE line of key=value pairs. Exit status: 0 all checks
passed, 1 a consistency or bank check failed, 2 a stage failed (the line then names it in failed_stage).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtests import console, procstats  # noqa: E402
from loadtests.surge.cluster import Cluster, seed_staff, settle  # noqa: E402

CODE = "131016"  # the demo bank settings (seed_demo_bank) are this municipality's
BASE_DATE = "2026-04-01"  # before the synthetic extract's 世帯分離 (May), as the demo uses
FISCAL_YEAR = "2026"
JST = ZoneInfo("Asia/Tokyo")
STAFF = [("pipe-admin", ["admin"]), ("pipe-drafter", ["drafter"]), ("pipe-approver", ["approver"])]
TRICKLE_PATHS = ["/m/{code}/", "/api/v1/banks?q=みずほ", "/m/{code}/", "/api/v1/banks?q=ゆうちょ"]


class StageFailed(RuntimeError):
    """A step of the pipeline could not be carried out; the message says what the product answered."""


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    # int(): with a float p the ceiling below is a float of whole value, and a list takes only an int index.
    return ordered[max(0, min(len(ordered) - 1, int(-(-len(ordered) * p // 100)) - 1))]


def fmt(value) -> str:
    if value is None:
        return "na"
    if isinstance(value, bool):
        return "ok" if value else "FAIL"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


# ---- database reads of the bench itself ---------------------------------------------------------------

STATUS_COUNTS = """
SELECT a.status, a.channel, count(*) AS n FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
WHERE a.municipality_code = $1 AND e.program_id = $2 GROUP BY a.status, a.channel ORDER BY a.status, a.channel
"""
RECEIVED = "SELECT count(*) FROM applications WHERE municipality_code = $1 AND status = 'received'"
LAG = """
SELECT count(*) AS decided, count(*) FILTER (WHERE a.status = 'verified') AS verified,
       count(DISTINCT a.entitlement_id) AS entitlements, min(a.submitted_at) AS first_submitted,
       max(a.submitted_at) AS last_submitted, min(a.decided_at) AS first_decided, max(a.decided_at) AS last_decided,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.decided_at - a.submitted_at)) AS lag_p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM a.decided_at - a.submitted_at)) AS lag_p99,
       max(extract(epoch FROM a.decided_at - a.submitted_at)) AS lag_max
FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
WHERE a.municipality_code = $1 AND e.program_id = $2 AND a.channel = 'online' AND a.decided_at IS NOT NULL
"""
REASONS = """
SELECT r AS reason, count(*) AS n FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id,
     unnest(a.reason_codes) AS r
WHERE a.municipality_code = $1 AND e.program_id = $2 GROUP BY r ORDER BY n DESC
"""
PUSH_APPLICATIONS = """
SELECT count(*) FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
WHERE a.municipality_code = $1 AND e.program_id = $2 AND a.channel = 'push'
"""
ONLINE = """
SELECT count(*) AS applications, count(DISTINCT a.entitlement_id) AS entitlements FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
WHERE a.municipality_code = $1 AND e.program_id = $2 AND a.channel = 'online'
"""
# arq's log line for a payout job starting ("→", seconds it waited since enqueued) or ending ("←", seconds it
# ran); the job ids are outbox.job_id("payouts.hash" | "payouts.release", code, batch, generation).
JOB_LINE = re.compile(
    r"(?P<s>[\d.]+)s (?P<arrow>[→←]) payouts\.(?P<kind>hash|release):\d+:(?P<batch>\d+):\d+:(?:hash|release)_batch"
)
# The whole row as JSON: the columns differ between the design that renders in the request (no hash columns)
# and the one that hashes and releases in the worker (hash_error, release_requested_at, release_error, ...).
BATCH_ROW = "SELECT to_jsonb(b)::text FROM payout_batches b WHERE municipality_code = $1 AND batch_id = $2"
BATCH = """
SELECT batch_id, program_id, status, record_count, total_yen, file_name, drafted_at, approved_at, released_at,
       approved_sha256, released_sha256
FROM payout_batches WHERE municipality_code = $1 AND batch_id = $2
"""
# Every application that should be paid, against the payments of the program's batch: each exactly once,
# nothing else in the batch, and the batch's own count and total equal to its payments'. (Joins, not
# NOT IN: at 600,000 rows a NOT IN over a subquery that does not fit work_mem is a nested loop.)
PAYOUT_CHECK = """
WITH payable AS (
  SELECT a.application_id FROM applications a
  JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
  WHERE a.municipality_code = $1 AND e.program_id = $2 AND a.status IN ('verified', 'approved')
), paid AS (
  SELECT application_id, count(*) AS n FROM payments
  WHERE municipality_code = $1 AND batch_id = $3 AND application_id IS NOT NULL GROUP BY application_id
), matched AS (
  SELECT y.application_id AS payable_id, p.application_id AS paid_id, p.n FROM payable y
  FULL JOIN paid p ON p.application_id = y.application_id
)
SELECT count(payable_id) AS payable,
       count(*) FILTER (WHERE payable_id IS NOT NULL AND n = 1) AS paid_once,
       count(*) FILTER (WHERE paid_id IS NOT NULL AND (payable_id IS NULL OR n <> 1))
         + (SELECT count(*) FROM payments WHERE municipality_code = $1 AND batch_id = $3 AND application_id IS NULL)
         AS paid_wrongly,
       (SELECT count(*) FROM payments WHERE municipality_code = $1 AND batch_id = $3) AS payments,
       (SELECT coalesce(sum(amount_yen), 0)::bigint FROM payments WHERE municipality_code = $1 AND batch_id = $3)
         AS payments_yen
FROM matched
"""


class Db:
    """One app-role connection on a private event loop, for the bench's own reads (row-level security
    applies: each read is a read-only tenant transaction)."""

    def __init__(self, url: str, code: str) -> None:
        import asyncpg

        self.code = code
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(url))

    def fetch(self, sql: str, *args) -> list:
        from app.tenancy.transaction import tenant_transaction

        async def go():
            async with tenant_transaction(self.conn, self.code, readonly=True) as c:
                return await c.fetch(sql, *args)

        return self.loop.run_until_complete(go())

    def row(self, sql: str, *args):
        rows = self.fetch(sql, *args)
        return rows[0] if rows else None

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


# ---- the trickle of other users --------------------------------------------------------------------------


class Trickle:
    """GET requests of residents at `rate` per second, each on a new connection (so they land on any of
    the app's worker processes, as separate people's would), recorded as (start, end, status, path)."""

    def __init__(self, base_url: str, code: str, rate: float) -> None:
        self.base_url, self.rate = base_url, rate
        self.paths = [p.format(code=code) for p in TRICKLE_PATHS]
        self.records: list[tuple[float, float, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trickle", daemon=True)

    def start(self) -> None:
        if self.rate > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=120)

    def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.base_url, timeout=120, limits=limits, trust_env=False) as client:
            next_t, i = time.monotonic(), 0
            while not self._stop.is_set():
                path = self.paths[i % len(self.paths)]
                i += 1
                t0 = time.monotonic()
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError:
                    status = 0
                self.records.append((t0, time.monotonic(), status, path))
                next_t += 1 / self.rate
                self._stop.wait(max(0.0, next_t - time.monotonic()))

    def during(self, start: float, end: float) -> dict:
        """Latency of the requests that overlapped [start, end] (monotonic seconds)."""
        hit = [r for r in self.records if r[0] < end and r[1] > start]
        ms = [(r[1] - r[0]) * 1000 for r in hit]
        return {
            "n": len(hit),
            "p50_ms": pct(ms, 50),
            "p99_ms": pct(ms, 99),
            "max_ms": max(ms) if ms else None,
            "errors": sum(1 for r in hit if r[2] != 200),
        }


# ---- the run ----------------------------------------------------------------------------------------------


class Pipeline:
    def __init__(self, args) -> None:
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="kyufu-pipeline-"))
        self.cluster = Cluster(
            self.root,
            web_workers=args.web_workers,
            durable=not args.no_fsync,
            overrides={"KYUFU_VERIFY_BATCH_SIZE": str(args.verify_batch_size)} if args.verify_batch_size else None,
        )
        self.figures: dict[str, object] = {}
        self.cli_rss_mb: dict[str, float] = {}
        self.stage = "setup"
        self.sampler: procstats.PeakSampler | None = None
        self.db: Db | None = None
        self.trickle: Trickle | None = None
        self.wrk_pid: int | None = None
        self.batches: list[dict] = []
        self.ok = True

    # -- helpers --

    @property
    def database(self) -> Db:
        """The bench's own read connection, opened by start_processes()."""
        if self.db is None:
            raise RuntimeError("the bench read the database before start_processes() connected to it")
        return self.db

    def note(self, **figures) -> None:
        self.figures.update(figures)

    def say(self, text: str) -> None:
        print(text, flush=True)

    def kyufu(self, *args: str, timeout_s: float = 3600) -> tuple[str, float]:
        """Run a `kyufu` command as a municipality's operator would; return (its output, seconds)."""
        logs = self.root / "cli"
        logs.mkdir(exist_ok=True)
        name = " ".join(a for a in args[:2] if not a.startswith("-"))
        log = logs / f"{len(list(logs.iterdir())):02d}-{name.replace(' ', '-')}.log"
        env = dict(self.cluster.env, KYUFU_NO_PROGRESS="1")
        with open(log, "wb") as fh:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *args], env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT
            )
            try:
                rc, rss_mb = procstats.wait_with_rusage(proc, timeout_s)
            except BaseException:  # interrupted or timed out: the command must not outlive the cluster
                if proc.returncode is None:
                    proc.kill()
                    os.waitpid(proc.pid, 0)
                raise
            seconds = time.perf_counter() - t0
        out = log.read_text(errors="replace")
        self.cli_rss_mb[name] = max(self.cli_rss_mb.get(name, 0.0), rss_mb)
        if rc != 0:
            raise StageFailed(f"kyufu {' '.join(args)} exited {rc}: {out[-1500:]}")
        return out, seconds

    @staticmethod
    def parse(pattern: str, text: str, what: str) -> re.Match:
        m = re.search(pattern, text)
        if m is None:
            raise StageFailed(f"unexpected output of {what}: {text[-500:]}")
        return m

    def batch_row(self, batch_id: int) -> dict:
        return json.loads(self.database.row(BATCH_ROW, CODE, batch_id)[0])

    def rss_roots(self) -> dict[str, list[int]]:
        roots: dict[str, list[int]] = {}
        for name in ("app", "worker"):
            proc = self.cluster.procs.get(name)
            if proc is not None and proc.poll() is None:
                roots[name] = [proc.pid]
        svc = self.cluster.services
        for name, pidfile in (("postgres", svc.pgdata / "postmaster.pid"), ("valkey", svc.valkey_dir / "valkey.pid")):
            pid = procstats.pid_from_file(pidfile)
            if pid:
                roots[name] = [pid]
        if self.wrk_pid:
            roots["wrk"] = [self.wrk_pid]
        return roots

    @staticmethod
    def rss_classify(proc: psutil.Process, category: str) -> str | None:
        if category == "app":  # uvicorn's master spawns one process per worker (and a resource tracker)
            cmd = " ".join(proc.cmdline())
            return "app-other" if "resource_tracker" in cmd else "app-worker" if "spawn_main" in cmd else None
        if category == "worker":
            return "worker-child"
        return None

    # -- stages --

    def setup(self) -> None:
        t0 = time.perf_counter()
        self.cluster.boot()
        self.cluster.code = CODE
        # `kyufu services up` would have made it; `kyufu payouts bench` keeps its bank identity there.
        Path(self.cluster.env["KYUFU_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        # The driver reads settings as the cluster's processes do (seed_demo_bank, the floor).
        os.environ.update({k: v for k, v in self.cluster.env.items() if k.startswith(("KYUFU_", "DATABASE", "REDIS"))})
        self.kyufu("municipalities", "add", CODE, "パイプライン計測市")
        self.say(
            f"setup: servers, migrations, municipality {CODE} in {time.perf_counter() - t0:.1f} s "
            f"(fsync {'off' if self.args.no_fsync else 'on'}); {self.root}"
        )

    def registry(self) -> None:
        self.stage = "registry"
        a = self.args
        out_dir = self.root / "registry"
        out_dir.mkdir()
        residents = out_dir / "residents.csv"
        text, gen_s = self.kyufu(
            "demo", "registry", "--households", str(a.households), "--out", str(residents), "--seed", str(a.seed)
        )
        m = self.parse(r"\((\d+) residents in (\d+) households\)", text, "kyufu demo registry")
        n_residents = int(m.group(1))
        text, res_s = self.kyufu("registry", "import", "--municipality", CODE, str(residents))
        rows = int(self.parse(r"imported snapshot \d+: (\d+) rows", text, "registry import").group(1))
        text, tax_s = self.kyufu(
            "registry",
            "import-tax",
            "--municipality",
            CODE,
            "--fiscal-year",
            FISCAL_YEAR,
            str(out_dir / "residents.tax.csv"),
        )
        text, acc_s = self.kyufu(
            "registry", "import-accounts", "--municipality", CODE, str(out_dir / "residents.accounts.csv")
        )
        accounts = int(self.parse(r"imported snapshot \d+: (\d+) rows", text, "import-accounts").group(1))
        self.note(
            households=a.households,
            residents=n_residents,
            registry_generate_s=gen_s,
            import_residents_s=res_s,
            import_residents_per_s=rows / res_s,
            import_tax_s=tax_s,
            import_accounts_s=acc_s,
            registered_accounts=accounts,
        )
        self.say(
            f"registry: {a.households:,} households, {n_residents:,} residents (synthetic extract written in "
            f"{gen_s:.1f} s); import residents {res_s:.1f} s ({rows / res_s:,.0f} rows/s), tax {tax_s:.1f} s, "
            f"accounts {acc_s:.1f} s ({accounts:,})"
        )

    def programs(self) -> None:
        self.stage = "eligibility"
        today = dt.datetime.now(JST).date()
        common = ["--municipality", CODE, "--base-date", BASE_DATE, "--unit", "household"]
        text, _ = self.kyufu(
            "programs",
            "add",
            *common,
            "--name",
            "パイプライン計測 確認書型",
            "--amount",
            "30000",
            "--child-amount",
            "20000",
            "--mode",
            "letter",
            "--apply-from",
            (today - dt.timedelta(days=7)).isoformat(),
            "--apply-until",
            (today + dt.timedelta(days=90)).isoformat(),
        )
        self.letter_program = int(self.parse(r"program (\d+) created", text, "programs add").group(1))
        push = ["--tax-condition", "exempt", "--tax-fiscal-year", FISCAL_YEAR] if self.args.push_tax_exempt else []
        text, _ = self.kyufu(
            "programs",
            "add",
            *common,
            "--name",
            "パイプライン計測 プッシュ型",
            "--amount",
            "50000",
            "--mode",
            "push",
            "--decline-deadline",
            (today - dt.timedelta(days=1)).isoformat(),
            *push,
        )
        self.push_program = int(self.parse(r"program (\d+) created", text, "programs add").group(1))
        for kind, program in (("letter", self.letter_program), ("push", self.push_program)):
            text, seconds = self.kyufu("programs", "eligibility", "--municipality", CODE, "--program", str(program))
            m = self.parse(r"entitled: (\d+) households, (\d+) people, total (\d+) yen", text, "programs eligibility")
            self.note(**{f"eligibility_{kind}_s": seconds, f"entitled_{kind}": int(m.group(1))})
            self.say(
                f"eligibility ({kind}, program {program}): {int(m.group(1)):,} households, {int(m.group(3)):,} yen "
                f"in {seconds:.2f} s"
            )

    def letters(self) -> None:
        self.stage = "letters"
        for kind, program in (("letter", self.letter_program), ("push", self.push_program)):
            text, issue_s = self.kyufu("letters", "issue", "--municipality", CODE, "--program", str(program))
            issued = int(self.parse(r"issued (\d+) letters", text, "letters issue").group(1))
            self.note(
                **{
                    f"letters_issue_{kind}_s": issue_s,
                    f"letters_{kind}": issued,
                    f"letters_issue_{kind}_per_s": issued / issue_s,
                }
            )
            self.say(f"letters ({kind}): issued {issued:,} in {issue_s:.1f} s ({issued / issue_s:,.0f}/s)")
        if self.args.analyze_after_issue:
            # Without fresh statistics the export's plan is quadratic (a nested loop over every letter and
            # every entitlement of the program): see docs/benchmarks.md. Autovacuum would analyze the new
            # rows within a minute or so; this does it now, and is timed apart.
            self.maintenance("after letters issue")
        for kind, program in (("letter", self.letter_program), ("push", self.push_program)):
            path = self.root / f"letters-{kind}.csv"
            text, export_s = self.kyufu(
                "letters",
                "export",
                "--municipality",
                CODE,
                "--program",
                str(program),
                "--out",
                str(path),
                timeout_s=self.args.export_timeout,
            )
            exported = int(self.parse(r"exported (\d+) letters", text, "letters export").group(1))
            self.note(**{f"letters_export_{kind}_s": export_s})
            self.say(f"letters ({kind}): print file of {exported:,} exported in {export_s:.1f} s")

    def letters_for_wrk(self) -> Path:
        """The residents who apply: --applications letters of the print file, chosen at random (seeded), as
        code, access code, PIN and the addressee's kana (the account holder each resident types)."""
        from app import csvsafe

        with open(self.root / "letters-letter.csv", encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            col = {name: i for i, name in enumerate(header)}
            rows = [
                (
                    csvsafe.restore(r[col["確認書番号"]]),
                    csvsafe.restore(r[col["暗証番号"]]),
                    csvsafe.restore(r[col["世帯主氏名カナ"]]),
                )
                for r in reader
            ]
        if len(rows) < self.args.applications:
            raise StageFailed(
                f"only {len(rows)} letters for {self.args.applications} applications: "
                "raise --households or lower --applications"
            )
        chosen = random.Random(self.args.seed).sample(rows, self.args.applications)
        path = self.root / "wrk-letters.tsv"
        path.write_text("".join(f"{CODE}\t{code}\t{pin}\t{kana}\n" for code, pin, kana in chosen), encoding="utf-8")
        return path

    def maintenance(self, when: str) -> None:
        t0 = time.perf_counter()
        asyncio.run(settle(self.cluster.urls))
        seconds = time.perf_counter() - t0
        self.note(**{f"vacuum_{when.replace(' ', '_')}_s": seconds})
        self.say(f"maintenance {when} (not a product step): VACUUM (ANALYZE) + CHECKPOINT {seconds:.1f} s")

    def start_processes(self) -> None:
        self.stage = "start"
        self.cluster.start_app()
        self.cluster.start_worker()
        self.db = Db(self.cluster.urls["DATABASE_URL"], CODE)
        self.sampler = procstats.PeakSampler(self.rss_roots, self.rss_classify)
        self.sampler.start()

    def applications(self, letters: Path) -> None:
        self.stage = "applications"
        a = self.args
        done_dir = self.root / "wrk-done"
        done_dir.mkdir()
        submit_s = int(a.applications / a.rate * 3 + 60) if a.rate else a.max_submit_seconds
        env = dict(
            self.cluster.env,
            LETTERS=str(letters),
            WRK_THREADS=str(a.threads),
            SUBMIT_SECONDS=str(submit_s),
            SUBMIT_LIMIT=str(a.applications),
            DONE_DIR=str(done_dir),
        )
        if a.rate:
            env["SUBMIT_RATE"] = str(a.rate)
        if a.retry_shed_ms >= 0:
            env["SUBMIT_RETRY_SHED_MS"] = str(a.retry_shed_ms)
        cmd = [
            "wrk",
            f"-t{a.threads}",
            f"-c{a.connections}",
            f"-d{submit_s + 30}s",
            "--timeout",
            "60s",
            "-s",
            str(ROOT / "loadtests" / "submit.lua"),
            self.cluster.url,
        ]
        self.say(
            f"applications: {a.applications:,} through POST /api/v1/applications, wrk -t{a.threads} "
            f"-c{a.connections}, "
            + (f"paced at {a.rate}/s" if a.rate else "unpaced")
            + f", uvicorn --workers {a.web_workers}"
        )
        t0 = time.monotonic()
        with open(self.root / "wrk.out", "w") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
            self.wrk_pid = proc.pid
            try:
                # Each wrk thread says when all its submissions have their answers; then wrk is stopped
                # (SIGINT: it still reports) instead of sending /healthz until -d runs out.
                while proc.poll() is None and len(list(done_dir.iterdir())) < a.threads:
                    time.sleep(0.2)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                proc.wait(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                self.wrk_pid = None
        wall_s = time.monotonic() - t0
        text = (self.root / "wrk.out").read_text()
        line = next((ln for ln in text.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            raise StageFailed(f"wrk gave no result: {text[-1500:]}")
        r = json.loads(line.removeprefix("RESULT "))
        self.wrk_result = r
        window_s = r["window_us"] / 1e6
        retried = r.get("retried", 0)
        # Each answer counts in by_status, so a shed submission sent again counts once as 503 and once with
        # its final answer; the letters' outcomes are the answers minus the 503s that were sent again.
        by_status = ",".join(f"{k}:{v}" for k, v in sorted(r.get("by_status", {}).items()))
        letters_sent = r["submissions"] - retried
        self.note(
            submissions=letters_sent,
            submit_attempts=r["submissions"],
            submit_statuses=by_status,
            shed_503_resent=retried,
            accepted=r["created"],
            refused_409=r["duplicate"],
            other_status=r["other"] - retried,
            socket_errors=r["errors"],
            accepted_per_s=r["created"] / window_s,
            submit_window_s=window_s,
            submit_p50_ms=r["p50_us"] / 1000,
            submit_p99_ms=r["p99_us"] / 1000,
        )
        self.say(
            f"  accepted {r['created']:,} of {letters_sent:,} letters in {window_s:.1f} s = "
            f"{r['created'] / window_s:,.0f}/s; p50 {r['p50_us'] / 1000:.1f} ms, p99 {r['p99_us'] / 1000:.1f} ms "
            f"(of all {r['submissions']:,} answers); answers by status {by_status} ({retried:,} shed with 503 and "
            f"sent again); socket errors {r['errors']} (wrk ran {wall_s:.1f} s)"
        )
        if letters_sent != a.applications:
            raise StageFailed(
                f"wrk sent {letters_sent} letters, not {a.applications} (a thread did not "
                f"finish in time: see {self.root / 'wrk.out'})"
            )

    def verification(self) -> None:
        self.stage = "verification"
        t0 = time.monotonic()
        console.wait_for(
            lambda: self.database.row(RECEIVED, CODE)[0] == 0,
            timeout_s=self.args.verify_timeout,
            interval_s=0.5,
            what="every application to be verified",
        )
        waited_s = time.monotonic() - t0
        lag = self.database.row(LAG, CODE, self.letter_program)
        span_s = (lag["last_decided"] - lag["first_submitted"]).total_seconds()
        tail_s = (lag["last_decided"] - lag["last_submitted"]).total_seconds()
        statuses = {
            f"{r['status']}/{r['channel']}": r["n"]
            for r in self.database.fetch(STATUS_COUNTS, CODE, self.letter_program)
        }
        reasons = {r["reason"]: r["n"] for r in self.database.fetch(REASONS, CODE, self.letter_program)}
        self.note(
            decided=lag["decided"],
            verified=lag["verified"],
            decided_per_s=lag["decided"] / span_s,
            verified_per_s=lag["verified"] / span_s,
            verify_lag_p50_s=float(lag["lag_p50"]),
            verify_lag_p99_s=float(lag["lag_p99"]),
            verify_lag_max_s=float(lag["lag_max"]),
            verify_tail_s=tail_s,
        )
        self.say(
            f"verification: {lag['decided']:,} decided ({lag['verified']:,} verified) over {span_s:.1f} s from the "
            f"first submission = {lag['decided'] / span_s:,.0f} decided/s ({lag['verified'] / span_s:,.0f} "
            f"verified/s); lag p50 {float(lag['lag_p50']):.2f} s, p99 {float(lag['lag_p99']):.2f} s, max "
            f"{float(lag['lag_max']):.2f} s; last decision {tail_s:.1f} s after the last submission "
            f"(waited {waited_s:.1f} s after wrk)"
        )
        self.say(f"  statuses {statuses}; reasons {reasons}")

    def push(self) -> None:
        self.stage = "push settle"
        text, seconds = self.kyufu("push", "settle", "--municipality", CODE, "--program", str(self.push_program))
        n = int(self.parse(r"created (\d+) push applications", text, "push settle").group(1))
        # The worker settles due programs itself at minute 5 of every hour (workers/verification.py): if
        # that came first, the command finds nothing left, and the applications are the cron's.
        total = self.database.row(PUSH_APPLICATIONS, CODE, self.push_program)[0]
        self.note(push_applications=total, push_settled_by_command=n, push_settle_s=seconds)
        by = "" if n == total else f" ({total - n:,} of them by the worker's hourly settlement before the command)"
        self.say(f"push settle: {n:,} push applications made by the command in {seconds:.1f} s; {total:,} in all{by}")

    def staff_and_bank(self) -> None:
        self.stage = "staff and bank set-up"
        from app.settings import load_settings
        from devtools.demo_bank import seed_demo_bank

        creds = {
            c["login"]: c
            for c in asyncio.run(
                seed_staff(
                    self.cluster.urls,
                    self.cluster.master_key,
                    CODE,
                    STAFF,
                    second_admin="pipe-admin2",
                    operator="pipeline-seed",
                )
            )
        }
        self.bank_dir = self.root / "bank"

        async def bank():
            import asyncpg

            conn = await asyncpg.connect(self.cluster.urls["DATABASE_URL"])
            try:
                await seed_demo_bank(conn, load_settings(), CODE, self.bank_dir)
            finally:
                await conn.close()

        asyncio.run(bank())
        base = self.cluster.url
        d, p = creds["pipe-drafter"], creds["pipe-approver"]
        self.drafter = console.StaffSession(base, CODE, d["login"], d["password"], d["totp_secret"])
        self.approver = console.StaffSession(base, CODE, p["login"], p["password"], p["totp_secret"])
        self.drafter.sign_in()
        self.approver.sign_in()

    def payout(self, kind: str, program: int) -> dict:
        """Draft, wait for the hash, approve, release one program's batch through the console."""
        a = self.args
        self.stage = f"draft ({kind})"
        page = self.drafter.get(f"/staff/programs/{program}/draft")
        form = console.form_ending(page, f"/staff/programs/{program}/draft")
        if form is None:
            raise StageFailed(f"the draft page offers no form: {console.page_text(page)}")
        t_draft = time.monotonic()
        batch_id = console.batch_id_from(self.drafter.submit(form))
        t_drafted = time.monotonic()

        self.stage = f"hash ({kind}, batch {batch_id})"
        # The database is read every 50 ms (the row as JSON: the columns differ between the design that
        # renders in the request and the one that hashes in the worker). Where the worker hashes, the page is
        # loaded only once the row has the hash: a page load takes seconds at 600,000 payments, and polling
        # the page meanwhile would delay seeing the hash by up to one page load. Where the request renders
        # (no hash_generation column), only the page can tell: it is loaded every 0.5 s.
        # Where the worker prepares the draft (status 'preparing', migration 0017), the moment the row
        # leaves that status is when its payments were created and frozen.
        t_db_hash: float | None = None
        t_db_prepared: float | None = None
        last_get, polls = float("-inf"), 0

        def hashed():
            nonlocal t_db_hash, t_db_prepared, last_get, polls
            row = self.batch_row(batch_id)
            if row.get("status") == "cancelled":
                raise StageFailed(f"drafting failed: {row.get('draft_error')}")
            if t_db_prepared is None and row.get("status") not in (None, "preparing"):
                t_db_prepared = time.monotonic()
            if row.get("hash_error"):
                raise StageFailed(f"hashing failed: {row['hash_error']}")
            if t_db_hash is None and row.get("plaintext_sha256") and row.get("status") == "draft":
                t_db_hash = time.monotonic()
            if t_db_hash is None and ("hash_generation" in row or time.monotonic() - last_get < 0.5):
                return None
            last_get, polls = time.monotonic(), polls + 1
            page = self.approver.get(f"/staff/batches/{batch_id}")
            sha = console.approvable_sha256(page)
            return (sha, page) if sha else None

        sha, page = console.wait_for(hashed, timeout_s=a.hash_timeout, interval_s=0.05, what="the batch's SHA-256")
        t_hashed = time.monotonic()

        self.stage = f"approve ({kind}, batch {batch_id})"
        approve = console.form_ending(page, "/approve")
        if approve is None:  # approvable_sha256 read the SHA-256 from this form, on this very page
            raise StageFailed(f"the batch's page offers no approval: {console.page_text(page)}")
        self.approver.submit(approve)
        t_approved = time.monotonic()
        page = self.approver.get(f"/staff/batches/{batch_id}")  # where the approval's redirect leads
        t_page = time.monotonic()
        form = console.form_ending(page, "/release")
        if form is None:
            raise StageFailed(f"the approved batch's page offers no release: {console.page_text(page)}")

        self.stage = f"release ({kind}, batch {batch_id})"
        t_release = time.monotonic()
        self.approver.submit(form)
        t_release_posted = time.monotonic()

        def released():
            row = self.batch_row(batch_id)
            if row.get("release_error"):
                raise StageFailed(f"release failed: {row['release_error']}")
            return row if row["status"] == "released" else None

        row = console.wait_for(released, timeout_s=a.release_timeout, interval_s=0.05, what="status 'released'")
        t_released = time.monotonic()
        if row["approved_sha256"] != sha or row["released_sha256"] != sha:
            raise StageFailed(
                f"batch {batch_id}: approved {row['approved_sha256']}, released {row['released_sha256']}, "
                f"page showed {sha}"
            )
        # released_at is now() of the release job's transaction, i.e. when that transaction began: with the
        # request's release_requested_at it gives how long the job took to start (dispatch, arq's poll).
        job_start_s = None
        if row.get("release_requested_at") and row.get("released_at"):
            job_start_s = (
                dt.datetime.fromisoformat(row["released_at"]) - dt.datetime.fromisoformat(row["release_requested_at"])
            ).total_seconds()
        b = {
            "kind": kind,
            "program": program,
            "batch_id": batch_id,
            "payments": row["record_count"],
            "total_yen": row["total_yen"],
            "file_name": row["file_name"],
            "sha256": sha,
            "draft_s": t_drafted - t_draft,
            "draft_to_hash_s": t_hashed - t_drafted,
            "hash_polls": polls,
            "draft_to_hash_db_s": None if t_db_hash is None else t_db_hash - t_drafted,
            "draft_to_prepared_db_s": None if t_db_prepared is None else t_db_prepared - t_drafted,
            "approve_s": t_approved - t_hashed,
            "page_after_approve_s": t_page - t_approved,
            "release_post_s": t_release_posted - t_release,
            "release_s": t_released - t_release,
            "release_job_start_s": job_start_s,
            "approve_to_released_s": t_released - t_hashed,
            "windows": {"hash": (t_drafted, t_hashed), "release": (t_release, t_released)},
        }
        hash_db = "" if t_db_hash is None else f"recorded in the database after {b['draft_to_hash_db_s']:.2f} s, "
        if t_db_prepared is not None:
            hash_db = f"payments prepared by the worker after {b['draft_to_prepared_db_s']:.2f} s, " + hash_db
        self.say(
            f"batch {batch_id} ({kind}): {b['payments']:,} payments, {b['total_yen']:,} yen; draft (POST) "
            f"{b['draft_s']:.2f} s; hash {hash_db}offered on the page after {b['draft_to_hash_s']:.2f} s "
            f"({polls} page loads); approve (POST) {b['approve_s']:.2f} s, page after it "
            f"{b['page_after_approve_s']:.2f} s; release: POST {b['release_post_s']:.2f} s, click→released "
            f"{b['release_s']:.2f} s"
            + (
                ""
                if job_start_s is None
                else f" (the release job's transaction began {job_start_s:.2f} s after the "
                "request's, by the database's clock)"
            )
            + f"; approve→released {b['approve_to_released_s']:.2f} s"
        )
        return b

    def payouts(self) -> None:
        self.trickle = Trickle(self.cluster.url, CODE, self.args.trickle_rate)
        self.trickle.start()
        time.sleep(self.args.trickle_baseline_s)
        t0 = time.monotonic()
        for kind, program in (("letter", self.letter_program), ("push", self.push_program)):
            self.batches.append(self.payout(kind, program))
        time.sleep(1.0)
        self.trickle.stop()
        base = self.trickle.during(0, t0)
        self.say(
            f"other requests (trickle, {self.args.trickle_rate}/s): before drafting n={base['n']} "
            f"p50 {fmt(base['p50_ms'])} ms p99 {fmt(base['p99_ms'])} ms"
        )
        for b in self.batches:
            for name, (start, end) in b["windows"].items():
                s = self.trickle.during(start, end)
                b[f"trickle_{name}"] = s
                self.say(
                    f"  during {name} of batch {b['batch_id']} ({b['kind']}): n={s['n']} p50 {fmt(s['p50_ms'])} ms "
                    f"p99 {fmt(s['p99_ms'])} ms max {fmt(s['max_ms'])} ms, not 200: {s['errors']}"
                )
        self.note(trickle_baseline_p99_ms=base["p99_ms"])
        self.job_times()

    def job_times(self) -> None:
        """The worker's own account of its payout jobs (arq logs each job's wait in the queue, "→", and its
        run time, "←"): how much of draft→hash and 送信→released was the job itself. Nothing when the
        request does the work (the design before the jobs) or the log has no such lines."""
        found: dict[tuple[str, int], dict[str, float]] = {}
        path = self.root / "worker.log"
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            try:  # JSON log lines (app.observability) carry the text in "msg"
                record = json.loads(line)
                text = str(record.get("msg", record.get("message", ""))) if isinstance(record, dict) else line
            except ValueError:
                text = line
            m = JOB_LINE.search(text)
            if m:
                key = (m.group("kind"), int(m.group("batch")))
                found.setdefault(key, {})["queued_s" if m.group("arrow") == "→" else "run_s"] = float(m.group("s"))
        for b in self.batches:
            for kind in ("hash", "release"):
                t = found.get((kind, b["batch_id"]), {})
                b[f"{kind}_job_queued_s"], b[f"{kind}_job_run_s"] = t.get("queued_s"), t.get("run_s")
            if b["hash_job_run_s"] is not None or b["release_job_run_s"] is not None:
                self.say(
                    f"worker jobs of batch {b['batch_id']} ({b['kind']}): hash waited {fmt(b['hash_job_queued_s'])} s "
                    f"in the queue and ran {fmt(b['hash_job_run_s'])} s; release waited "
                    f"{fmt(b['release_job_queued_s'])} s and ran {fmt(b['release_job_run_s'])} s"
                )

    def bank_verify(self) -> None:
        self.stage = "bank verify"
        outbox = Path(self.cluster.env["KYUFU_OUTBOX_DIR"]) / CODE
        public_key = self.bank_dir / f"municipality-{CODE}-signing.pub.pem"
        identity = self.bank_dir / "bank-identity.txt"
        for b in self.batches:
            age, manifest = outbox / (b["file_name"] + ".age"), outbox / (b["file_name"] + ".manifest.json")
            text, seconds = self.kyufu(
                "bank", "verify", str(age), str(manifest), "--public-key", str(public_key), "--identity", str(identity)
            )
            m = self.parse(r"件数 ([\d,]+) 件 / 合計 ([\d,]+) 円", text, "bank verify")
            count, total = int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))
            b["bank_verify_s"] = seconds
            b["bank_records"], b["bank_total_yen"] = count, total
            b["bank_ok"] = "OK: 復号した平文" in text and count == b["payments"] and total == b["total_yen"]
            self.say(
                f"bank verify batch {b['batch_id']}: {'OK' if b['bank_ok'] else 'FAILED'} ({count:,} records, "
                f"{total:,} yen, {seconds:.1f} s)"
            )

    def consistency(self) -> None:
        self.stage = "consistency"
        online = self.database.row(ONLINE, CODE, self.letter_program)
        receipts_ok = (
            online["applications"] == self.wrk_result["created"] and online["entitlements"] == online["applications"]
        )
        self.note(online_applications=online["applications"], online_entitlements=online["entitlements"])
        self.say(
            f"consistency: online applications {online['applications']:,} = 201 receipts "
            f"{self.wrk_result['created']:,}, distinct entitlements {online['entitlements']:,}: "
            f"{'OK' if receipts_ok else 'MISMATCH'}"
        )
        all_ok = receipts_ok
        for b in self.batches:
            c = self.database.row(PAYOUT_CHECK, CODE, b["program"], b["batch_id"])
            row = self.database.row(BATCH, CODE, b["batch_id"])
            ok = (
                c["payable"] == c["paid_once"] == c["payments"] == row["record_count"]
                and c["paid_wrongly"] == 0
                and c["payments_yen"] == row["total_yen"]
                and row["status"] == "released"
                and b.get("bank_ok", False)
            )
            b["consistent"] = ok
            b.update(
                payable=c["payable"],
                paid_once=c["paid_once"],
                paid_wrongly=c["paid_wrongly"],
                payments_in_db=c["payments"],
                payments_yen=c["payments_yen"],
            )
            all_ok = all_ok and ok
            self.say(
                f"  batch {b['batch_id']} ({b['kind']}): payable applications {c['payable']:,}, paid exactly once "
                f"{c['paid_once']:,}, payments {c['payments']:,} (not payable or twice: {c['paid_wrongly']}), "
                f"batch count {row['record_count']:,}; sum {c['payments_yen']:,} = batch total "
                f"{row['total_yen']:,} yen; status {row['status']}; bank file {'OK' if b.get('bank_ok') else 'FAILED'}"
                f": {'OK' if ok else 'MISMATCH'}"
            )
        self.note(consistency=all_ok, bank_verify=all(b.get("bank_ok", False) for b in self.batches))
        self.ok = self.ok and all_ok

    def floor(self) -> None:
        self.stage = "floor"
        from devtools.payouts_bench import floor

        async def measure():
            import asyncpg

            conn = await asyncpg.connect(self.cluster.urls["DATABASE_OWNER_URL"])
            try:
                out = {}
                for b in self.batches:  # twice, the smaller counts (as the bench takes the smaller sum)
                    out[b["batch_id"]] = min([await floor(conn, CODE, b["batch_id"]) for _ in range(2)])
                return out
            finally:
                await conn.close()

        floors = asyncio.run(measure())
        for b in self.batches:
            b["floor_s"] = floors[b["batch_id"]]
            b["hash_s"] = b["draft_to_hash_db_s"] if b["draft_to_hash_db_s"] is not None else b["draft_to_hash_s"]
            if b["draft_to_hash_db_s"] is not None and b["draft_to_prepared_db_s"] is not None:
                # Where the worker prepares the draft first, hashing starts once the payments are frozen.
                b["hash_s"] = b["draft_to_hash_db_s"] - b["draft_to_prepared_db_s"]
            b["hash_ratio"] = b["hash_s"] / b["floor_s"]
            b["release_ratio"] = b["release_s"] / b["floor_s"]
            for kind in ("hash", "release"):
                run = b.get(f"{kind}_job_run_s")
                b[f"{kind}_job_ratio"] = None if run is None else run / b["floor_s"]
            self.say(
                f"floor batch {b['batch_id']} ({b['kind']}, {b['payments']:,} payments): COPY {b['floor_s']:.3f} s; "
                f"prepared→hash {b['hash_ratio']:.2f}× (target ≤ 1.5×), click→released "
                f"{b['release_ratio']:.2f}× (target ≤ 2.0×); the jobs' own run times: hash "
                f"{fmt(b['hash_job_ratio'])}×, release {fmt(b['release_job_ratio'])}×"
            )

    def payouts_bench(self) -> None:
        self.stage = "payouts bench"
        text, seconds = self.kyufu("payouts", "bench", "--payments", str(self.args.payouts_bench))
        line = text.strip().splitlines()[-1]
        values = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        self.note(
            bench_payments=values.get("payments"),
            bench_floor_s=values.get("floor_s"),
            bench_stage_s=values.get("stage_s"),
            bench_ratio=values.get("ratio"),
        )
        self.say(
            f"kyufu payouts bench --payments {self.args.payouts_bench} (same server, {seconds:.0f} s with its "
            f"seeding): {line}"
        )

    def memory(self) -> None:
        if self.sampler is None:
            return
        self.sampler.stop()
        s = self.sampler.summary_mb()
        for category, v in s.items():
            self.say(
                f"peak RSS {category}: {v['processes']} process(es); largest one {v['peak_one_mb']:.0f} MB (VmHWM); "
                f"all at once {v['peak_sum_rss_mb']:.0f} MB (private {v['peak_sum_private_mb']:.0f} MB)"
            )
        for name, mb in sorted(self.cli_rss_mb.items()):
            self.say(f"peak RSS kyufu {name}: {mb:.0f} MB")
        get = lambda c, k: s[c][k] if c in s else None  # noqa: E731
        self.note(
            rss_app_worker_mb=get("app-worker", "peak_one_mb"),
            rss_app_workers_total_mb=get("app-worker", "peak_sum_rss_mb"),
            rss_app_master_mb=get("app", "peak_one_mb"),
            rss_worker_mb=get("worker", "peak_one_mb"),
            rss_pg_backend_max_mb=get("postgres", "peak_one_mb"),
            rss_pg_private_total_mb=get("postgres", "peak_sum_private_mb"),
            rss_valkey_mb=get("valkey", "peak_one_mb"),
            rss_wrk_mb=get("wrk", "peak_one_mb"),
        )
        self.note(
            **{
                f"rss_cli_{name.replace(' ', '_').replace('-', '_')}_mb": mb
                for name, mb in sorted(self.cli_rss_mb.items())
            }
        )

    def batch_figures(self) -> None:
        for b in self.batches:
            k = b["kind"]
            self.note(
                **{
                    f"{k}_batch_id": b["batch_id"],
                    f"{k}_batch_payments": b["payments"],
                    f"{k}_batch_total_yen": b["total_yen"],
                    f"{k}_payable": b.get("payable"),
                    f"{k}_paid_once": b.get("paid_once"),
                    f"{k}_paid_wrongly": b.get("paid_wrongly"),
                    f"{k}_payments_in_db": b.get("payments_in_db"),
                    f"{k}_payments_yen": b.get("payments_yen"),
                    f"{k}_bank_records": b.get("bank_records"),
                    f"{k}_bank_total_yen": b.get("bank_total_yen"),
                    f"{k}_draft_s": b["draft_s"],
                    f"{k}_draft_to_hash_s": b["draft_to_hash_s"],
                    f"{k}_draft_to_hash_db_s": b["draft_to_hash_db_s"],
                    f"{k}_draft_to_prepared_db_s": b["draft_to_prepared_db_s"],
                    f"{k}_approve_s": b["approve_s"],
                    f"{k}_release_job_start_s": b["release_job_start_s"],
                    f"{k}_release_s": b["release_s"],
                    f"{k}_approve_to_released_s": b["approve_to_released_s"],
                    f"{k}_other_p99_ms_during_hash": b.get("trickle_hash", {}).get("p99_ms"),
                    f"{k}_other_p99_ms_during_release": b.get("trickle_release", {}).get("p99_ms"),
                    f"{k}_other_n_during_release": b.get("trickle_release", {}).get("n"),
                    f"{k}_floor_s": b.get("floor_s"),
                    f"{k}_hash_s": b.get("hash_s"),
                    f"{k}_hash_ratio": b.get("hash_ratio"),
                    f"{k}_release_ratio": b.get("release_ratio"),
                    f"{k}_hash_job_queued_s": b.get("hash_job_queued_s"),
                    f"{k}_hash_job_run_s": b.get("hash_job_run_s"),
                    f"{k}_hash_job_ratio": b.get("hash_job_ratio"),
                    f"{k}_release_job_queued_s": b.get("release_job_queued_s"),
                    f"{k}_release_job_run_s": b.get("release_job_run_s"),
                    f"{k}_release_job_ratio": b.get("release_job_ratio"),
                    f"{k}_bank_verify_s": b.get("bank_verify_s"),
                }
            )

    def run(self) -> int:
        a = self.args
        started = dt.datetime.now(dt.UTC)
        load_before = os.getloadavg()
        self.say(
            f"pipeline: {a.households:,} households, {a.applications:,} applications; {os.cpu_count()} CPUs, "
            f"{psutil.virtual_memory().total / 2**30:.1f} GiB, load {load_before[0]:.2f}; "
            f"{started:%Y-%m-%d %H:%M} UTC; commit {_commit()}"
        )
        failed = None
        code = 0
        try:
            self.setup()
            self.registry()
            self.programs()
            self.letters()
            letters = self.letters_for_wrk()
            self.maintenance("before applications")
            self.start_processes()
            self.applications(letters)
            self.verification()
            self.push()
            self.staff_and_bank()
            self.payouts()
            self.bank_verify()
            self.consistency()
            if a.floor:
                self.floor()
            if a.payouts_bench:
                self.payouts_bench()
            code = 0 if self.ok else 1
        except (StageFailed, console.ConsoleError, TimeoutError) as exc:
            failed = self.stage
            self.say(f"FAILED at {self.stage}: {exc}")
            code = 2
        except KeyboardInterrupt:
            failed = f"{self.stage} (interrupted)"
            code = 2
        except Exception as exc:  # anything else: still stop the cluster and print what was measured
            import traceback

            traceback.print_exc()
            failed = self.stage
            self.say(f"FAILED at {self.stage}: {type(exc).__name__}: {exc}")
            code = 2
        finally:
            if self.trickle is not None:
                self.trickle.stop()
            try:
                self.memory()
            except Exception as exc:  # the figures so far still get printed
                self.say(f"memory summary failed: {type(exc).__name__}: {exc}")
            if code == 2:
                for name in ("app", "worker"):
                    tb = self.cluster.tracebacks().get(name)
                    if tb:
                        self.say(f"{name} log tracebacks: {tb}")
            for session in (getattr(self, "drafter", None), getattr(self, "approver", None)):
                if session is not None:
                    session.close()
            if self.db is not None:
                self.db.close()
            self.cluster.down(remove=not a.keep)
            if a.keep:
                self.say(f"kept {self.root}")
        self.batch_figures()
        self.note(
            load_before=f"{load_before[0]:.2f}",
            load_after=f"{os.getloadavg()[0]:.2f}",
            wall_s=(dt.datetime.now(dt.UTC) - started).total_seconds(),
        )
        if failed:
            self.note(failed_stage=failed.replace(" ", "_"))
        print(" ".join(f"{k}={fmt(v)}" for k, v in self.figures.items()), flush=True)
        return code


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--households", type=int, default=1_000_000)
    p.add_argument("--applications", type=int, default=200_000, help="online applications, one letter each")
    p.add_argument("--rate", type=float, default=1000, help="submissions per second (0: as fast as answered)")
    p.add_argument(
        "--retry-shed-ms",
        type=int,
        default=1000,
        help="send a submission shed with 503 again after this many ms (-1: never; it then counts as lost)",
    )
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--web-workers", type=int, default=2)
    p.add_argument("--verify-batch-size", type=int, help="KYUFU_VERIFY_BATCH_SIZE (default: the shipped 250)")
    p.add_argument(
        "--push-tax-exempt",
        action="store_true",
        help="the プッシュ型 program pays only 住民税非課税 households (default: every household)",
    )
    p.add_argument("--trickle-rate", type=float, default=5, help="other users' GET requests per second")
    p.add_argument("--trickle-baseline-s", type=float, default=3)
    p.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time each batch's COPY floor (devtools.payouts_bench.floor) after the release",
    )
    p.add_argument(
        "--payouts-bench",
        type=int,
        default=0,
        metavar="N",
        help="then run `kyufu payouts bench --payments N` against the same server",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-submit-seconds", type=int, default=900, help="with --rate 0: when wrk stops submitting")
    p.add_argument(
        "--analyze-after-issue",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="VACUUM (ANALYZE) between letters issue and export (without: the export's plan is quadratic)",
    )
    p.add_argument("--export-timeout", type=float, default=3600, help="seconds one `kyufu letters export` may take")
    p.add_argument("--verify-timeout", type=float, default=1800)
    p.add_argument("--hash-timeout", type=float, default=1800)
    p.add_argument("--release-timeout", type=float, default=1800)
    p.add_argument("--no-fsync", action="store_true", help="PostgreSQL with fsync off (tests only)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (servers stopped)")
    args = p.parse_args(argv)
    if args.applications < 1 or args.households < 1:
        p.error("--households and --applications must be at least 1")
    if shutil.which("wrk") is None:
        p.error("wrk is not installed (make system-deps)")
    # SIGTERM (a test's timeout) unwinds like Ctrl-C, so the cluster is stopped, not left running.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    return Pipeline(args).run()


if __name__ == "__main__":
    sys.exit(main())

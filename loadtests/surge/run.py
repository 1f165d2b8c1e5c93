"""Surge load test: find the rate the system sustains, then offer twice that, and check nothing was lost.

    .venv/bin/python loadtests/surge/run.py [--out DIR] [--start-rate 10] [--sustainable R] [--keep]

Loopback only, bounded in time (every locust run has a --run-time; verification gets --drain-timeout)
and in count (--letters residents at most). It starts a private cluster (loadtests/surge/cluster.py:
embedded PostgreSQL with fsync on + Valkey, `uvicorn --workers 2`, one worker, the app's shipped
settings unless overridden) and runs loadtests/surge/locustfile.py headless, once per step:

0. warm-up: --warm-up-run seconds at half the start rate, not judged (cold caches in every process).
1. search: offered rates start-rate, ×factor, ... in journeys/s (residents arriving: a web or API
   application or a status check; three reviewers work the 審査 queue throughout). A step passes when,
   after its warm-up, p99 of admitted requests < --p99-ms, at most 0.1 % is shed, nothing errs and the
   arrivals kept up (≥ 90 % of the offered rate); a failing step is run once more and fails only if
   that fails too. The first pass/fail pair is refined once (geometric midpoint); at most --max-runs
   locust runs in all. Sustainable = the highest passing rate. `--sustainable R` skips the search.
2. surge: 2 × sustainable for --surge-seconds.
3. drain: wait until every application is verified and the outbox is empty (bounded).
4. consistency check against the database (loadtests/surge/consistency.py).

It writes DIR/report.json and DIR/*.png (throughput, latency p50/p95/p99 of admitted requests, shed
rate, outbox backlog, arq queue depth over time), prints the headline figures and exits 1 if the
consistency check failed, 2 if the run itself could not be carried out. Whether p99 stayed under
--p99-ms at 2× is reported (report.json surge.p99_met), not an exit status: it is a measurement, and
on a shared machine it measures the neighbours too (the load average is recorded next to it).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtests.surge import charts, consistency  # noqa: E402
from loadtests.surge.cluster import STAFF, Cluster  # noqa: E402
from loadtests.surge.sampler import Sampler  # noqa: E402
from loadtests.surge.stats import Records, by_name, during_sign_ins, per_second, summarize  # noqa: E402

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
APPLYING_SHARE = 4 / 5  # ResidentWeb + ResidentApi weights among all resident weights (locustfile)
MAX_SHED_SUSTAINABLE = 0.001
MIN_ARRIVALS_KEPT = 0.9
STATUS_RESERVE = 200  # letters nobody applies with, for status checks before the first receipt


class BudgetSpent(Exception):
    """The search has used all the locust runs it may (`--max-runs`)."""


def search_rates(start: float, factor: float, max_steps: int, passes) -> float | None:
    """The highest rate for which `passes(rate)` held: up (or down) by `factor` until the first
    pass/fail pair, then one geometric midpoint between them. At most `max_steps` rates; `passes`
    may end the search early by raising BudgetSpent."""
    rate, best, failed = start, None, None
    for _ in range(max_steps):
        try:
            ok = passes(rate)
        except BudgetSpent:
            break
        if ok:
            best = rate
        else:
            failed = rate if failed is None else min(failed, rate)
        if best is None:
            rate = rate / factor
        elif failed is None:
            rate = rate * factor
        elif failed / best > math.sqrt(factor) * 1.01:
            rate = math.sqrt(best * failed)
        else:
            break
        rate = round(rate, 1)
        if rate < 0.5:
            break
    return best


class Runner:
    """Runs locust once per step against the cluster and judges each run from the clients' records."""

    def __init__(self, args, cluster: Cluster, sampler: Sampler, work: Path) -> None:
        self.args, self.cluster, self.sampler, self.work = args, cluster, sampler, work
        self.cursor = STATUS_RESERVE
        self.runs: list[dict] = []
        self.proc: subprocess.Popen | None = None

    def search(self) -> float | None:
        steps = iter(range(1, 100))
        runs_left = self.args.max_runs

        def run(label: str, rate: float) -> bool:
            nonlocal runs_left
            if runs_left == 0:
                raise BudgetSpent()
            runs_left -= 1
            return self.locust(label, "search", rate)["passed"]

        def passes(rate: float) -> bool:
            # A failure must happen twice: on a shared machine a neighbour's burst fails a step that the
            # system sustains (seen: 14.1/s failing at p99 1.2 s, then 20/s passing at 127 ms). Erring
            # towards a higher sustainable rate makes the 2x run harsher, not kinder. With no run left
            # for the second try, the first result stands.
            label = f"step{next(steps)}"
            if run(label, rate):
                return True
            try:
                return run(label + "-again", rate)
            except BudgetSpent:
                return False

        return search_rates(self.args.start_rate, self.args.factor, 10, passes)

    def locust(self, label: str, phase: str, rate: float) -> dict:
        a = self.args
        seconds = {"warm-up": a.warm_up_run, "search": a.step_seconds, "surge": a.surge_seconds}[phase]
        residents = max(1, round(rate * a.pacing))
        users = residents + len(STAFF)
        budget = math.ceil(rate * APPLYING_SHARE * (seconds + a.pacing) * 1.3) + 20
        first = self.cursor
        files = {
            k: self.work / f"{k}-{label}.{ext}"
            for k, ext in (("records", "csv"), ("receipts", "jsonl"), ("summary", "json"), ("locust", "log"))
        }
        env = dict(
            os.environ,
            SURGE_LETTERS=str(self.cluster.letters_file),
            SURGE_LETTER_RANGE=f"{first}:{min(first + budget, a.letters)}",
            SURGE_STATUS_RANGE=f"0:{STATUS_RESERVE}",
            SURGE_STAFF=str(self.cluster.staff_file),
            SURGE_RECORDS=str(files["records"]),
            SURGE_RECEIPTS=str(files["receipts"]),
            SURGE_SUMMARY=str(files["summary"]),
            SURGE_PACING_S=str(a.pacing),
            SURGE_RETRY_CAP_S=str(a.retry_cap),
        )
        # All users at once: each waits for a random first slot within one pacing period (locustfile).
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "--run-time",
            f"{seconds}s",
            "--stop-timeout",
            str(a.stop_timeout),
            "--host",
            self.cluster.url,
            "--only-summary",
            "--exit-code-on-error",
            "0",
            "--csv",
            str(self.work / f"locust-{label}"),
        ]
        print(
            f"  {label}: {rate:g} journeys/s offered ({residents} resident users + {len(STAFF)} reviewers), "
            f"{seconds} s ...",
            end="",
            flush=True,
        )
        with files["locust"].open("wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.sampler.locust_pid = self.proc.pid
        try:
            self.proc.wait(timeout=seconds + a.stop_timeout + 60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.sampler.locust_pid = None
        if self.proc.returncode != 0 or not files["summary"].exists():
            raise RuntimeError(f"locust run {label} failed:\n" + files["locust"].read_text(errors="replace")[-3000:])
        clients = json.loads(files["summary"].read_text())
        self.cursor = first + clients["letters_used"]
        t0, t_stop = clients.pop("test_start"), clients.pop("test_stopping", None) or time.time()
        t_end = min(t0 + seconds, t_stop)
        records = Records.load([files["records"]])
        window = records.window(t0 + a.warmup_seconds, t_end)
        s = summarize(window, t_end - t0 - a.warmup_seconds)
        why = self._why_not(s, rate, clients)
        run = {
            "label": label,
            "phase": phase,
            "target_journeys_per_s": rate,
            "users": users,
            "t0": t0,
            "t1": t_end,
            "window_s": [a.warmup_seconds, round(t_end - t0, 2)],
            "stats": s,
            "clients": clients,
            "letters": [first, self.cursor],
            "staff_sign_ins": during_sign_ins(records),
            "passed": not why,
            "why_not": why,
            "files": files,
        }
        if phase == "surge":
            run["by_name"] = by_name(window)
        verdict = "not judged" if phase == "warm-up" else "pass" if not why else "fail: " + "; ".join(why)
        print(
            f" {s['admitted_per_s']} admitted/s, p99 {s['admitted_ms']['p99']} ms, shed "
            f"{100 * s['shed_fraction']:.1f} %, errors {s['errors']} -> {verdict}"
        )
        self.runs.append(run)
        return run

    def _why_not(self, s: dict, rate: float, clients: dict) -> list[str]:
        """Why a run is not sustainable (empty: it is)."""
        why = []
        if s["admitted_ms"]["p99"] is None or s["admitted_ms"]["p99"] >= self.args.p99_ms:
            why.append(f"p99 admitted {s['admitted_ms']['p99']} ms ≥ {self.args.p99_ms:g}")
        if s["shed_fraction"] > MAX_SHED_SUSTAINABLE:
            why.append(f"shed {100 * s['shed_fraction']:.2f} %")
        if s["errors"]:
            why.append(f"{s['errors']} errors")
        if (s["journeys_started_per_s"] or 0) < MIN_ARRIVALS_KEPT * rate:
            why.append(f"arrivals {s['journeys_started_per_s']}/s < {100 * MIN_ARRIVALS_KEPT:g} % of offered")
        if clients["letters_exhausted"]:
            why.append("ran out of letters (seed more with --letters)")
        return why

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="report directory (default loadtests/results/surge-<time>)")
    p.add_argument("--letters", type=int, default=40000, help="letters seeded (one per resident, never reused)")
    p.add_argument("--start-rate", type=float, default=10, help="first search step, journeys/s")
    p.add_argument("--factor", type=float, default=2.0, help="search step multiplier")
    p.add_argument("--max-runs", type=int, default=6, help="locust runs the search may use (bounds its time)")
    p.add_argument("--sustainable", type=float, help="skip the search and use this rate (journeys/s)")
    p.add_argument(
        "--warm-up-run",
        type=int,
        default=8,
        help="seconds of an unjudged run at half the start rate before the search (0: none)",
    )
    p.add_argument("--step-seconds", type=int, default=15)
    p.add_argument("--surge-seconds", type=int, default=30)
    p.add_argument("--warmup-seconds", type=float, default=5, help="start of each run left out of its figures")
    p.add_argument("--stop-timeout", type=int, default=30, help="seconds users get to finish their journey")
    p.add_argument("--pacing", type=float, default=10, help="seconds between journeys of one locust user")
    p.add_argument("--retry-cap", type=float, default=3, help="clients honour Retry-After up to this (s)")
    p.add_argument("--p99-ms", type=float, default=250)
    p.add_argument("--drain-timeout", type=float, default=120)
    p.add_argument("--web-workers", type=int, default=2)
    p.add_argument("--max-in-flight", type=int, help="KYUFU_MAX_IN_FLIGHT for the app (default: the app's)")
    p.add_argument("--db-pool-max", type=int, help="KYUFU_DB_POOL_MAX for the app (default: the app's)")
    p.add_argument("--no-fsync", action="store_true", help="PostgreSQL with fsync off (the smoke test)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, raw records)")
    return p


def _config(args) -> dict:
    from app.settings import Settings

    defaults = Settings.model_fields
    return {k: v for k, v in vars(args).items() if k not in ("out", "keep")} | {
        "max_in_flight": args.max_in_flight or defaults["max_in_flight"].default,
        "db_pool_max": args.db_pool_max or defaults["db_pool_max"].default,
        "busy_retry_after_s": defaults["busy_retry_after_s"].default,
        "mix": "journeys: web application 2 : API application 2 : status check 1 (half API, half page); "
        f"+{len(STAFF)} reviewers (one decision per ~3-4 s each)",
    }


def _headline(report: dict) -> list[str]:
    lines = [f"surge report: {report['out_dir']}/report.json (+ {', '.join(report['charts'])})"]
    sus = report["search"]["sustainable_journeys_per_s"]
    lines += [
        f"  {r['label']}: {r['target_journeys_per_s']:g}/s, p99 {r['stats']['admitted_ms']['p99']} ms -> "
        + ("pass" if r["passed"] else "; ".join(r["why_not"]))
        for r in report["runs"]
        if r["phase"] == "search"
    ]
    if sus is None:
        lines.append("sustainable rate: none of the search steps passed; no 2x run")
    else:
        best = max(
            (r for r in report["runs"] if r["phase"] == "search" and r["passed"]),
            key=lambda r: r["target_journeys_per_s"],
            default=None,
        )
        tail = (
            ""
            if best is None
            else (
                f" ({best['stats']['admitted_per_s']} admitted req/s, p99 "
                f"{best['stats']['admitted_ms']['p99']} ms, nothing shed)"
            )
        )
        lines.append(f"sustainable: {sus:g} journeys/s{tail} [{report['search']['how']}]")
    s = report["surge"]
    if s:
        st = s["stats"]
        lines.append(
            f"2x surge: {s['target_journeys_per_s']:g} journeys/s offered, {st['journeys_started_per_s']} arrived/s; "
            f"{st['requests_per_s']} req/s: admitted {st['admitted_per_s']}/s, shed {100 * st['shed_fraction']:.1f} %, "
            f"errors {st['errors']}; admitted p50/p95/p99 {st['admitted_ms']['p50']}/{st['admitted_ms']['p95']}/"
            f"{st['admitted_ms']['p99']} ms -> p99 < {report['config']['p99_ms']:g} ms: "
            f"{'MET' if s['p99_met'] else 'NOT MET'}; shed answers p99 {st['shed_ms']['p99']} ms"
        )
    c, d = report["consistency"], report["drain"]
    lines.append(f"drain: {'done' if d['drained'] else 'NOT done'} in {d['seconds']} s")
    lines.append(
        f"consistency: {'OK' if c['ok'] else 'FAILED'} — {c['receipts_given']} receipts given, "
        f"{c['applications']} applications {c['applications_by_status']}; "
        + ", ".join(f"{k} {v}" for k, v in c["checks"].items())
    )
    m = report["machine"]
    lines.append(
        f"load average: start {m['load_average_start']}, during {m['load1_during']}, end "
        f"{m['load_average_end']}; {m['cpus']} CPUs"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM (a CI timeout, a parent's Ctrl-C) must still stop the cluster: exit through `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = (args.out or ROOT / "loadtests" / "results" / f"surge-{dt.datetime.now():%Y%m%d-%H%M%S}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kyufu-surge-"))
    overrides = {
        k: str(v)
        for k, v in (("KYUFU_MAX_IN_FLIGHT", args.max_in_flight), ("KYUFU_DB_POOL_MAX", args.db_pool_max))
        if v is not None
    }
    machine: dict[str, object] = {  # the report's "machine": start figures now, end figures added below
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"surge: {os.cpu_count()} CPUs, load average {machine['load_average_start']}; work dir {work}")
    cluster = Cluster(work / "cluster", web_workers=args.web_workers, durable=not args.no_fsync, overrides=overrides)
    sampler: Sampler | None = None
    runner: Runner | None = None
    try:
        setup_s = cluster.setup(args.letters)
        cluster.start_app()
        cluster.start_worker()
        print(f"  cluster up, {args.letters} letters seeded, in {setup_s:.1f} s; app {cluster.url}")
        sampler = Sampler(
            cluster.urls["DATABASE_URL"],
            cluster.code,
            cluster.urls["REDIS_URL"],
            f"http://127.0.0.1:{cluster.worker_metrics_port}/metrics",
        )
        sampler.start()
        runner = Runner(args, cluster, sampler, work)
        if args.warm_up_run:  # not judged: first requests of each process, statement caches, page cache
            runner.locust("warm-up", "warm-up", max(1.0, round(args.start_rate / 2, 1)))
        if args.sustainable:
            sustainable, how = args.sustainable, "given with --sustainable"
        else:
            sustainable = runner.search()
            how = (
                f"search from {args.start_rate:g}/s ×{args.factor:g}, refined once, failures confirmed by a "
                f"second run; pass = p99 admitted < "
                f"{args.p99_ms:g} ms, shed ≤ {100 * MAX_SHED_SUSTAINABLE:g} %, no errors, arrivals ≥ "
                f"{100 * MIN_ARRIVALS_KEPT:g} % of offered"
            )
        surge = None
        if sustainable:
            run = runner.locust("surge", "surge", round(2 * sustainable, 1))
            p99 = run["stats"]["admitted_ms"]["p99"]
            surge = {
                "target_journeys_per_s": run["target_journeys_per_s"],
                "stats": run["stats"],
                "by_name": run["by_name"],
                "p99_met": p99 is not None and p99 < args.p99_ms,
            }
        print("  waiting for verification to drain ...", flush=True)
        drain = asyncio.run(consistency.wait_drained(cluster.urls["DATABASE_URL"], cluster.code, args.drain_timeout))
        time.sleep(1.5)  # one more sample after the drain, for the charts
        sampler.stop()

        receipts = [
            json.loads(line)
            for run in runner.runs
            for line in run["files"]["receipts"].read_text().splitlines()
            if line
        ]
        clients: dict = {}
        for run in runner.runs:
            for k, v in run["clients"].items():
                clients[k] = clients.get(k, 0) + v
        checked = asyncio.run(consistency.check(cluster.urls["DATABASE_URL"], cluster.code, receipts, clients))

        t0 = runner.runs[0]["t0"] if runner.runs else time.time()
        samples = [s for s in sampler.samples if s["t"] >= t0]
        t1 = max([s["t"] for s in samples] + [r["t1"] for r in runner.runs] + [t0 + 1])
        series = per_second(Records.load([r["files"]["records"] for r in runner.runs]).window(t0, t1), t0, t1)
        files = charts.draw(out, series, samples, runner.runs, t0, args.p99_ms)
        for kind in ("stats", "failures"):  # locust's own view of the 2× run, for cross-checking
            if (work / f"locust-surge_{kind}.csv").exists():
                shutil.copy(work / f"locust-surge_{kind}.csv", out / f"locust_surge_{kind}.csv")
        loads = [s["load1"] for s in sampler.samples]
        machine |= {
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "load1_during": {"min": round(min(loads), 2), "max": round(max(loads), 2)} if loads else None,
        }
        report = {
            "version": 1,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(["loadtests/surge/run.py", *(sys.argv[1:] if argv is None else argv)]),
            "out_dir": str(out),
            "machine": machine,
            "config": _config(args),
            "setup_seconds": round(setup_s, 1),
            "search": {"sustainable_journeys_per_s": sustainable, "how": how},
            "runs": [{k: v for k, v in r.items() if k not in ("files", "by_name")} for r in runner.runs],
            "surge": surge,
            "drain": drain,
            "consistency": checked,
            "clients": clients,
            "server": {"tracebacks_in_logs": cluster.tracebacks()},
            "charts": files,
            "timeseries": {
                "clients_per_second": series,
                "samples": [{k: v for k, v in s.items() if k != "app"} for s in sampler.samples],
            },
        }
        (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str))
        print("\n".join(_headline(report)))
        if args.keep:
            print(f"  work directory kept: {work}")
        return 0 if checked["ok"] else 1
    except Exception as exc:  # the run could not be carried out; say what, with the servers' last words
        print(f"\nsurge run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        for name in ("app", "worker"):
            tail = cluster.log_tail(name, 1500)
            if tail:
                print(f"--- {name} log tail ---\n{tail}", file=sys.stderr)
        return 2
    finally:
        if runner is not None:
            runner.stop()
        if sampler is not None:
            sampler.stop()
        cluster.down(remove=not args.keep)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory of the processes a load test runs, sampled from /proc (Linux) with psutil.

Per process the kernel keeps VmHWM, the peak resident set over its life, so a sample every half second
still sees a peak that lasted a millisecond, as long as the process is alive at the next sample. Totals
over several processes (the app's workers together, every PostgreSQL backend) are sums at one sample;
for PostgreSQL the private part (RssAnon) is summed too, because the shared buffers every backend has
touched count in each one's RSS. Short `kyufu` commands are measured by the caller with os.wait4 (their
ru_maxrss), not here: they may end between two samples.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil


def status_kb(pid: int) -> dict[str, int]:
    """VmHWM, VmRSS and RssAnon of a process in kB ({} if it is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon"):
                    out[key] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    return out


def pid_from_file(path: Path) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class PeakSampler:
    """Samples every `interval_s` the processes that `roots()` names ({category: [pid, ...]}) and their
    descendants. `classify(proc, category)` may re-label a descendant (e.g. an app worker below its
    master); return None to keep the parent's category."""

    def __init__(
        self,
        roots: Callable[[], dict[str, list[int]]],
        classify: Callable[[psutil.Process, str], str | None] | None = None,
        interval_s: float = 0.5,
    ) -> None:
        self.roots, self.classify, self.interval_s = roots, classify, interval_s
        self.hwm_kb: dict[str, int] = {}  # category -> max VmHWM of one process
        self.total_kb: dict[str, int] = {}  # category -> max over samples of the sum of VmRSS
        self.anon_total_kb: dict[str, int] = {}  # category -> max over samples of the sum of RssAnon
        self.processes: dict[str, set[int]] = {}  # category -> pids seen
        self._labels: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.sample()  # the last word before the caller stops the processes

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception as exc:  # a sampler must not end the run; the gap is named
                print(f"rss sampler: {type(exc).__name__}: {exc}", flush=True)

    def _walk(self) -> dict[int, str]:
        found: dict[int, str] = {}
        for category, pids in self.roots().items():
            for pid in pids:
                found[pid] = category
                try:
                    children = psutil.Process(pid).children(recursive=True)
                except psutil.Error:
                    continue
                for child in children:
                    label = self._labels.get(child.pid)
                    if label is None:
                        try:
                            label = (self.classify(child, category) if self.classify else None) or category
                        except psutil.Error:
                            continue
                        self._labels[child.pid] = label
                    found[child.pid] = label
        return found

    def sample(self) -> None:
        sums: dict[str, int] = {}
        anon: dict[str, int] = {}
        for pid, category in self._walk().items():
            s = status_kb(pid)
            if not s:
                continue
            self.processes.setdefault(category, set()).add(pid)
            self.hwm_kb[category] = max(self.hwm_kb.get(category, 0), s.get("VmHWM", 0))
            sums[category] = sums.get(category, 0) + s.get("VmRSS", 0)
            anon[category] = anon.get(category, 0) + s.get("RssAnon", 0)
        for category, kb in sums.items():
            self.total_kb[category] = max(self.total_kb.get(category, 0), kb)
            self.anon_total_kb[category] = max(self.anon_total_kb.get(category, 0), anon[category])

    def summary_mb(self) -> dict[str, dict[str, float]]:
        return {
            c: {
                "processes": len(self.processes.get(c, ())),
                "peak_one_mb": self.hwm_kb[c] / 1024,
                "peak_sum_rss_mb": self.total_kb.get(c, 0) / 1024,
                "peak_sum_private_mb": self.anon_total_kb.get(c, 0) / 1024,
            }
            for c in sorted(self.hwm_kb)
        }


def wait_with_rusage(proc, timeout_s: float) -> tuple[int, float]:
    """Wait for a Popen child like proc.wait(), returning (exit status, peak RSS in MB from ru_maxrss).
    On timeout it raises TimeoutError and leaves the child running: the caller stops it."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss / 1024
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc.args!r} did not finish in {timeout_s:.0f} s")
        time.sleep(0.05)

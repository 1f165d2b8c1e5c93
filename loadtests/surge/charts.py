"""The report's PNG charts (matplotlib, no display needed): one figure per question an operator asks
after a surge, all on the same time axis (seconds since the first locust run began), with each locust
run shaded and labelled by its offered rate."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _phases(ax, runs: list[dict], t0: float) -> None:
    for i, run in enumerate(runs):
        a, b = run["t0"] - t0, run["t1"] - t0
        color = {"surge": "tab:red", "warm-up": "tab:blue"}.get(run["phase"], "0.5")
        ax.axvspan(a, b, color=color, alpha=0.12 if i % 2 == 0 else 0.2, lw=0)
        label = f"{run['target_journeys_per_s']:g}/s" + (" warm-up" if run["phase"] == "warm-up" else "")
        ax.text((a + b) / 2, 1.0, label, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=7)


def _figure(title: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(11, 4.2))
    ax.set_title(title, pad=14)
    ax.set_xlabel(
        "seconds since the first run began "
        "(shaded: locust runs, label = offered journeys/s; blue = warm-up, red = 2× surge)"
    )
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def draw(out: Path, clients: dict, samples: list[dict], runs: list[dict], t0: float, p99_limit_ms: float) -> list[str]:
    t = clients["t"]
    files = []

    fig, ax = _figure("Throughput (client side, by request start)", "requests per second")
    ax.plot(t, clients["admitted"], label="admitted (answered by the app)", color="tab:blue")
    ax.plot(t, clients["shed"], label="shed (503 + Retry-After)", color="tab:orange")
    ax.plot(t, clients["errors"], label="errors (no answer, 5xx other than 503)", color="tab:red")
    _phases(ax, runs, t0)
    ax.legend(loc="upper left", fontsize=8)
    files.append(_save(fig, out / "throughput.png"))

    fig, ax = _figure("Latency of admitted requests, per second", "ms")
    for p, color in (("p50_ms", "tab:green"), ("p95_ms", "tab:blue"), ("p99_ms", "tab:purple")):
        ax.plot(t, [v if v is not None else float("nan") for v in clients[p]], label=p.replace("_ms", ""), color=color)
    ax.axhline(p99_limit_ms, color="tab:red", ls="--", lw=1, label=f"{p99_limit_ms:g} ms")
    ax.set_yscale("log")
    _phases(ax, runs, t0)
    ax.legend(loc="upper left", fontsize=8)
    files.append(_save(fig, out / "latency.png"))

    fig, ax = _figure("Shed rate (503 from admission control)", "% of requests")
    ax.plot(t, [100 * v if v is not None else float("nan") for v in clients["shed_fraction"]], color="tab:orange")
    ax.set_ylim(bottom=0)
    _phases(ax, runs, t0)
    files.append(_save(fig, out / "shed_rate.png"))

    st = [s["t"] - t0 for s in samples]
    fig, ax = _figure("Outbox backlog (rows not done)", "rows")
    ax.plot(st, [s["outbox_backlog"] for s in samples], label="database, every second", color="tab:blue")
    ax.step(
        st,
        [s.get("worker", {}).get("kyufu_outbox_backlog", float("nan")) for s in samples],
        where="post",
        ls="--",
        color="tab:gray",
        label="worker /metrics gauge (recomputed every 30 s)",
    )
    ax2 = ax.twinx()
    ax2.plot(st, [s["outbox_oldest_s"] for s in samples], color="tab:brown", lw=0.8, label="oldest row age (s)")
    ax2.set_ylabel("oldest row age, s")
    _phases(ax, runs, t0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8)
    files.append(_save(fig, out / "outbox_backlog.png"))

    fig, ax = _figure("arq queue depth (read from Valkey every second)", "jobs waiting")
    ax.plot(
        st,
        [s.get("queue_depth") if s.get("queue_depth") is not None else float("nan") for s in samples],
        color="tab:purple",
    )
    _phases(ax, runs, t0)
    files.append(_save(fig, out / "queue_depth.png"))
    return files

"""Progress bars for long CLI work (imports, eligibility, payout files, benchmarks).

`progress_bar(description, total)` shows a rich bar on stderr when stderr is a terminal and
KYUFU_NO_PROGRESS is not set; anywhere else (tests, CI, cron, benchmark logs piped to a file) it yields a
bar whose methods do nothing, so callers never branch. The bar is also the `(done, total)` callback that
domain code takes as `progress=` (payouts.pipeline.render_batch, app.registry), so that code stays free of
any terminal concern. A bar never shows personal data: descriptions are stage names and counts only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

# `report(done, total)` or `report(done, total, "stage")`: what domain functions accept as progress=.
Report = Callable[..., None]

DISABLE_ENV = "KYUFU_NO_PROGRESS"


class Bar:
    """One task of a progress display; the no-op base class is what non-terminals get."""

    def __call__(self, done: float, total: float | None = None, description: str | None = None) -> None:
        """Set the position (and optionally the total and the stage name)."""

    def advance(self, amount: float = 1) -> None:
        """Move forward by `amount`."""

    def stage(self, description: str, total: float | None = None) -> None:
        """Start a new stage from zero: a new name and, if known, a new total."""


class _RichBar(Bar):
    def __init__(self, progress: Progress, task: TaskID):
        self._progress, self._task = progress, task

    def __call__(self, done: float, total: float | None = None, description: str | None = None) -> None:
        # rich leaves a field unchanged when it is given None
        self._progress.update(self._task, completed=done, total=total, description=description)

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._task, amount)

    def stage(self, description: str, total: float | None = None) -> None:
        self._progress.reset(self._task, total=total, description=description)


def enabled(console: Console) -> bool:
    return console.is_terminal and not os.environ.get(DISABLE_ENV)


@contextmanager
def progress_bar(description: str, total: float | None = None, *, console: Console | None = None) -> Iterator[Bar]:
    """A bar for the duration of the block (total None: an indeterminate bar until one is set)."""
    console = console or Console(stderr=True)
    if not enabled(console):
        yield Bar()
        return
    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn()]
    # transient: the finished bar is erased, so what the command prints stays as it would be without it.
    with Progress(*columns, console=console, transient=True) as progress:
        yield _RichBar(progress, progress.add_task(description, total=total))

"""app/progress.py: a rich bar on a terminal, nothing at all anywhere else."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from app.progress import DISABLE_ENV, progress_bar


def _use(console: Console) -> None:
    with progress_bar("取込", 100, console=console) as bar:
        bar(40)
        bar.advance(10)
        bar.stage("索引と公開", 2)
        bar(1, description="索引と公開 1/2")


def test_a_terminal_gets_a_bar(monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    out = StringIO()
    _use(Console(force_terminal=True, file=out, width=80))
    text = out.getvalue()
    assert "索引と公開" in text and "━" in text and "%" in text


def test_anything_but_a_terminal_gets_nothing(monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    out = StringIO()
    _use(Console(file=out, width=80))
    assert out.getvalue() == ""


def test_kyufu_no_progress_silences_even_a_terminal(monkeypatch):
    monkeypatch.setenv(DISABLE_ENV, "1")
    out = StringIO()
    _use(Console(force_terminal=True, file=out, width=80))
    assert out.getvalue() == ""


def test_the_bar_is_a_done_total_callback_in_both_modes(monkeypatch):
    """Domain code calls progress(done, total) whether or not anything is shown."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    for console in (Console(file=StringIO()), Console(force_terminal=True, file=StringIO(), width=80)):
        with progress_bar("振込ファイル", console=console) as bar:
            for done in range(0, 1001, 250):
                bar(done, 1000)

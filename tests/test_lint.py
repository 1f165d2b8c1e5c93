"""The linters pass, so `make test` (and CI) runs them: ruff's rules (ruff.toml), ruff's formatting, and mypy
(mypy.ini) over app/, payouts/, workers/, tools/, devtools/ and loadtests/. Each runs as the developer would,
from the venv's bin directory at the repository root, and a failure shows the tool's own report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# The caches go to pytest's temporary directory: every run is a cold run (mypy takes a few seconds), and
# the suite leaves nothing in the work tree.
LINTERS = {
    "ruff check": lambda cache: ["ruff", "check", "--no-cache", "."],
    "ruff format --check": lambda cache: ["ruff", "format", "--check", "--no-cache", "."],
    "mypy": lambda cache: ["mypy", "--config-file", "mypy.ini", "--cache-dir", str(cache)],
}


@pytest.mark.parametrize("name", LINTERS)
def test_linter_passes(name, tmp_path):
    """The tool exits 0 on the tree as committed (its exclusions are in its config file, with reasons)."""
    tool, *args = LINTERS[name](tmp_path / "cache")
    executable = BIN / tool
    assert executable.exists(), f"{tool} is not installed in {BIN}: run `make install` (requirements.lock)"
    result = subprocess.run(
        [str(executable), *args], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"`{name}` failed (exit {result.returncode}):\n{result.stdout}{result.stderr}", pytrace=False)

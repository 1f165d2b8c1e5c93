"""Layering rules that the code must keep (issue 13): the money path (`payouts/`) is a domain — plain
functions on a connection — and never reaches into the console (`app/staff/`), the web layer (`app/web/`)
or the resident site (`app/intake/`); jobs (`workers/`) do not either. Checked on the import statements of
every module, including imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

RULES = {
    "payouts": ("app.staff", "app.web", "app.intake", "app.main", "app.cli"),
    "workers": ("app.staff", "app.web", "app.main", "app.cli"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_does_not_import_the_layers_above_it(package):
    forbidden = RULES[package]
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}" for path in files
           for line, name in imported_modules(path)
           if any(name == f or name.startswith(f + ".") for f in forbidden)]
    assert not bad, "\n".join(bad)


def test_the_rule_sees_a_forbidden_import(tmp_path):
    """The checker itself: a function-local `from app.staff import x` is found."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from app.staff import batches\n    import app.web.setup\n")
    names = [n for _, n in imported_modules(module)]
    assert "app.staff.batches" in names and "app.web.setup" in names

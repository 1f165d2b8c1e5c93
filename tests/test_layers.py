"""The layers hold (issue 14): the import contracts in .importlinter (core ← domains ← web and entry
points; payouts/ never imports the console or the web layer; jobs import no web handlers) and no import
cycle between modules, function-local imports included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from tests.conftest import ROOT

PACKAGES = ("app", "payouts", "workers")


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


def cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    adjacency = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in adjacency:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            children = adjacency[node]
            if i < len(children):
                work.append((node, i + 1))
                child = children[i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            for child in children:
                if child in on_stack:
                    low[node] = min(low[node], low[child])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles():
    assert cycles(grimp.build_graph(*PACKAGES)) == []


def test_the_cycle_finder_finds_one(tmp_path, monkeypatch):
    """The checker itself: two modules importing each other (one inside a function) are a cycle."""
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic import b\n")
    (package / "b.py").write_text("def f():\n    from cyclic import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles(grimp.build_graph("cyclic")) == [["cyclic.a", "cyclic.b"]]


HANDLER_MODULES = (
    "app/staff/web/__init__.py",
    "app/staff/web/common.py",
    "app/staff/web/signin.py",
    "app/staff/web/dashboard.py",
    "app/staff/web/review.py",
    "app/staff/web/account_change.py",
    "app/staff/web/batches.py",
    "app/staff/web/reconciliation.py",
    "app/staff/web/recovery.py",
    "app/staff/web/duplicates.py",
    "app/staff/web/progress.py",
    "app/staff/web/charts.py",
    "app/staff/web/proxy.py",
    "app/staff/web/dv.py",
    "app/staff/web/holds.py",
    "app/staff/web/paper.py",
    "app/staff/web/admin.py",
    "app/staff/web/enrolment.py",
    "app/staff/web/labels.py",
    "app/staff/web/routes.py",
    "app/web/sessions.py",  # the session mechanism of both sites: the console's store runs its SQL in app/staff
    "app/web/csrf.py",
    "app/intake/web/pages.py",
    "app/intake/web/api.py",
    "app/intake/web/routes.py",
    "app/main.py",
)
QUERY_METHODS = {
    "fetch",
    "fetchrow",
    "fetchval",
    "execute",
    "executemany",
    "copy_records_to_table",
    "copy_from_query",
    "copy_to_table",
    "prepare",
}


def queries_in(source: str) -> list[str]:
    """Database calls (`x.fetch(...)` and the like) and SQL-looking string constants in a module."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_METHODS:
            found.append(f"line {node.lineno}: .{node.func.attr}(...)")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.lstrip().upper().startswith(("SELECT ", "INSERT ", "UPDATE ", "DELETE ", "WITH "))
        ):
            found.append(f"line {node.lineno}: SQL text")
    return found


def test_web_handlers_run_no_sql():
    """Handlers parse, call a domain function, render (issue 14): the queries live with their area."""
    console = {str(p.relative_to(ROOT)) for p in (ROOT / "app/staff/web").glob("*.py")}
    assert console <= set(HANDLER_MODULES), "a new console module: add it to HANDLER_MODULES"
    bad = {path: queries_in((ROOT / path).read_text()) for path in HANDLER_MODULES}
    assert {path: found for path, found in bad.items() if found} == {}


def test_the_sql_finder_finds_a_query():
    assert queries_in('async def h(conn):\n    await conn.fetch("SELECT 1")\n') == [
        "line 2: .fetch(...)",
        "line 2: SQL text",
    ]

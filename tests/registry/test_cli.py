"""The registry commands end to end, as an operator runs them."""

from __future__ import annotations

from tests.conftest import run_cli
from tests.registry.helpers import person, residents_csv


async def test_import_program_eligibility_letters_from_the_command_line(subprocess_env, code, tmp_path):
    demo = tmp_path / "residents.csv"
    r = run_cli(subprocess_env, "demo", "registry", "--households", "30", "--out", str(demo), "--encoding", "cp932")
    assert r.returncode == 0, r.stderr
    r = run_cli(subprocess_env, "registry", "import", "--municipality", code, str(demo))
    assert r.returncode == 0 and "imported snapshot" in r.stdout, r.stderr
    r = run_cli(subprocess_env, "registry", "import", "--municipality", code, str(demo))
    assert "nothing changed" in r.stdout
    r = run_cli(
        subprocess_env,
        "registry",
        "import-tax",
        "--municipality",
        code,
        "--fiscal-year",
        "2026",
        str(tmp_path / "residents.tax.csv"),
    )
    assert r.returncode == 0, r.stderr
    r = run_cli(
        subprocess_env,
        "programs",
        "add",
        "--municipality",
        code,
        "--name",
        "CLI給付",
        "--base-date",
        "2026-04-01",
        "--unit",
        "household",
        "--amount",
        "30000",
        "--mode",
        "letter",
        "--tax-condition",
        "exempt",
    )
    assert r.returncode == 2 and "課税年度" in r.stderr
    r = run_cli(
        subprocess_env,
        "programs",
        "add",
        "--municipality",
        code,
        "--name",
        "CLI給付",
        "--base-date",
        "2026-04-01",
        "--unit",
        "household",
        "--amount",
        "30000",
        "--mode",
        "letter",
    )
    program = r.stdout.split()[1]
    r = run_cli(subprocess_env, "programs", "eligibility", "--municipality", code, "--program", program)
    assert r.returncode == 0 and "entitled:" in r.stdout, r.stderr
    r = run_cli(subprocess_env, "letters", "issue", "--municipality", code, "--program", program)
    assert r.returncode == 0 and "issued" in r.stdout, r.stderr
    out = tmp_path / "print.csv"
    r = run_cli(subprocess_env, "letters", "export", "--municipality", code, "--program", program, "--out", str(out))
    assert r.returncode == 0, r.stderr
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("確認書番号,暗証番号") and len(lines) > 1
    r = run_cli(subprocess_env, "letters", "export", "--municipality", code, "--program", program, "--out", str(out))
    assert r.returncode == 2  # never overwrites the previous print file
    r = run_cli(
        subprocess_env,
        "letters",
        "export",
        "--municipality",
        code,
        "--program",
        program,
        "--out",
        str(tmp_path / "again.csv"),
    )
    assert "exported 0 letters" in r.stdout


async def test_a_bad_file_exits_2_with_line_reports_and_no_personal_data(subprocess_env, code, tmp_path):
    bad = person(family_kana="ヤマダ太郎", resident_code="98765")
    path = tmp_path / "bad.csv"
    path.write_bytes(residents_csv([person(), bad]))
    r = run_cli(subprocess_env, "registry", "import", "--municipality", code, str(path))
    assert r.returncode == 2
    assert "3行目 住民票コード" in r.stderr and "3行目 氏カナ" in r.stderr
    assert "98765" not in r.stderr + r.stdout and "ヤマダ太郎" not in r.stderr + r.stdout

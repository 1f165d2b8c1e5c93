"""`make run`'s seed step: everything a person needs to try kyufu is printed, and a second run is the same."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import run_cli


def test_demo_seed_prints_working_logins_codes_and_bank_files_and_is_idempotent(subprocess_env, settings):
    first = run_cli(subprocess_env, "demo", "seed", timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    out = first.stdout
    # One login per role, and a second admin who confirms the first one's role requests (and vice versa).
    for login in ("reviewer", "drafter", "approver", "admin", "admin2"):
        assert f"login '{login}', password 'kyufu-demo-{login}'" in out
    assert out.count("TOTP secret") == 3  # approver, admin and admin2
    letters = re.findall(r"letter ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}) PIN (\d{6})", out)
    assert len(letters) >= 3
    identity = Path(re.search(r"bank age identity \(demo bank's secret key\): (\S+)", out).group(1))
    public = Path(re.search(r"municipality's signing public key: (\S+)", out).group(1))
    assert identity.read_text().count("AGE-SECRET-KEY-") == 1
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    # A second municipality lists one of 131016's residents: a cross-municipality duplicate case to try.
    case = re.search(r"case (D-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}) under 重複の疑い", out)
    assert case and "municipality 131024 中央区（デモ）" in out
    # 支給状況: where to look, and each program's figures as they are (nothing applied yet at seed time).
    assert "/staff/progress" in out and "nothing yet (apply on the resident site" in out
    # A box of paper forms to key twice (devtools/demo_paper.py): two keying clerks, what each form says.
    for login in ("keyer1", "keyer2"):
        assert f"login '{login}', password 'kyufu-demo-{login}'" in out
    paper = re.findall(r"通番 (\d): 確認書番号 ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})", out)
    assert "box DEMO-0001" in out and [n for n, _ in paper] == ["1", "2", "3", "4", "5", "6"]

    # A death after 基準日 (devtools/demo_holds.py): the newer extract's screening holds the application.
    death = re.search(r"hold #(\d+) waits for a reviewer's decision: console /staff/holds\?hold=\1", out)
    assert death and "died on 2026-06-01" in out

    # A proxy case and a DV 申出 across the two municipalities (devtools/demo_proxy_dv.py).
    proxy_case = re.search(r"receipt (\d+) waits in 審査", out)
    dv_request = re.search(r"DV 申出 (V-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}): 中央区（デモ） recorded it", out)
    assert proxy_case and dv_request

    second = run_cli(subprocess_env, "demo", "seed", timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    staff_lines = [line for line in out.splitlines() if "login '" in line and "TOTP" not in line]
    assert staff_lines and all(line in second.stdout for line in staff_lines)
    assert identity.read_text().count("AGE-SECRET-KEY-") == 1  # the bank identity is kept, not replaced
    assert f"case {case.group(1)} under" in second.stdout  # the same case, not a second one
    paper_lines = [line for line in out.splitlines() if "通番" in line]
    assert paper_lines and all(line in second.stdout for line in paper_lines)  # the same box, not a second one
    assert f"hold #{death.group(1)} waits" in second.stdout  # the same hold, not a second one
    assert proxy_case.group(0) in second.stdout and f"DV 申出 {dv_request.group(1)}:" in second.stdout  # once

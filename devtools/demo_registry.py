"""Demo data for `kyufu run` (devtools/demo.py): a synthetic registry and one program of each payment mode."""

from __future__ import annotations

import datetime as dt

import asyncpg

from app.registry.eligibility import determine_eligibility
from app.registry.imports import import_accounts, import_residents, import_tax
from app.registry.letters import issue_letters, pending_pins
from app.registry.programs import create_program, list_programs, parse_program
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from devtools.synthetic import generate

DEMO_HOUSEHOLDS = 200
FISCAL_YEAR = 2026
# A 申請型 program mails no letter: print the identity of one entitled household's head (synthetic data)
# to try identification without a letter with. The first household by number, so every run prints the same.
DEMO_IDENTITY = """
SELECT r.family_kana, r.given_kana, r.birth_date, r.address
FROM entitlements e
JOIN residents r ON r.municipality_code = e.municipality_code AND r.snapshot_id = e.snapshot_id
                AND r.resident_code = e.head_resident_code
WHERE e.municipality_code = $1 AND e.program_id = $2 AND e.status <> 'withdrawn'
ORDER BY e.household_no LIMIT 1
"""


def _programs(today: dt.date) -> list[dict]:
    base = dt.date(2026, 4, 1)
    return [
        dict(
            name="デモ 物価高騰対策給付金（確認書型）",
            base_date=base,
            unit="household",
            amount_yen=30000,
            child_amount_yen=20000,
            tax_condition="exempt",
            tax_fiscal_year=FISCAL_YEAR,
            payment_mode="letter",
            apply_from=today,
            apply_until=today + dt.timedelta(days=90),
        ),
        dict(
            name="デモ 定額給付金（プッシュ型）",
            base_date=base,
            unit="person",
            amount_yen=10000,
            payment_mode="push",
            decline_deadline=today + dt.timedelta(days=14),
        ),
        dict(
            name="デモ 子育て応援給付金（申請型）",
            base_date=base,
            unit="person",
            amount_yen=50000,
            max_age=17,
            payment_mode="application",
            apply_from=today,
            apply_until=today + dt.timedelta(days=90),
        ),
    ]


async def seed_demo(conn: asyncpg.Connection, settings, code: str) -> list[str]:
    """Load the demo registry and programs (idempotent: files re-import as no-ops, programs are found by
    name) and return printable lines with a few letter codes and PINs."""
    files = generate(DEMO_HOUSEHOLDS, seed=2026)
    lines: list[str] = []
    async with tenant_transaction(conn, code):
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        await import_residents(conn, code, files.residents_csv)
        await import_tax(conn, code, FISCAL_YEAR, files.tax_csv)
        await import_accounts(conn, cipher, code, files.accounts_csv)
        today = await conn.fetchval("SELECT current_date")
        existing = {p["name"]: p["program_id"] for p in await list_programs(conn, code)}
        for spec in _programs(today):
            program_id = existing.get(spec["name"]) or await create_program(conn, code, parse_program(spec))
            result = await determine_eligibility(conn, code, program_id)
            lines.append(f"program {program_id} {spec['name']}: {result.households} households, {result.total_yen} yen")
            if spec["payment_mode"] == "application":
                who = await conn.fetchrow(DEMO_IDENTITY, code, program_id)
                if who is not None:
                    lines.append(
                        f"  no letter (「確認書をお持ちでない方」): {who['family_kana']} {who['given_kana']}, "
                        f"born {who['birth_date'].isoformat()}, address {who['address']}"
                    )
                continue
            await issue_letters(conn, cipher, code, program_id, "demo")
            for letter in await pending_pins(conn, cipher, code, program_id, 3):
                lines.append(
                    f"  letter {letter['access_code']} PIN {letter['pin']} "
                    f"({letter['kind']}, household {letter['household_no']}, {letter['amount_yen']} yen)"
                )
    return lines

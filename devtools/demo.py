"""`kyufu demo seed` and the seed step of `kyufu run`: the demo municipality and what a person needs to
try each capability (staff logins, a synthetic registry with programs and letters, the demo bank)."""

from __future__ import annotations

from app.db import connect_owner
from app.tenancy.municipalities import MunicipalityExists, add_municipality
from app.tenancy.transaction import tenant_transaction
from devtools.demo_bank import seed_demo_bank
from devtools.demo_duplicates import seed_duplicate
from devtools.demo_holds import seed_death
from devtools.demo_paper import seed_paper
from devtools.demo_progress import progress_lines
from devtools.demo_proxy_dv import seed_proxy_dv
from devtools.demo_registry import seed_demo as seed_registry
from devtools.demo_staff import seed_demo_staff

DEMO_MUNICIPALITY = ("131016", "千代田区（デモ）")


async def seed_demo(settings) -> list[str]:
    """Seed the demo municipality; printable lines. Idempotent: a second `make run` finds everything in
    place and prints the same logins, codes and PINs."""
    code, name = DEMO_MUNICIPALITY
    lines = [f"municipality {code} {name}", "", "staff console logins:"]
    conn = await connect_owner(settings)
    try:
        try:
            await add_municipality(conn, settings.master_key_bytes, code, name)
        except MunicipalityExists:
            pass
        async with tenant_transaction(conn, code):
            lines += ["  " + line for line in await seed_demo_staff(conn, code, settings.master_key_bytes)]
        lines += [
            "",
            "registry, programs and letters (resident site: sign in with a letter code + PIN, or for the"
            " 申請型 program without a letter, with the identity printed below):",
            "  (in English: the 'English' link at the top right of every resident page; the choice is remembered)",
        ]
        lines += ["  " + line for line in await seed_registry(conn, settings, code)]
        lines += ["", "paper forms to key twice (ベリファイ入力; logins keyer1, keyer2, then reviewer):"]
        lines += ["  " + line for line in await seed_paper(conn, settings, code)]
        lines += ["", "a second municipality and a cross-municipality duplicate:"]
        lines += ["  " + line for line in await seed_duplicate(conn, settings, code)]
        lines += ["", "a proxy application and a DV 申出 across the two municipalities:"]
        lines += ["  " + line for line in await seed_proxy_dv(conn, settings, code)]
        lines += ["", "a death after 基準日 (支給保留, for a reviewer to decide; login 'reviewer'):"]
        lines += ["  " + line for line in await seed_death(conn, settings, code)]
        lines += ["", "支給状況 (charts per program and day, open-data CSV):"]
        async with tenant_transaction(conn, code):
            lines += ["  " + line for line in await progress_lines(conn, code)]
        lines += ["", "bank side:"]
        lines += ["  " + line for line in await seed_demo_bank(conn, settings, code, settings.data_dir / "demo-bank")]
        lines += [
            "",
            "a paid batch to work on (the whole chain headless, into this municipality: a released file the bank's",
            "ledger refuses a second time, returns to follow up, a 返還 case to open in the console):",
            f"  kyufu demo e2e --households 200 --municipality {code} --out /tmp/kyufu-e2e",
        ]
    finally:
        await conn.close()
    return lines

"""Screening bench: deaths and moves after 基準日 at city scale, through the functions a municipality runs.

1. import a synthetic extract (default about 1,000,000 residents), create a household program (基準日
   2026-04-01) and run eligibility (which screens its new entitlements against the snapshot);
2. import a newer extract, the same people with 1% of the 世帯主 removed after 基準日 (half died, half
   moved out): the import screens every unpaid entitlement in its transaction (app/registry/screening.py);
3. run the screening statement again on that snapshot on its own (the same join, nothing new to hold),
   so its time is seen apart from the import's COPY and index builds.

Figures are printed as measured (wall time; the machine's cores may be shared). Usage, on a scratch server:
  KYUFU_DATA_DIR=/tmp/screenbench kyufu services up && KYUFU_DATA_DIR=/tmp/screenbench kyufu db migrate
  KYUFU_DATA_DIR=/tmp/screenbench .venv/bin/python -m devtools.screening_bench [--residents N]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import os
import platform
import random
import time

from app.db import connect_owner, create_app_pool
from app.registry import screening
from app.registry.eligibility import determine_eligibility
from app.registry.imports import RESIDENT_COLUMNS, import_residents
from app.registry.programs import create_program, parse_program
from app.settings import load_settings
from app.tenancy.municipalities import MunicipalityExists, add_municipality
from app.tenancy.transaction import tenant_transaction
from devtools.synthetic import generate

BASE_DATE = dt.date(2026, 4, 1)


def newer_extract(original: bytes, share: float, seed: int) -> tuple[bytes, int]:
    """`original` with `share` of the current 世帯主 removed after 基準日 (死亡 or 転出); returns the file and
    how many heads were removed."""
    rng = random.Random(seed)
    reader = csv.reader(io.StringIO(original.decode("utf-8")))
    header = next(reader)
    col = {c.name: header.index(c.header) for c in RESIDENT_COLUMNS}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    removed = 0
    for row in reader:
        if row[col["is_head"]] == "1" and not row[col["removed_on"]] and rng.random() < share:
            removed_on = BASE_DATE + dt.timedelta(days=rng.randint(1, 60))
            moved_in = dt.date.fromisoformat(row[col["moved_in_on"]]) if row[col["moved_in_on"]] else removed_on
            # Never before the 住定日 (a line rule); a head who moved in after 基準日 was not counted anyway.
            row[col["removed_on"]] = max(removed_on, moved_in).isoformat()
            row[col["removal_reason"]] = rng.choice(("死亡", "転出"))
            removed += 1
        writer.writerow(row)
    return out.getvalue().encode("utf-8"), removed


async def bench(residents: int, code: str) -> None:
    settings = load_settings()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB RAM, "
        f"Python {platform.python_version()}"
    )
    owner = await connect_owner(settings)
    try:
        try:
            await add_municipality(owner, settings.master_key_bytes, code, "照合ベンチ市")
        except MunicipalityExists:
            pass
    finally:
        await owner.close()
    seed = int(time.time())
    files = generate(round(residents / 2.225), seed=seed)
    newer, removed = newer_extract(files.residents_csv, 0.01, seed)
    print(f"extract: {files.residents} residents in {files.households} households; newer: {removed} heads removed")
    pool = await create_app_pool(settings, min_size=1, max_size=2)
    try:
        async with tenant_transaction(pool, code) as conn:
            t = time.perf_counter()
            await import_residents(conn, code, files.residents_csv)
            print(f"first import (with its screening): {time.perf_counter() - t:.1f} s")
        async with tenant_transaction(pool, code) as conn:
            program_id = await create_program(
                conn,
                code,
                parse_program(
                    dict(
                        name=f"照合ベンチ {seed}",
                        base_date=BASE_DATE,
                        unit="household",
                        amount_yen=10000,
                        payment_mode="letter",
                    )
                ),
            )
            t = time.perf_counter()
            result = await determine_eligibility(conn, code, program_id)
            print(f"eligibility ({result.households} entitlements, then screened): {time.perf_counter() - t:.1f} s")
        async with tenant_transaction(pool, code) as conn:
            t = time.perf_counter()
            imported = await import_residents(conn, code, newer)
            took = time.perf_counter() - t
            row = await conn.fetchrow(
                "SELECT checked, held FROM registry_screenings WHERE snapshot_id = $1", imported.snapshot_id
            )
            assert row is not None  # the import's transaction screened the snapshot
            print(
                f"newer import with its screening: {took:.1f} s; screened {row['checked']} unpaid entitlements,"
                f" held {row['held']}"
            )
        async with tenant_transaction(pool, code) as conn:
            t = time.perf_counter()
            again = await screening.screen(conn, code, imported.snapshot_id)
            print(
                f"the screening statement alone: {time.perf_counter() - t:.2f} s for {again.checked} unpaid"
                f" entitlements ({again.held} new holds)"
            )
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=1_000_000)
    parser.add_argument("--municipality", default="011002")
    args = parser.parse_args()
    asyncio.run(bench(args.residents, args.municipality))


if __name__ == "__main__":
    main()

"""How low can the residents import's ratio to a bare COPY go on this machine? (issue 3: target <= 2)

    KYUFU_DATA_DIR=/tmp/regfloor .venv/bin/kyufu services up && KYUFU_DATA_DIR=/tmp/regfloor .venv/bin/kyufu db migrate
    DATABASE_OWNER_URL=... .venv/bin/python loadtests/registry_floor.py [--runs 3] [--residents 1000000]

A measurement, not the import: it times only the work any correct import must do to publish a snapshot
partition with the parent's constraints and indexes, with nothing of kyufu's bookkeeping, on a scratch
server as the owner role (never the test suite's server). Per run, on a fresh synthetic extract:

* bare: COPY of the CSV into an unindexed table of text columns (what `kyufu registry bench` divides by);
* encode: the C encoder (app/registry/_residentcsv.c) checking every line and writing the sorted typed
  binary payload, on the client (0 if the module is not built; then only the server parts are shown);
* serial: one connection, one transaction: create the typed table, binary COPY FREEZE, one ALTER adding
  NOT NULL + the parent's CHECKs + the four cross-column rules, the primary key and the parent's secondary
  indexes (two parallel maintenance workers), ANALYZE (statistics target 10) -- kyufu's typed path as
  built (migrations/0012), minus the scope checks, the grants and the ATTACH;
* parallel: the design not built: the payload cut into two code ranges, each loaded, constrained (with
  its range CHECK) and indexed by its own connection and transaction at once, one per core (no parallel
  maintenance workers, they would only compete), then both attached as range partitions of one table;
* the same with the constraints on each table before its COPY (checked row by row as the rows arrive, no
  scan after). kyufu avoids this on purpose: a row that fails a constraint during a COPY is written to the
  server log with its values ("Failing row contains ..."), i.e. residents' personal data, unless the
  session could set log_error_verbosity = terse, which takes a superuser's GRANT SET ON PARAMETER.

It prints each step's time and the ratios (with and without the encoder). The split of the file into two
CSV bodies (Python's csv module) is not timed: a real design would cut the encoder's output.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from app.registry import residentcsv  # noqa: E402
from app.registry.imports import RELATIONSHIPS, REMOVAL_REASONS, RESIDENT_COLUMNS, read_header  # noqa: E402
from devtools.synthetic import generate  # noqa: E402

SCHEMA = "registry_parts"
MUNICIPALITY, SNAPSHOT = "999991", 999_999_999

# The parent's columns with their types, and its constraints and secondary indexes, read from the server so
# this measures what migrations 0011/0012 publish today.
COLUMNS_SQL = """
SELECT string_agg(format('%I %s', attname, format_type(atttypid, atttypmod)), ', ' ORDER BY attnum)
FROM pg_attribute WHERE attrelid = 'public.residents'::regclass AND attnum > 0 AND NOT attisdropped
"""
PARENT_CHECKS_SQL = """
SELECT string_agg(format('ADD CONSTRAINT %I %s', conname, pg_get_constraintdef(oid)), ', ')
FROM pg_constraint WHERE conrelid = 'public.residents'::regclass AND contype = 'c'
"""
NOT_NULL_SQL = """
SELECT string_agg(format('ALTER COLUMN %I SET NOT NULL', attname), ', ')
FROM pg_attribute WHERE attrelid = 'public.residents'::regclass AND attnum > 0 AND attnotnull AND NOT attisdropped
"""
INDEXES_SQL = """
SELECT c.relname, substring(pg_get_indexdef(i.indexrelid) FROM ' USING .*$') AS def
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'public.residents'::regclass AND NOT i.indisprimary ORDER BY c.relname
"""
# kyufu_residents_publish's cross-column rules on the typed load (0012).
CROSS_COLUMN = """
ADD CONSTRAINT load_is_head CHECK (is_head = (relationship = '世帯主')),
ADD CONSTRAINT load_moved_in_after_birth CHECK (moved_in_on >= birth_date),
ADD CONSTRAINT load_removed_after_moved_in CHECK (removed_on >= coalesce(moved_in_on, birth_date)),
ADD CONSTRAINT load_removal_reason CHECK ((removal_reason IS NULL) = (removed_on IS NULL))
"""


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Shape:
    """The parent's DDL pieces, read once."""

    async def read(self, conn: asyncpg.Connection) -> Shape:
        self.columns = await conn.fetchval(COLUMNS_SQL)
        self.checks = await conn.fetchval(PARENT_CHECKS_SQL)
        self.not_null = await conn.fetchval(NOT_NULL_SQL)
        self.indexes = [(r["relname"], r["def"]) for r in await conn.fetch(INDEXES_SQL)]
        return self


async def load(
    conn: asyncpg.Connection,
    shape: Shape,
    table: str,
    payload: bytes,
    *,
    code_range: str | None,
    workers: int,
    commit: bool,
    inline: bool = False,
) -> tuple[asyncpg.transaction.Transaction, dict[str, float]]:
    """One table's load, timed step by step; returns the open transaction when commit is False. inline: the
    constraints are on the table before the COPY, which checks them row by row instead of a scan after it."""
    steps: dict[str, float] = {}
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    cpu0, start = _cpu(pid), time.perf_counter()
    mark = start

    def step(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        steps[name], mark = now - mark, now

    tx = conn.transaction()
    await tx.start()
    await conn.execute(
        f"SET LOCAL max_parallel_maintenance_workers = {workers}; "
        "SET LOCAL maintenance_work_mem = '512MB'; SET LOCAL default_statistics_target = 10"
    )
    await conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{table}")
    await conn.execute(f"CREATE TABLE {SCHEMA}.{table} ({shape.columns})")
    await conn.execute(
        f"ALTER TABLE {SCHEMA}.{table} ALTER COLUMN municipality_code SET DEFAULT '{MUNICIPALITY}', "
        f"ALTER COLUMN snapshot_id SET DEFAULT {SNAPSHOT}"
    )
    extra = f", ADD CONSTRAINT load_range CHECK ({code_range})" if code_range else ""
    constraints = f"ALTER TABLE {SCHEMA}.{table} {CROSS_COLUMN}, {shape.checks}, {shape.not_null}{extra}"
    if inline:
        await conn.execute(constraints)  # an empty table: nothing to scan
    await conn.copy_to_table(
        table,
        schema_name=SCHEMA,
        source=io.BytesIO(payload),
        format="binary",
        columns=list(residentcsv.OUTPUT_COLUMNS),
        freeze=True,
    )
    step("copy")
    if not inline:
        await conn.execute(constraints)
        step("checks")
    await conn.execute(
        f"CREATE UNIQUE INDEX {table}_pkey ON {SCHEMA}.{table} (municipality_code, snapshot_id, resident_code)"
    )
    step("pkey")
    for name, definition in shape.indexes:
        await conn.execute(f"CREATE INDEX {table}{name[len('residents') :]} ON {SCHEMA}.{table} {definition}")
    step("indexes")
    await conn.execute(f"ANALYZE {SCHEMA}.{table}")
    step("analyze")
    if commit:
        await tx.commit()
    steps["total"] = time.perf_counter() - start
    steps["server_cpu"] = _cpu(pid) - cpu0
    return tx, steps


def halves(data: bytes) -> tuple[bytes, bytes, str]:
    """The extract as two CSV files (header kept) of the codes below / from the median code."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    header, body = rows[0], rows[1:]
    at = 0 if header[0].strip('"') == RESIDENT_COLUMNS[0].header else header.index(RESIDENT_COLUMNS[0].header)
    codes = sorted(r[at] for r in body)
    median = codes[len(codes) // 2]
    out = []
    for keep in (lambda c: c < median, lambda c: c >= median):
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(r for r in body if keep(r[at]))
        out.append(buf.getvalue().encode())
    return out[0], out[1], median


def encode(data: bytes) -> bytes:
    body = read_header(data, RESIDENT_COLUMNS)
    payload = residentcsv.encode(memoryview(data)[body.body_offset :], body.columns, RELATIONSHIPS, REMOVAL_REASONS)
    if payload is None:
        raise SystemExit("the C encoder declined the synthetic file (or is not built): nothing to measure")
    return payload


def fmt(steps: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.2f}" for k, v in steps.items())


async def run(url: str, residents: int) -> None:
    data = generate(round(residents / 2.225), seed=int(time.time())).residents_csv
    lower, upper, median = halves(data)
    a, b = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        shape = await Shape().read(a)
        cols = [c.name for c in RESIDENT_COLUMNS]
        await a.execute("DROP TABLE IF EXISTS floor_bare")
        await a.execute("CREATE TABLE floor_bare (" + ", ".join(f"{c} text" for c in cols) + ")")
        t = time.perf_counter()
        await a.copy_to_table("floor_bare", source=io.BytesIO(data), format="csv", header=True, columns=cols)
        bare = time.perf_counter() - t
        await a.execute("DROP TABLE floor_bare")

        t = time.perf_counter()
        payload = await asyncio.to_thread(encode, data)
        encoder = time.perf_counter() - t
        payloads = [await asyncio.to_thread(encode, half) for half in (lower, upper)]

        t = time.perf_counter()
        _, serial_steps = await load(a, shape, "floor_serial", payload, code_range=None, workers=2, commit=True)
        serial = time.perf_counter() - t
        await a.execute(f"DROP TABLE {SCHEMA}.floor_serial")

        parallel = {}
        for inline in (False, True):
            t = time.perf_counter()
            (tx, steps_a), (_, steps_b) = await asyncio.gather(
                load(
                    a,
                    shape,
                    "floor_part0",
                    payloads[0],
                    code_range=f"resident_code < '{median}'",
                    workers=0,
                    commit=False,
                    inline=inline,
                ),
                load(
                    b,
                    shape,
                    "floor_part1",
                    payloads[1],
                    code_range=f"resident_code >= '{median}'",
                    workers=0,
                    commit=True,
                    inline=inline,
                ),
            )
            await a.execute(f"CREATE TABLE {SCHEMA}.floor_parts ({shape.columns}) PARTITION BY RANGE (resident_code)")
            await a.execute(
                f"ALTER TABLE {SCHEMA}.floor_parts ATTACH PARTITION {SCHEMA}.floor_part0 "
                f"FOR VALUES FROM (MINVALUE) TO ('{median}')"
            )
            await a.execute(
                f"ALTER TABLE {SCHEMA}.floor_parts ATTACH PARTITION {SCHEMA}.floor_part1 "
                f"FOR VALUES FROM ('{median}') TO (MAXVALUE)"
            )
            await tx.commit()
            parallel[inline] = (time.perf_counter() - t, steps_a, steps_b)
            await a.execute(f"DROP TABLE {SCHEMA}.floor_parts")
    finally:
        await a.close()
        await b.close()
    load_avg = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print(f"{residents} residents requested, {len(data) / 2**20:.1f} MiB CSV; load average {load_avg}")
    print(f"  bare COPY {bare:.2f} s | encoder {encoder:.2f} s")
    print(
        f"  serial   {serial:.2f} s ({fmt(serial_steps)}): ratio {serial / bare:.2f} server only, "
        f"{(encoder + serial) / bare:.2f} with the encoder"
    )
    for inline, label in ((False, "parallel"), (True, "parallel, constraints checked during the COPY")):
        took, steps_a, steps_b = parallel[inline]
        print(
            f"  {label} {took:.2f} s (A: {fmt(steps_a)}; B: {fmt(steps_b)}): ratio {took / bare:.2f} server only, "
            f"{(encoder + took) / bare:.2f} with the encoder"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--residents", type=int, default=1_000_000)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_OWNER_URL")
    if not url:
        raise SystemExit("DATABASE_OWNER_URL (a scratch server's owner role) is required; see the docstring")
    for _ in range(args.runs):
        asyncio.run(run(url, args.residents))


if __name__ == "__main__":
    main()

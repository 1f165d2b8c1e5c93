"""Subcommands of this area (registered by app/cli.py):

kyufu registry import|import-tax|import-accounts|bench, kyufu registry duplicates contribute|rehash|rotate-key,
kyufu programs add|list|eligibility|scheme, kyufu letters issue|export|reissue, kyufu push settle|decline, and the
options of kyufu demo registry.
`kyufu registry bench` and `kyufu demo registry` are developer tools: their code is in devtools/, imported
inside the command only, so the service never loads it.

Each command opens one app-role connection (row-level security applies) and one tenant transaction.
Mistakes the operator can fix print a Japanese message and exit 2; bad files list every bad line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import os
import sys
from pathlib import Path

import asyncpg

from app.registry.errors import ImportRejected, RegistryError


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


async def _connect(settings) -> asyncpg.Connection:
    from app.db import check_app_role
    from app.settings import require

    conn = await asyncpg.connect(require(settings.database_url, "DATABASE_URL"))
    await check_app_role(conn)
    # Bulk commands (a million-line import) run longer than a request; still bounded.
    await conn.execute("SET statement_timeout = '15min'; SET temp_buffers = '256MB'")
    return conn


def _run(settings, fn) -> int:
    """Run `fn(conn)` on an app connection; translate domain errors into exit status 2."""

    async def main():
        conn = await _connect(settings)
        try:
            return await fn(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(main()) or 0
    except ImportRejected as exc:
        print(f"kyufu: {exc}", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err.describe()}", file=sys.stderr)
        if exc.total > len(exc.errors):
            print(f"  ...ほか {exc.total - len(exc.errors)} 件", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"kyufu: {exc}", file=sys.stderr)
        return 2


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise RegistryError(f"ファイルを読めません: {path} ({exc.strerror})") from None


# ---- registry -----------------------------------------------------------------------------------


def cmd_registry(args, settings) -> int:
    from app.progress import progress_bar
    from app.registry import imports
    from app.registry.events import record_event
    from app.tenancy.municipalities import load_field_cipher
    from app.tenancy.transaction import tenant_transaction

    if args.action == "bench":
        from devtools.registry_bench import run_bench

        return run_bench(args, settings)

    async def go(conn):
        data = _read(args.file)
        code = args.municipality
        try:
            async with tenant_transaction(conn, code) as tx:
                if args.action == "import":
                    with progress_bar("住民票の取込") as bar:
                        result = await imports.import_residents(tx, code, data, progress=bar)
                elif args.action == "import-tax":
                    with progress_bar("課税情報の取込") as bar:
                        result = await imports.import_tax(tx, code, args.fiscal_year, data, progress=bar)
                else:
                    cipher = await load_field_cipher(tx, settings.master_key_bytes, code)
                    result = await imports.import_accounts(tx, cipher, code, data)
                if not result.already_imported:
                    await record_event(
                        tx,
                        code,
                        _actor(),
                        "registry.import",
                        {"kind": args.action, "snapshot_id": result.snapshot_id, "rows": result.rows},
                    )
        except ImportRejected as exc:
            # The import rolled back; the rejection itself is worth keeping (counts only).
            async with tenant_transaction(conn, code) as tx:
                await record_event(
                    tx, code, _actor(), "registry.import_rejected", {"kind": args.action, "errors": exc.total}
                )
            raise
        if result.already_imported:
            print(f"already imported as snapshot {result.snapshot_id} ({result.rows} rows); nothing changed")
        else:
            print(f"imported snapshot {result.snapshot_id}: {result.rows} rows")

    return _run(settings, go)


def cmd_demo_registry(args, settings) -> int:
    """`kyufu demo registry --households N --out residents.csv`: write synthetic files (no database)."""
    from app.progress import progress_bar
    from devtools.synthetic import generate

    if not args.out:
        print("kyufu: --out residents.csv を指定してください", file=sys.stderr)
        return 2
    with progress_bar("合成データの生成（世帯）", args.households) as bar:
        files = generate(args.households, seed=args.seed, encoding=args.encoding, progress=bar)
    out = Path(args.out)
    tax = out.with_name(out.stem + ".tax.csv")
    accounts = out.with_name(out.stem + ".accounts.csv")
    out.write_bytes(files.residents_csv)
    tax.write_bytes(files.tax_csv)
    accounts.write_bytes(files.accounts_csv)
    print(f"wrote {out} ({files.residents} residents in {files.households} households), {tax}, {accounts}")
    return 0


# ---- programs -----------------------------------------------------------------------------------


def cmd_programs(args, settings) -> int:
    from app.progress import progress_bar
    from app.registry import duplicates
    from app.registry.eligibility import determine_eligibility
    from app.registry.events import record_event
    from app.registry.programs import create_program, get_program, list_programs, parse_program
    from app.tenancy.transaction import tenant_transaction

    code = args.municipality

    async def go(conn):
        async with tenant_transaction(conn, code) as tx:
            if args.action == "add":
                spec = parse_program(
                    {
                        k: v
                        for k, v in {
                            "name": args.name,
                            "base_date": args.base_date,
                            "unit": args.unit,
                            "amount_yen": args.amount,
                            "child_amount_yen": args.child_amount,
                            "child_age_under": args.child_age_under,
                            "tax_condition": args.tax_condition,
                            "tax_fiscal_year": args.tax_fiscal_year,
                            "min_age": args.min_age,
                            "max_age": args.max_age,
                            "apply_from": args.apply_from,
                            "apply_until": args.apply_until,
                            "payment_mode": args.mode,
                            "decline_deadline": args.decline_deadline,
                        }.items()
                        if v is not None
                    }
                )
                program_id = await create_program(tx, code, spec)
                await record_event(tx, code, _actor(), "programs.add", {"program_id": program_id})
                print(f"program {program_id} created")
            elif args.action == "list":
                for p in await list_programs(tx, code):
                    scheme = f"\t全国事業 {p['national_scheme']}" if p["national_scheme"] else ""
                    print(
                        f"{p['program_id']}\t{p['name']}\t基準日 {p['base_date']}\t{p['payment_mode']}\t"
                        f"{p['unit']} {p['amount_yen']}円{scheme}"
                    )
            elif args.action == "scheme":
                # Which national benefit this program is; its duplicate hashes follow at once (or are removed).
                await duplicates.set_scheme(tx, code, args.program, None if args.clear else args.scheme)
                await record_event(
                    tx, code, _actor(), "programs.scheme", {"program_id": args.program, "scheme": args.scheme}
                )
                for c in await duplicates.contribute_municipality(
                    tx, settings.duplicate_key_bytes, code, _actor(), args.program
                ):
                    print(c.describe())
            else:
                with progress_bar("資格判定") as bar:
                    r = await determine_eligibility(tx, code, args.program, args.snapshot, progress=bar)
                await record_event(
                    tx,
                    code,
                    _actor(),
                    "programs.eligibility",
                    {
                        "program_id": r.program_id,
                        "snapshot_id": r.snapshot_id,
                        "added": r.added,
                        "updated": r.updated,
                        "withdrawn": r.withdrawn,
                        "conflicts": r.conflicts,
                    },
                )
                print(
                    f"program {r.program_id} on snapshot {r.snapshot_id}: "
                    + (
                        "no change"
                        if r.no_op
                        else f"added {r.added}, updated {r.updated}, withdrawn {r.withdrawn}, "
                        f"new conflicts {r.conflicts} (left unchanged, for staff review)"
                    )
                )
                print(f"entitled: {r.households} households, {r.people} people, total {r.total_yen} yen")
                if (await get_program(tx, code, args.program))["national_scheme"]:
                    # The entitlements changed (or not): the program's duplicate hashes follow them, in the
                    # same transaction, so a run never leaves them describing another set.
                    for c in await duplicates.contribute_municipality(
                        tx, settings.duplicate_key_bytes, code, _actor(), args.program
                    ):
                        print(c.describe())

    return _run(settings, go)


# ---- cross-municipality duplicates -----------------------------------------------------------------


def cmd_duplicates(args, settings) -> int:
    """`kyufu registry duplicates contribute|rehash|rotate-key` (app/registry/duplicates.py)."""
    import base64

    from app.db import connect_owner
    from app.errors import UsageError
    from app.registry import duplicates
    from app.tenancy.transaction import tenant_transaction

    if args.dup_action == "contribute":

        async def go(conn):
            async with tenant_transaction(conn, args.municipality) as tx:
                results = await duplicates.contribute_municipality(
                    tx, settings.duplicate_key_bytes, args.municipality, _actor(), args.program
                )
            for c in results:
                print(c.describe())
            if not results:
                print("no program of this municipality has a national scheme (kyufu programs scheme)")

        return _run(settings, go)

    if args.dup_action == "rehash":

        async def go(conn):
            done = await duplicates.rehash(conn, settings.duplicate_key_bytes, _actor())
            for code, results in done.items():
                for c in results:
                    print(f"{code} {c.describe()}")
            print(f"rehashed {sum(len(r) for r in done.values())} programs in {len(done)} municipalities")

        return _run(settings, go)

    # rotate-key: the owner retires the current key (deleting its hashes), then every municipality is hashed
    # again under the new one.
    new_b64 = os.environ.get("KYUFU_NEW_DUPLICATE_KEY")
    if not new_b64:
        if settings.production:
            raise UsageError("set KYUFU_NEW_DUPLICATE_KEY (base64 of 32 bytes) to rotate in production")
        new_b64 = base64.b64encode(os.urandom(32)).decode()
    new_key = base64.b64decode(new_b64)
    if len(new_key) != 32:
        raise UsageError("KYUFU_NEW_DUPLICATE_KEY must be base64 of exactly 32 bytes")

    async def rotate():
        owner = await connect_owner(settings)
        try:
            version = await duplicates.rotate_key(owner, new_key)
            done = await duplicates.rehash(owner, new_key, _actor())
        finally:
            await owner.close()
        return version, done

    try:
        version, done = asyncio.run(rotate())
    except RegistryError as exc:
        print(f"kyufu: {exc}", file=sys.stderr)
        return 2
    print(
        f"duplicate key version {version} is current; rehashed {sum(len(r) for r in done.values())} programs "
        f"in {len(done)} municipalities"
    )
    if not settings.production:
        import time

        key_file = settings.data_dir / "duplicate.key"
        if key_file.exists():
            key_file.rename(key_file.with_name(f"duplicate.key.{int(time.time())}.old"))
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_b64 + "\n")
        print(f"new duplicate key in {key_file}; restart the worker and the app so they hash with it")
    else:
        print("now set KYUFU_DUPLICATE_KEY to the new key and restart; contributions under the old one are refused")
    return 0


# ---- letters ------------------------------------------------------------------------------------


def cmd_letters(args, settings) -> int:
    from app.registry import letters
    from app.tenancy.municipalities import load_field_cipher
    from app.tenancy.transaction import tenant_transaction

    code = args.municipality

    async def go(conn):
        async with tenant_transaction(conn, code) as tx:
            cipher = await load_field_cipher(tx, settings.master_key_bytes, code)
            if args.action == "issue":
                issued = await letters.issue_letters(tx, cipher, code, args.program, _actor())
                print(f"issued {len(issued)} letters (run `kyufu letters export` to produce the print file)")
            elif args.action == "reissue":
                letter = await letters.reissue_letter(tx, cipher, code, args.entitlement, _actor())
                print(
                    f"re-issued: new code {letters.format_access_code(letter.access_code)}; "
                    "the old code no longer works; export to print it"
                )
            else:
                out = Path(args.out)
                try:
                    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    raise RegistryError(f"{out} は既にあります。別のファイル名を指定してください。") from None
                try:
                    rows = await letters.export_letters(tx, cipher, code, args.program, _actor())
                    data = letters.export_csv(rows, args.encoding)
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(data)
                        fh.flush()
                        os.fsync(fh.fileno())
                except BaseException:
                    out.unlink(missing_ok=True)  # the rollback keeps the PINs for the next export
                    raise
                print(f"exported {len(rows)} letters to {out}" + ("" if rows else " (nothing new to print)"))

    return _run(settings, go)


# ---- push ---------------------------------------------------------------------------------------


def cmd_push(args, settings) -> int:
    from app.registry.push import decline, settle_push
    from app.tenancy.municipalities import load_field_cipher
    from app.tenancy.transaction import tenant_transaction

    code = args.municipality

    async def go(conn):
        async with tenant_transaction(conn, code) as tx:
            if args.action == "settle":
                cipher = await load_field_cipher(tx, settings.master_key_bytes, code)
                n = await settle_push(tx, cipher, code, args.program, actor=_actor(), today=args.today)
                print(f"created {n} push applications")
            else:
                await decline(tx, code, args.entitlement, actor=_actor(), today=args.today)
                print(f"entitlement {args.entitlement} declined")

    return _run(settings, go)


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def register(sub) -> None:
    """Add this area's subcommands to the `kyufu` parser."""
    p = sub.add_parser("registry", help="import registry extracts (住民基本台帳, 課税, 公金受取口座) and benchmarks")
    rsub = p.add_subparsers(dest="action", required=True)
    for name, help_ in (
        ("import", "住民基本台帳 extract (CSV, UTF-8 or CP932)"),
        ("import-tax", "課税区分 per household or resident for a fiscal year"),
        ("import-accounts", "registered accounts per resident (encrypted on import)"),
    ):
        q = rsub.add_parser(name, help=help_)
        q.add_argument("--municipality", required=True)
        if name == "import-tax":
            q.add_argument("--fiscal-year", type=int, required=True)
        q.add_argument("file")
    q = rsub.add_parser("bench", help="benchmarks: import vs bare COPY, eligibility, verification throughput")
    q.add_argument("--municipality", default="011002")
    q.add_argument("--residents", type=int, default=1_000_000)
    q.add_argument("--applications", type=int, default=5000)
    q.add_argument("--batch-size", type=int, default=250)
    q.add_argument("--skip", nargs="*", default=[], choices=["import", "eligibility", "verify"])
    q = rsub.add_parser("duplicates", help="cross-municipality duplicates: keyed hashes, rehash, key rotation")
    dsub = q.add_subparsers(dest="dup_action", required=True)
    d = dsub.add_parser("contribute", help="(re)contribute a municipality's hashes (one program, or all with a scheme)")
    d.add_argument("--municipality", required=True)
    d.add_argument("--program", type=int)
    dsub.add_parser("rehash", help="contribute every municipality again under the current KYUFU_DUPLICATE_KEY")
    dsub.add_parser(
        "rotate-key", help="make KYUFU_NEW_DUPLICATE_KEY current (owner), delete the old hashes, rehash everything"
    )
    q.set_defaults(func=cmd_duplicates)
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser("programs", help="benefit programs and eligibility")
    psub = p.add_subparsers(dest="action", required=True)
    q = psub.add_parser("add", help="define a program")
    q.add_argument("--municipality", required=True)
    q.add_argument("--name", required=True)
    q.add_argument("--base-date", required=True, help="基準日 YYYY-MM-DD")
    q.add_argument("--unit", required=True, choices=["person", "household"])
    q.add_argument("--amount", type=int, required=True, help="yen per unit")
    q.add_argument("--child-amount", type=int, help="yen per child (person: instead of --amount; household: added)")
    q.add_argument("--child-age-under", type=int)
    q.add_argument("--tax-condition", choices=["none", "exempt", "exempt_or_per_capita"])
    q.add_argument("--tax-fiscal-year", type=int)
    q.add_argument("--min-age", type=int)
    q.add_argument("--max-age", type=int)
    q.add_argument("--apply-from")
    q.add_argument("--apply-until")
    q.add_argument(
        "--mode", required=True, choices=["application", "letter", "push"], help="申請型 / 確認書型 / プッシュ型"
    )
    q.add_argument("--decline-deadline", help="辞退期限 (push)")
    q = psub.add_parser("list")
    q.add_argument("--municipality", required=True)
    q = psub.add_parser("eligibility", help="determine (or re-determine) entitlements")
    q.add_argument("--municipality", required=True)
    q.add_argument("--program", type=int, required=True)
    q.add_argument("--snapshot", type=int, help="residents snapshot (default: newest published)")
    q = psub.add_parser("scheme", help="say which national benefit a program is (cross-municipality duplicates)")
    q.add_argument("--municipality", required=True)
    q.add_argument("--program", type=int, required=True)
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--scheme", help="national scheme code, e.g. R6-TEIGAKU")
    g.add_argument("--clear", action="store_true", help="no national scheme (its hashes are removed)")
    p.set_defaults(func=cmd_programs)

    p = sub.add_parser("letters", help="確認書 / 支給のお知らせ: issue, export for printing, re-issue")
    lsub = p.add_subparsers(dest="action", required=True)
    q = lsub.add_parser("issue")
    q.add_argument("--municipality", required=True)
    q.add_argument("--program", type=int, required=True)
    q = lsub.add_parser("export", help="write the print vendor's CSV once; PINs are erased on export")
    q.add_argument("--municipality", required=True)
    q.add_argument("--program", type=int, required=True)
    q.add_argument("--out", required=True)
    q.add_argument("--encoding", choices=["utf-8", "cp932"], default="utf-8")
    q = lsub.add_parser("reissue", help="invalidate an entitlement's letter and issue a new one")
    q.add_argument("--municipality", required=True)
    q.add_argument("--entitlement", type=int, required=True)
    p.set_defaults(func=cmd_letters)

    p = sub.add_parser("push", help="プッシュ型: settle after the 辞退 deadline, or record a 辞退")
    xsub = p.add_subparsers(dest="action", required=True)
    q = xsub.add_parser("settle")
    q.add_argument("--municipality", required=True)
    q.add_argument("--program", type=int, required=True)
    q.add_argument("--today", type=_date, help=argparse_suppress())
    q = xsub.add_parser("decline")
    q.add_argument("--municipality", required=True)
    q.add_argument("--entitlement", type=int, required=True)
    q.add_argument("--today", type=_date, help=argparse_suppress())
    p.set_defaults(func=cmd_push)

    # Options of `kyufu demo registry` (the `demo` command itself is app/cli.py's).
    demo = sub.choices.get("demo")
    if demo is not None:
        demo.add_argument("--municipality", help="(demo registry) municipality the extract is for")
        demo.add_argument("--households", type=int, default=200, help="(demo registry) number of households")
        demo.add_argument(
            "--out", help="(demo registry) residents CSV; .tax.csv and .accounts.csv are written beside it"
        )
        demo.add_argument("--seed", type=int, default=1, help="(demo registry) random seed")
        demo.add_argument("--encoding", choices=["utf-8", "utf-8-sig", "cp932"], default="utf-8")


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS

"""Subcommands of this area (registered by app/cli.py): `kyufu payouts ...` and `kyufu bank ...`.

`kyufu payouts bench` and `kyufu bank simulate` are developer tools: their code is in devtools/, imported
inside the command only, so the service never loads it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.errors import UsageError


def register(sub) -> None:
    """Add this area's subcommands to the `kyufu` parser."""
    p = sub.add_parser("payouts", help="payout stage: benchmark, release, returns import")
    psub = p.add_subparsers(dest="payouts_command", required=True)

    b = psub.add_parser("bench", help="seed N approved payments in a scratch municipality; time floor vs stage")
    b.add_argument("--payments", type=int, default=1_000_000)
    b.add_argument("--inline", action="store_true", help="one process (no pool), for comparison")
    b.set_defaults(func=cmd_bench)

    r = psub.add_parser("release", help="release an approved batch (seal and write to the outbox)")
    r.add_argument("--municipality", required=True)
    r.add_argument("--batch", type=int, required=True)
    r.add_argument("--released-by", type=int, help="staff_id (default: the approver)")
    r.set_defaults(func=cmd_release)

    i = psub.add_parser(
        "import-returns", help="import a bank returns CSV (payouts/returns_csv.py) for a released batch"
    )
    i.add_argument("--municipality", required=True)
    i.add_argument("--batch", type=int, help="batch id (default: the one released batch the CSV's payments belong to)")
    i.add_argument("file", type=Path)
    i.set_defaults(func=cmd_import_returns)

    u = psub.add_parser(
        "upgrade-bank-layout",
        help="re-encrypt payments written before migration 0009 into one bank ciphertext (the stage needs it)",
    )
    u.add_argument("--municipality", required=True)
    u.set_defaults(func=cmd_upgrade_bank_layout)

    k = sub.add_parser("bank", help="the bank's side: verify | decrypt | inspect | keygen | simulate", add_help=False)
    k.add_argument("bank_args", nargs="...")
    k.set_defaults(func=cmd_bank)


def _usage(message: str) -> Exception:
    return UsageError(message)


def cmd_bench(args, settings) -> int:
    # A developer tool (devtools/payouts_bench.py), imported only when run.
    from devtools import payouts_bench

    if args.payments < 1:
        raise _usage("--payments は1以上で指定してください。")
    result = asyncio.run(payouts_bench.run(settings, args.payments, parallel=False if args.inline else None))
    for line in payouts_bench.report_lines(result):
        print(line)
    return 0


async def _with_pool(settings, fn):
    from app.db import create_app_pool

    pool = await create_app_pool(settings, min_size=1, max_size=2)
    try:
        return await fn(pool)
    finally:
        await pool.close()


def cmd_release(args, settings) -> int:
    from app.progress import progress_bar
    from payouts import release
    from payouts.pipeline import BatchNotFound
    from payouts.settings_store import BankSettingsMissing
    from payouts.zengin import ZenginFormatError

    try:
        # Records rendered into the sealed file (render_batch's progress callback), on a terminal only.
        with progress_bar("振込ファイルの作成（件）") as bar:
            manifest = asyncio.run(
                _with_pool(
                    settings,
                    lambda pool: release.release_batch(
                        pool, settings, args.municipality, args.batch, args.released_by, progress=bar
                    ),
                )
            )
    except (release.ReleaseError, BatchNotFound, BankSettingsMissing, ZenginFormatError) as exc:
        raise _usage(str(exc)) from None
    print(f"released batch {manifest.batch_id}: {manifest.record_count:,} records, {manifest.total_yen:,} yen")
    print(f"file {Path(settings.outbox_path) / args.municipality / manifest.file_name}.age (+ .manifest.json)")
    print(f"plaintext sha256 {manifest.plaintext_sha256}")
    return 0


def cmd_import_returns(args, settings) -> int:
    from payouts import reconcile

    try:
        outcome = asyncio.run(
            _with_pool(
                settings, lambda pool: reconcile.import_returns(pool, args.municipality, args.file, batch_id=args.batch)
            )
        )
    except reconcile.ReconcileError as exc:
        raise _usage(str(exc)) from None
    print(outcome.summary())
    return 0


def cmd_upgrade_bank_layout(args, settings) -> int:
    from app.tenancy.codes import MunicipalityCodeError, validate_code

    try:
        validate_code(args.municipality)
    except MunicipalityCodeError as exc:
        raise _usage(str(exc)) from None
    total = asyncio.run(_with_pool(settings, lambda pool: upgrade_bank_layout(pool, settings, args.municipality)))
    print(f"re-encrypted {total:,} payments of {args.municipality} into the bank_enc layout")
    return 0


async def upgrade_bank_layout(pool, settings, code: str) -> int:
    """Every legacy payment of `code`, 10,000 per transaction (each committed: a rerun picks up the rest)."""
    from app.tenancy.municipalities import load_field_cipher
    from app.tenancy.transaction import tenant_transaction
    from payouts import payments

    total = 0
    while True:
        async with tenant_transaction(pool, code) as conn:
            cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
            n = await payments.upgrade_bank_layout(conn, cipher, code)
        total += n
        if n == 0:
            return total


def cmd_bank(args, settings) -> int:
    return run_bank(list(args.bank_args))


def run_bank(argv: list[str]) -> int:
    """`kyufu bank ...`: the bank simulator (a developer tool) or the bank's tool."""
    if argv[:1] == ["simulate"]:
        # The bank simulator is a developer tool (devtools/banksim.py), imported only when run.
        from devtools import banksim

        return banksim.main(argv[1:])
    from payouts import bank

    return bank.main(argv)

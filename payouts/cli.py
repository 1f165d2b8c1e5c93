"""Subcommands of this area (registered by app/cli.py): `kyufu payouts ...` and `kyufu bank ...`."""

from __future__ import annotations

import asyncio
import sys
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

    i = psub.add_parser("import-returns", help="import a bank returns CSV (banksim format) for a released batch")
    i.add_argument("--municipality", required=True)
    i.add_argument("--batch", type=int, help="batch id (default: the one released batch the CSV's payments belong to)")
    i.add_argument("file", type=Path)
    i.set_defaults(func=cmd_import_returns)

    k = sub.add_parser("bank", help="the bank's side: verify | decrypt | inspect | keygen | simulate", add_help=False)
    k.add_argument("bank_args", nargs="...")
    k.set_defaults(func=cmd_bank)


def _usage(message: str) -> Exception:
    return UsageError(message)


def cmd_bench(args, settings) -> int:
    from payouts import bench

    if args.payments < 1:
        raise _usage("--payments は1以上で指定してください。")
    result = asyncio.run(bench.run(settings, args.payments, parallel=False if args.inline else None))
    for key in ("municipality", "batches", "render", "seed_s", "floor_before_s", "floor_after_s", "mark_s",
                "ciphertext_mb", "main_peak_rss_mb", "worker_peak_rss_mb", "floor_cpu_postgres_s",
                "stage_cpu_main_s", "stage_cpu_workers_s", "stage_cpu_postgres_s", "loadavg_before", "loadavg_after"):
        value = result[key]
        if isinstance(value, float):
            value = f"{value:.3f}"
        elif isinstance(value, list):
            value = ",".join(f"{v:.0f}" for v in value)
        print(f"{key}={value}")
    print(bench.final_line(result))
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
            manifest = asyncio.run(_with_pool(settings, lambda pool: release.release_batch(
                pool, settings, args.municipality, args.batch, args.released_by, progress=bar)))
    except (release.ReleaseError, BatchNotFound, BankSettingsMissing, ZenginFormatError) as exc:
        raise _usage(str(exc)) from None
    print(f"released batch {manifest.batch_id}: {manifest.record_count:,} records, {manifest.total_yen:,} yen")
    print(f"file {Path(settings.outbox_path) / args.municipality / manifest.file_name}.age (+ .manifest.json)")
    print(f"plaintext sha256 {manifest.plaintext_sha256}")
    return 0


def cmd_import_returns(args, settings) -> int:
    from payouts import reconcile

    try:
        outcome = asyncio.run(_with_pool(settings, lambda pool: reconcile.import_returns(
            pool, args.municipality, args.file, batch_id=args.batch)))
    except reconcile.ReconcileError as exc:
        raise _usage(str(exc)) from None
    print(outcome.summary())
    return 0


def cmd_bank(args, settings) -> int:
    argv = list(args.bank_args)
    if argv[:1] == ["simulate"]:
        return simulate_main(argv[1:])
    from payouts import bank

    return bank.main(argv)


def simulate_main(argv: list[str]) -> int:
    """`kyufu bank simulate`: decrypt a sealed file with the bank's identity, "execute" it, write the
    returns CSV the municipality imports (payouts.banksim)."""
    import argparse
    import tempfile

    from payouts import bank, banksim

    parser = argparse.ArgumentParser(prog="kyufu bank simulate", description="銀行シミュレータ: 振込を実行し返却CSVを書く")
    parser.add_argument("age_file", type=Path)
    parser.add_argument("--identity", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="返却CSVの出力先")
    parser.add_argument("--share", type=float, default=0.02, help="返却（不能）にする割合 0..1")
    parser.add_argument("--seed", type=int, default=1)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with tempfile.TemporaryDirectory() as scratch:
            plain = bank.decrypt(args.age_file, args.identity, Path(scratch) / "plain.txt")
            rows = banksim.execute(plain.read_bytes(), return_share=args.share, seed=args.seed)
        banksim.write_returns_csv(rows, args.out)
    except bank.BankError as exc:
        print(f"エラー [{exc.reason_code}]: {exc.message}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"エラー: {exc}", file=sys.stderr)
        return 2
    print(f"OK: 返却 {len(rows)} 件を書きました: {args.out}")
    return 0

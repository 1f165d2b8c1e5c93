"""A bank simulator for tests and the demo: it "executes" a plaintext Zengin file and reports some
payments as returned (不能), in the returns CSV the reconciliation import reads (payouts/returns_csv.py).
`kyufu bank simulate` is `main` below.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
from pathlib import Path

from payouts import bank, zengin
from payouts.returns_csv import RETURN_REASONS, ReturnRow, write_returns_csv

# How often each reason is drawn: mostly closed or unknown accounts, as in practice.
_REASON_WEIGHTS = {"2": 5, "3": 1, "N": 3, "9": 1}


def execute(plaintext_bytes: bytes, *, return_share: float, seed: int) -> list[ReturnRow]:
    """Pick round(return_share × count) payments as returned, each with a reason.

    The same file, share and seed always give the same rows (in file order), so a test or a
    demo run can be replayed."""
    if not (isinstance(return_share, (int, float)) and 0.0 <= return_share <= 1.0):
        raise ValueError("return_share は 0 以上 1 以下で指定してください")
    payments = zengin.parse(plaintext_bytes).payments
    references = [p.reference for p in payments]
    if len(set(references)) != len(references):
        # A return must point at exactly one payment, or reconciliation would guess.
        raise ValueError("同じ顧客コード（支払参照番号）の明細が複数あり、返却先を特定できません")
    rng = random.Random(seed)
    returned = sorted(rng.sample(range(len(payments)), k=math.floor(return_share * len(payments) + 0.5)))
    codes = list(_REASON_WEIGHTS)
    weights = list(_REASON_WEIGHTS.values())
    rows = []
    for index in returned:
        code = rng.choices(codes, weights)[0]
        rows.append(ReturnRow(payments[index].reference, code, RETURN_REASONS[code]))
    return rows


def main(argv: list[str]) -> int:
    """`kyufu bank simulate`: decrypt a sealed file with the bank's identity, "execute" it, write the
    returns CSV the municipality imports."""
    parser = argparse.ArgumentParser(
        prog="kyufu bank simulate", description="銀行シミュレータ: 振込を実行し返却CSVを書く"
    )
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
            rows = execute(plain.read_bytes(), return_share=args.share, seed=args.seed)
        write_returns_csv(rows, args.out)
    except bank.BankError as exc:
        print(f"エラー [{exc.reason_code}]: {exc.message}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"エラー: {exc}", file=sys.stderr)
        return 2
    print(f"OK: 返却 {len(rows)} 件を書きました: {args.out}")
    return 0

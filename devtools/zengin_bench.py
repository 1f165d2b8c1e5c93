"""Micro-benchmark (not a test): format 1,000,000 validated payments with FileWriter.records.

    .venv/bin/python -m devtools.zengin_bench [--no-validate]

A file holds at most 999,999 data records (合計件数 N(6)), so the million is written as two
files of 500,000. Prints records/s for the data records only (chunks of 10,000); building the Payment objects
is upstream work and is not timed. The payout stage needs "well under a second per core"
for a million records (zengin.py module docstring).
"""

from __future__ import annotations

import datetime
import sys
import time

from payouts.zengin import BankSettings, FileWriter, Payment

N = 1_000_000
CHUNK = 10_000


def _payments(n: int) -> list[Payment]:
    names = ["ﾔﾏﾀﾞ ﾀﾛｳ", "ｻﾄｳ ﾊﾅｺ", "ｽｽﾞｷ ｲﾁﾛｳ", "(ｶ)ｷﾕｳﾌ", "ﾊﾟｸ ｼﾞﾕﾝﾎ"]
    return [
        Payment(
            reference=i + 1,
            bank_code="9900" if i % 7 == 0 else "0005",
            branch_code=f"{i % 1000:03d}",
            account_type=1 if i % 11 else 2,
            account_number=f"{i % 10_000_000:07d}",
            holder_kana=names[i % len(names)],
            amount_yen=100_000 + i % 50_000,
        )
        for i in range(n)
    ]


def main() -> None:
    validate = "--no-validate" not in sys.argv
    settings = BankSettings(
        requester_code="1234567890",
        requester_name_kana="ｷﾕｳﾌｼ",
        bank_code="0001",
        branch_code="001",
        account_type=1,
        account_number="1234567",
        separator="crlf",
    )
    payments = _payments(N)
    chunks = [payments[i : i + CHUNK] for i in range(0, N, CHUNK)]
    per_file = len(chunks) // 2
    writers = [FileWriter(settings, datetime.date(2026, 9, 1)) for _ in range(2)]
    for w in writers:
        w.header()
    size = 0
    start = time.perf_counter()
    for i, chunk in enumerate(chunks):
        size += len(writers[i // per_file].records(chunk, validate=validate))
    elapsed = time.perf_counter() - start
    for w in writers:
        w.finish()
    assert sum(w.count for w in writers) == N and size == N * 122
    print(f"{N:,} records, validate={validate}: {elapsed:.3f} s, {N / elapsed:,.0f} records/s")


if __name__ == "__main__":
    main()

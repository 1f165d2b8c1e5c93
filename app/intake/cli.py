"""Subcommands of this area (registered by app/cli.py): `kyufu intake purge-idempotency`,
`kyufu intake duplicates`."""

from __future__ import annotations

import asyncio

PURGE = """
DELETE FROM intake_idempotency_keys
WHERE municipality_code = $1 AND created_at < now() - make_interval(days => $2)
"""
DUPLICATES = """
SELECT d.entitlement_id, a.receipt_no, d.channel, count(*) AS attempts, max(d.attempted_at) AS last_at
FROM intake_duplicate_claims d JOIN applications a USING (municipality_code, application_id)
WHERE d.municipality_code = $1 GROUP BY 1, 2, 3 ORDER BY attempts DESC, last_at DESC LIMIT $2
"""
MIN_KEEP_DAYS = 7


def cmd_purge(args, settings) -> int:
    import sys

    from app.db import create_app_pool
    from app.tenancy.transaction import tenant_transaction

    if args.older_than_days < MIN_KEEP_DAYS:
        # Printed like app.cli's UsageError (`python -m app.cli` runs that module as __main__, so its
        # class cannot be imported here as the same object).
        print(f"kyufu: idempotency keys are kept at least {MIN_KEEP_DAYS} days", file=sys.stderr)
        return 2

    async def run() -> int:
        pool = await create_app_pool(settings, min_size=1, max_size=1)
        try:
            async with tenant_transaction(pool, args.municipality) as conn:
                status = await conn.execute(PURGE, args.municipality, args.older_than_days)
        finally:
            await pool.close()
        return int(status.split()[-1])

    print(f"deleted {asyncio.run(run())} idempotency keys older than {args.older_than_days} days")
    return 0


def cmd_duplicates(args, settings) -> int:
    from app.db import create_app_pool
    from app.tenancy.transaction import tenant_transaction

    async def run():
        pool = await create_app_pool(settings, min_size=1, max_size=1)
        try:
            async with tenant_transaction(pool, args.municipality, readonly=True) as conn:
                return await conn.fetch(DUPLICATES, args.municipality, args.limit)
        finally:
            await pool.close()

    print("entitlement\treceipt\tchannel\tattempts\tlast")
    for r in asyncio.run(run()):
        print(
            f"{r['entitlement_id']}\t{r['receipt_no']}\t{r['channel']}\t{r['attempts']}\t{r['last_at']:%Y-%m-%d %H:%M}"
        )
    return 0


def register(sub) -> None:
    """Add this area's subcommands to the `kyufu` parser."""
    p = sub.add_parser("intake", help="resident intake: idempotency keys, duplicate claims")
    isub = p.add_subparsers(dest="action", required=True)
    purge = isub.add_parser("purge-idempotency", help="delete API idempotency keys older than N days (N >= 7)")
    purge.add_argument("municipality")
    purge.add_argument("--older-than-days", type=int, default=8)
    purge.set_defaults(func=cmd_purge)
    dup = isub.add_parser("duplicates", help="second claims on entitlements that already had an application")
    dup.add_argument("municipality")
    dup.add_argument("--limit", type=int, default=50)
    dup.set_defaults(func=cmd_duplicates)

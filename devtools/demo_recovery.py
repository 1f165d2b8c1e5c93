"""A 返還 case for the demo: an open debt with a notice sent and a partial repayment, on a payment that was
paid, made through the console's own functions (payouts/recovery.py). It needs a released and reconciled
batch, which `kyufu demo seed` does not make and `kyufu demo e2e` does; so it is a separate step, called
after the chain (e.g. at the end of devtools/e2e.py `run_e2e`, with its drafter and reviewer)."""

from __future__ import annotations

from app.principals import Staff
from app.tenancy.transaction import tenant_transaction
from payouts import recovery
from payouts.bankdays import today_jst

# The lowest-numbered paid payment that has no recovery case yet.
CANDIDATE = """
SELECT p.payment_id, p.amount_yen FROM payments p
WHERE p.municipality_code = $1 AND p.status = 'paid'
  AND NOT EXISTS (SELECT 1 FROM payment_debts d WHERE d.municipality_code = p.municipality_code
                  AND d.payment_id = p.payment_id)
  AND NOT EXISTS (SELECT 1 FROM payment_recalls r WHERE r.municipality_code = p.municipality_code
                  AND r.payment_id = p.payment_id)
ORDER BY p.payment_id LIMIT 1
"""


async def seed_recovery_case(pool, code: str, drafter: Staff, reviewer: Staff) -> str | None:
    """Open a debt for a paid payment's whole amount, record a 返還請求書 sent today and a repayment of
    about a third of it; return a printable line, or None when the municipality has no paid payment."""
    async with tenant_transaction(pool, code) as conn:
        row = await conn.fetchrow(CANDIDATE, code)
        if row is None:
            return None
        payment_id, amount = row["payment_id"], row["amount_yen"]
        today = today_jst()
        await recovery.open_debt(conn, code, drafter, payment_id, amount, "デモ: 基準日前に転出していた世帯への支払")
        await recovery.record_notice(conn, code, reviewer, payment_id, "demand", today, "デモ: 返還請求書を郵送")
        repaid = max(1, amount // 3)
        balance = await recovery.record_repayment(conn, code, reviewer, payment_id, repaid, today, "デモ: 一部返還")
    return (
        f"返還 case: payment {payment_id}, claimed {amount:,} yen, repaid {repaid:,}, outstanding {balance:,} "
        f"(/staff/payments/{payment_id}/recovery)"
    )

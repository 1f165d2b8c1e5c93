"""振込指定日 rules: weekends, 祝日 and 12/31-1/3 are not bank business days; the lead time counts business days."""

import datetime as dt

import pytest

from payouts.bankdays import business_days_after, earliest_transfer_date, is_bank_business_day, transfer_date_problem


@pytest.mark.parametrize(
    "day,ok",
    [
        ("2026-03-02", True),  # Monday
        ("2026-03-07", False),  # Saturday
        ("2026-03-08", False),  # Sunday
        ("2026-03-20", False),  # 春分の日
        ("2026-05-04", False),  # みどりの日
        ("2026-05-06", False),  # 振替休日
        ("2025-12-31", False),  # 銀行休業日, not a public holiday
        ("2026-01-02", False),
        ("2026-01-05", True),
    ],
)
def test_bank_business_days(day, ok):
    assert is_bank_business_day(dt.date.fromisoformat(day)) is ok


def test_lead_time_counts_business_days_only():
    friday = dt.date(2026, 3, 6)
    assert business_days_after(friday, dt.date(2026, 3, 10)) == 2  # Mon, Tue
    assert earliest_transfer_date(friday, 2) == dt.date(2026, 3, 10)
    assert transfer_date_problem(dt.date(2026, 3, 9), friday, 2) and "2026-03-10" in transfer_date_problem(
        dt.date(2026, 3, 9), friday, 2
    )
    assert transfer_date_problem(dt.date(2026, 3, 10), friday, 2) is None
    assert "銀行営業日" in transfer_date_problem(dt.date(2026, 3, 14), friday, 2)
    # Over the year end: 12/29 (Tue) + 2 business days skips 12/31-1/3.
    assert earliest_transfer_date(dt.date(2026, 12, 29), 2) == dt.date(2027, 1, 4)

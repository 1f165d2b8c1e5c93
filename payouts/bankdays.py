"""Bank business days for 振込指定日: no weekends, no Japanese public holidays, no 12/31-1/3."""

from __future__ import annotations

import datetime as dt

import jpholiday

JST = dt.timezone(dt.timedelta(hours=9), "JST")


def today_jst() -> dt.date:
    return dt.datetime.now(JST).date()


def is_bank_business_day(day: dt.date) -> bool:
    if day.weekday() >= 5:
        return False
    # 銀行の年末年始休業 (12/31-1/3) is not a public holiday, so jpholiday does not know it.
    if (day.month, day.day) in ((12, 31), (1, 1), (1, 2), (1, 3)):
        return False
    return not jpholiday.is_holiday(day)


def business_days_after(today: dt.date, day: dt.date) -> int:
    """How many bank business days lie in (today, day]: 1 means `day` is the next business day."""
    count, cursor = 0, today
    while cursor < day:
        cursor += dt.timedelta(days=1)
        if is_bank_business_day(cursor):
            count += 1
    return count


def earliest_transfer_date(today: dt.date, lead_days: int) -> dt.date:
    """The first date that is a business day at least `lead_days` business days after today."""
    cursor, count = today, 0
    while count < lead_days:
        cursor += dt.timedelta(days=1)
        if is_bank_business_day(cursor):
            count += 1
    return cursor


def transfer_date_problem(day: dt.date, today: dt.date, lead_days: int) -> str | None:
    """A Japanese explanation of why `day` cannot be the 振込指定日, or None if it can."""
    if not is_bank_business_day(day):
        return "振込指定日は銀行営業日を指定してください（土日・祝日・12月31日〜1月3日は指定できません）。"
    if business_days_after(today, day) < lead_days:
        earliest = earliest_transfer_date(today, lead_days)
        return f"振込指定日は本日から{lead_days}営業日以上先を指定してください（最短 {earliest.isoformat()}）。"
    return None

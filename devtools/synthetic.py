"""Synthetic 住民基本台帳 extracts for tests, demos and load tests (no real person's data).

Households of 1-7 people with plausible ages and 続柄, names and full-width kana from faker's ja_JP
name tables, a few residents moved in recently or removed (転出 / 死亡), a few 世帯分離 after the usual
基準日, a matching tax file (about a quarter of households 非課税) and registered accounts for some heads.
Deterministic for a given seed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from collections.abc import Callable
from dataclasses import dataclass

from faker.providers.address.ja_JP import Provider as AddressProvider
from faker.providers.person.ja_JP import Provider as PersonProvider

from app.registry.imports import ACCOUNT_COLUMNS, RESIDENT_COLUMNS, TAX_COLUMNS

_SIZES = [1, 2, 3, 4, 5, 6, 7]
_SIZE_WEIGHTS = [38, 28, 16, 12, 4, 1.5, 0.5]
# (kanji, katakana, romaji) triples.
_FAMILY = list(PersonProvider.last_name_pairs)
_MALE = list(PersonProvider.first_name_male_pairs)
_FEMALE = list(PersonProvider.first_name_female_pairs)


@dataclass(frozen=True)
class SyntheticFiles:
    residents_csv: bytes
    tax_csv: bytes
    accounts_csv: bytes
    households: int
    residents: int


def _day(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange(max(1, (end - start).days)))


def generate(
    households: int,
    *,
    seed: int = 1,
    as_of: dt.date = dt.date(2026, 6, 1),
    encoding: str = "utf-8",
    account_share: float = 0.6,
    progress: Callable[..., None] | None = None,
) -> SyntheticFiles:
    """Build the three CSV files in memory (a million residents is ~150 MB); `progress(done, total)` hears
    of the households written (app/progress.py)."""
    rng = random.Random(seed)
    towns = list(AddressProvider.towns)[:400]
    sizes = rng.choices(_SIZES, _SIZE_WEIGHTS, k=households)
    total = sum(sizes)
    codes = rng.sample(range(10**10, 10**11), total)
    res_out, tax_out, acc_out = io.StringIO(), io.StringIO(), io.StringIO()
    res, tax, acc = (
        csv.writer(res_out, lineterminator="\r\n"),
        csv.writer(tax_out, lineterminator="\r\n"),
        csv.writer(acc_out, lineterminator="\r\n"),
    )
    res.writerow([c.header for c in RESIDENT_COLUMNS])
    tax.writerow([c.header for c in TAX_COLUMNS])
    acc.writerow([c.header for c in ACCOUNT_COLUMNS])
    year = as_of.year
    n = 0
    for h, size in enumerate(sizes):
        if progress is not None and h % 10_000 == 0:
            progress(h, households)
        household_no = f"{h + 1:010d}"
        family, family_kana, _ = _FAMILY[rng.randrange(len(_FAMILY))]
        address = f"{towns[h % len(towns)]}{rng.randint(1, 5)}丁目{rng.randint(1, 30)}番{rng.randint(1, 20)}号"
        head_age = rng.randint(20, 95) if size == 1 else rng.randint(28, 80)
        members = [("世帯主", head_age, rng.choice("12"))]
        if size >= 2:
            members.append(
                (
                    "妻" if members[0][2] == "1" else "夫",
                    max(18, head_age + rng.randint(-5, 5)),
                    "2" if members[0][2] == "1" else "1",
                )
            )
        for _ in range(size - len(members)):
            if head_age > 60 and rng.random() < 0.3:
                members.append(("孫", rng.randint(0, 20), rng.choice("12")))
            else:
                members.append(("子", rng.randint(0, max(0, min(head_age - 18, 40))), rng.choice("12")))
        household_moved_in = _day(rng, dt.date(year - 40, 1, 1), dt.date(year - 1, 1, 1))
        split = size >= 3 and rng.random() < 0.01
        for i, (relationship, age, sex) in enumerate(members):
            birth = _day(rng, dt.date(year - age - 1, as_of.month, 1), dt.date(year - age, as_of.month, 1))
            moved_in = max(household_moved_in, birth)
            removed, reason = "", ""
            roll = rng.random()
            if roll < 0.02:  # moved in this year: around the usual 基準日
                moved_in = max(birth, _day(rng, dt.date(year, 1, 1), as_of))
            elif roll < 0.035 and i > 0:  # removed: moved out or died
                removed_on = _day(rng, max(moved_in, dt.date(year - 2, 1, 1)) + dt.timedelta(days=1), as_of)
                removed, reason = removed_on.isoformat(), rng.choice(["転出", "転出", "死亡"])
            names = _MALE if sex == "1" else _FEMALE
            given, given_kana, _ = names[rng.randrange(len(names))]
            prev_hh, changed = "", ""
            row_household = household_no
            if split and i == len(members) - 1 and not removed and age >= 18:
                # 世帯分離 after the usual 基準日: the youngest member now heads a household of their own.
                row_household, prev_hh = f"9{h + 1:09d}", household_no
                changed = _day(rng, dt.date(year, 5, 1), as_of).isoformat()
                relationship = "世帯主"
            res.writerow(
                [
                    f"{codes[n]:011d}",
                    row_household,
                    relationship,
                    "1" if relationship == "世帯主" else "0",
                    family,
                    given,
                    family_kana,
                    given_kana,
                    birth.isoformat(),
                    sex,
                    address,
                    moved_in.isoformat(),
                    removed,
                    reason,
                    prev_hh,
                    changed,
                ]
            )
            if i == 0 and rng.random() < account_share:
                acc.writerow(
                    [
                        f"{codes[n]:011d}",
                        "0001",
                        f"{rng.randint(1, 999):03d}",
                        "1",
                        # Each person's own account, as in life: a bijection of the person's index onto
                        # 7 digits (2654435761 is coprime to 10**7), so no two households share one by
                        # chance (random numbers gave ~18 pairs at a million households, which a batch's
                        # one-account-one-payment guardrail rightly stops: migration 0018).
                        f"{(n * 2654435761 + 12345) % 10_000_000:07d}",
                        f"{family_kana} {given_kana}",
                    ]
                )
            n += 1
        roll = rng.random()
        tax.writerow([household_no, "", "非課税" if roll < 0.25 else ("均等割のみ" if roll < 0.3 else "課税")])
    if progress is not None:
        progress(households, households)
    enc = "utf-8-sig" if encoding == "utf-8-sig" else encoding
    return SyntheticFiles(
        res_out.getvalue().encode(enc),
        tax_out.getvalue().encode(enc),
        acc_out.getvalue().encode(enc),
        households,
        total,
    )

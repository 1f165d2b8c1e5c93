"""The account-holder check (payouts/holder.py): the vectors of tests/data/holder_vectors.tsv through the rule
and through the real verification, the family-member case, and プッシュ型 settlement, which now checks the
registered account's holder too."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from app.registry.eligibility import determine_eligibility
from app.registry.imports import ACCOUNT_COLUMNS, import_accounts, import_residents
from app.registry.letters import export_letters, issue_letters
from app.registry.programs import create_program, parse_program
from app.registry.push import settle_push
from app.tenancy.transaction import tenant_transaction
from payouts.accounts import check_holder_kana
from payouts.holder import HOLDER_FLAGS, holder_key, holder_matches, name_key, registry_key
from tests.registry.helpers import create_application, person, residents_csv, simple_csv
from workers.verification import verify_applications_batch

VECTORS = Path(__file__).resolve().parent.parent / "data" / "holder_vectors.tsv"
OUTCOMES = {"verified", "kana_mismatch", "holder_is_member_not_applicant"}
RULES = {"same", "spaces", "wo", "long_vowel", "different"}


def _vectors() -> list[tuple[str, str, list[str], str, str]]:
    rows = []
    for line in VECTORS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        holder, registry, members, outcome, rule = line.split("\t")
        rows.append((holder, registry, [] if members == "-" else members.split(";"), outcome, rule))
    return rows


def test_the_vector_file_is_read_and_covers_every_outcome_and_rule():
    """The parametrised tests below cannot pass vacuously."""
    rows = _vectors()
    assert len(rows) >= 40
    assert {r[3] for r in rows} == OUTCOMES and {r[4] for r in rows} == RULES
    assert ("ﾔﾏﾀﾞ ﾊﾅｺ", "ヤマダ タロウ", ["ヤマダ ハナコ"], "holder_is_member_not_applicant", "different") in rows


@pytest.mark.parametrize(("holder", "registry", "members", "outcome", "rule"), _vectors(), ids=repr)
def test_vector_rule(holder, registry, members, outcome, rule):
    """The holder as intake stores it (Zengin kana) against the payee's registry kana."""
    match = holder_matches(check_holder_kana(holder), registry)
    assert (match.matched, match.rule) == (rule != "different", rule)
    # The key verification compares is the same rule.
    assert (holder_key(check_holder_kana(holder)) == registry_key(*registry.split(" ", 1))) == match.matched


async def test_the_vectors_through_verification(app_pool, settings, code, cipher):
    """Each vector is a household (the payee its head, the other members beside it); its application, with
    the vector's holder, is decided by the verification job, as every online or paper application is."""
    vectors = _vectors()
    rows = []
    for i, (_, registry, members, _, _) in enumerate(vectors):
        family, given_ = registry.split(" ", 1)
        rows.append(person(household_no=f"V{i}", family_kana=family, given_kana=given_))
        for m in members:
            family, given_ = m.split(" ", 1)
            rows.append(person(household_no=f"V{i}", relationship="子", family_kana=family, given_kana=given_))
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv(rows))
        program_id = await create_program(
            conn,
            code,
            parse_program(
                dict(
                    name="名義確認",
                    base_date=dt.date(2026, 4, 1),
                    unit="household",
                    amount_yen=10000,
                    payment_mode="application",
                )
            ),
        )
        await determine_eligibility(conn, code, program_id)
        ents = {r["household_no"]: r["entitlement_id"] for r in await conn.fetch("SELECT * FROM entitlements")}
        ids = [
            await create_application(
                conn, cipher, code, ents[f"V{i}"], check_holder_kana(v[0]), account_number=f"{i + 1:07d}"
            )
            for i, v in enumerate(vectors)
        ]
    assert await verify_applications_batch({"pool": app_pool, "settings": settings}, code, ids) == len(ids)
    async with tenant_transaction(app_pool, code) as conn:
        got = {
            r["application_id"]: (r["status"], list(r["reason_codes"]))
            for r in await conn.fetch("SELECT application_id, status, reason_codes FROM applications")
        }
    expected = {
        app_id: ("verified", []) if v[3] == "verified" else ("needs_review", [v[3]]) for app_id, v in zip(ids, vectors)
    }
    wrong = {vectors[ids.index(a)][:2]: got[a] for a in ids if got[a] != expected[a]}
    assert wrong == {}


def test_an_unwritable_name_matches_nothing():
    assert holder_matches("ﾔﾏﾀﾞ ﾀﾛｳ", "山田 太郎").rule == "registry_unwritable"
    assert holder_matches("山田 太郎", "ヤマダ タロウ").rule == "holder_unwritable"
    assert registry_key("山田", "太郎") is None and holder_key("") is None


_KANA = st.text(alphabet="ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝﾞﾟ -ｦ", min_size=1, max_size=12)


@hsettings(max_examples=300, deadline=None)
@given(_KANA, _KANA)
def test_holder_matches_agrees_with_the_key(a, b):
    """Verification compares keys; holder_matches explains a comparison: the two never disagree."""
    ka, kb = holder_key(a), holder_key(b)
    if ka is None or kb is None:
        assert not holder_matches(a, b).matched
    else:
        assert holder_matches(a, b).matched == (ka == kb)


@pytest.mark.parametrize(("a", "b"), [("ﾀﾞ", "ﾀ"), ("ﾊﾟ", "ﾊ"), ("ﾊﾟ", "ﾊﾞ"), ("ｳﾞｱ", "ﾌﾞｱ"), ("ｵﾉ", "ｵｵﾉ")])
def test_voiced_marks_and_missing_long_vowels_are_never_tolerated(a, b):
    assert name_key(a) != name_key(b)


async def test_the_database_knows_the_same_holder_flags(app_pool, code):
    """The approval page's counts (migration 0020) and verification name the same reason codes."""
    async with tenant_transaction(app_pool, code) as conn:
        assert await conn.fetchval("SELECT kyufu_holder_flags()") == list(HOLDER_FLAGS)


DEADLINE = dt.date(2026, 5, 31)


async def test_push_settlement_checks_the_registered_accounts_holder(app_pool, code, cipher):
    """プッシュ型 pays the head's registered (公金受取口座-style) account without an application from the
    resident: the account's holder is compared with the head like any other. The 2023 review found
    registered accounts in a family member's name and in a stranger's."""
    heads = [person(household_no=h, given_kana=f"{n}") for h, n in (("A", "タロウ"), ("B", "ユウコ"), ("C", "ジロウ"))]
    wife = person(household_no="A", relationship="妻", given_kana="ハナコ")
    holders = {"A": "ﾔﾏﾀﾞ ﾊﾅｺ", "B": "ﾔﾏﾀﾞ ﾕ-ｺ", "C": "ｽｽﾞｷ ｲﾁﾛｳ"}
    accounts = [
        [h["resident_code"], "0005", "123", "1", f"000000{i}", holders[h["household_no"]]] for i, h in enumerate(heads)
    ]
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv([*heads, wife]))
        await import_accounts(conn, cipher, code, simple_csv([col.header for col in ACCOUNT_COLUMNS], accounts))
        program_id = await create_program(
            conn,
            code,
            parse_program(
                dict(
                    name="プッシュ",
                    base_date=dt.date(2026, 4, 1),
                    unit="household",
                    amount_yen=50000,
                    payment_mode="push",
                    decline_deadline=DEADLINE,
                )
            ),
        )
        await determine_eligibility(conn, code, program_id)
        await issue_letters(conn, cipher, code, program_id, "test")
        await export_letters(conn, cipher, code, program_id, "test")
        assert await settle_push(conn, cipher, code, program_id, today=DEADLINE + dt.timedelta(days=1)) == 3
        got = {
            r["household_no"]: (r["status"], list(r["reason_codes"]))
            for r in await conn.fetch(
                "SELECT e.household_no, a.status, a.reason_codes FROM applications a"
                " JOIN entitlements e USING (municipality_code, entitlement_id)"
            )
        }
        event = await conn.fetchval("SELECT details FROM audit_log WHERE action = 'push.settle'")
    assert got == {
        "A": ("needs_review", ["holder_is_member_not_applicant"]),  # the wife's account
        "B": ("verified", []),  # ユウコ written ﾕ-ｺ: the same name
        "C": ("needs_review", ["kana_mismatch"]),  # nobody in the household
    }
    assert json.loads(event)["needs_review"] == 2

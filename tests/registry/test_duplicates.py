"""Cross-municipality duplicates (app/registry/duplicates.py, migration 0021): keyed hashes only, one case per
pair seen by each side as its own, payment held until both sides answer, key rotation, tenant isolation."""

from __future__ import annotations

import datetime as dt
import os
import secrets

import asyncpg
import pytest

from app.errors import Conflict, InvalidInput, NotFound
from app.registry import duplicates
from app.registry.eligibility import determine_eligibility
from app.registry.imports import import_residents
from app.registry.programs import create_program, parse_program
from app.tenancy.municipalities import add_municipality, load_field_cipher
from app.tenancy.transaction import platform_transaction, tenant_transaction
from payouts.payments import ELIGIBLE, create_payments_for_program, eligible_totals, insert_payment
from tests.conftest import next_municipality_code, run_cli
from tests.registry.helpers import create_application, person, residents_csv

D = dt.date(2026, 4, 1)


def new_scheme() -> str:
    return f"T-{secrets.token_hex(4).upper()}"


def shared_person(**overrides) -> dict:
    """Someone both registries list: moved in here a week before 基準日, still listed where they came from."""
    return person(
        family_kana="サトウ",
        given_kana="ハナコ",
        family_name="佐藤",
        given_name="花子",
        birth_date="1975-07-07",
        **overrides,
    )


async def municipality_with(db, code: str, rows: list[dict], scheme: str | None) -> int:
    """Import `rows`, define a per-person program of `scheme`, determine eligibility; returns the program."""
    async with tenant_transaction(db, code) as conn:
        await import_residents(conn, code, residents_csv(rows))
        program_id = await create_program(
            conn,
            code,
            parse_program(dict(name="定額給付金", base_date=D, unit="person", amount_yen=10000, payment_mode="letter")),
        )
        if scheme is not None:
            await duplicates.set_scheme(conn, code, program_id, scheme)
        await determine_eligibility(conn, code, program_id)
    return program_id


async def contribute(db, key: bytes, code: str, program_id: int) -> duplicates.Contribution:
    async with tenant_transaction(db, code) as conn:
        return await duplicates.contribute(conn, key, code, program_id)


async def side(db, code: str) -> list[asyncpg.Record]:
    async with tenant_transaction(db, code, readonly=True) as conn:
        return await conn.fetch("SELECT * FROM duplicate_cases ORDER BY reference")


async def entitlement_of(db, code: str, resident_code: str) -> int:
    async with tenant_transaction(db, code, readonly=True) as conn:
        return await conn.fetchval(
            "SELECT entitlement_id FROM entitlements WHERE head_resident_code = $1", resident_code
        )


async def reviewer(db, settings, code: str):
    """A reviewer of `code` (an answer names a staff member of its side)."""
    from tests.staff.conftest import ready_staff

    async with tenant_transaction(db, code) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        staff, _ = await ready_staff(conn, cipher, code, "rev", ["reviewer"])
    return staff


# ---- the hashes --------------------------------------------------------------------------------------


def test_hashes_are_keyed_per_scheme_and_names_are_normalised():
    key, other = os.urandom(32), os.urandom(32)
    born = dt.date(1975, 7, 7)
    mine = dict(duplicates.person_digests(key, "R6-TEIGAKU", "12345678901", "サトウ", "ハナコ", born))
    assert set(mine) == {"resident_code", "name_birth"} and all(len(d) == 32 for d in mine.values())
    # Another key or another scheme: unrelated hashes, so neither a leaked table nor another scheme links them.
    assert dict(duplicates.person_digests(other, "R6-TEIGAKU", "12345678901", "サトウ", "ハナコ", born)) != mine
    elsewhere = dict(duplicates.person_digests(key, "R7-KODOMO", "12345678901", "サトウ", "ハナコ", born))
    assert not set(elsewhere.values()) & set(mine.values())
    # One name written several ways is one name; another birth date is another person.
    for family, given in (("ｻﾄｳ", "ﾊﾅｺ"), ("さとう", "はなこ"), ("サトウ　", " ハナコ"), ("サ・トウ", "ハナコ")):
        assert (
            dict(duplicates.person_digests(key, "R6-TEIGAKU", "0", family, given, born))["name_birth"]
            == (mine["name_birth"])
        )
    assert duplicates.normalise_kana("キッカワ", "ヂュン") == duplicates.normalise_kana("キツカワ", "ジユン")
    later = dict(duplicates.person_digests(key, "R6-TEIGAKU", "0", "サトウ", "ハナコ", dt.date(1975, 7, 8)))
    assert later["name_birth"] != mine["name_birth"]
    assert duplicates.key_id(key) != duplicates.key_id(other) and len(duplicates.key_id(key)) == 16


# ---- matching and the cases --------------------------------------------------------------------------


async def test_a_person_in_two_municipalities_opens_one_case_that_each_side_sees_as_its_own(
    app_pool, municipality, settings
):
    key = settings.duplicate_key_bytes
    scheme = new_scheme()
    a, b, c = await municipality("甲市"), await municipality("乙町"), await municipality("丙村")
    moved = shared_person()
    renamed = person(family_kana="スズキ", given_kana="イチロウ", birth_date="1960-01-02")
    pa = await municipality_with(app_pool, a, [moved, renamed, person(birth_date="1990-01-01")], scheme)
    # b's registry gave the second person a new 住民票コード: only name + birth date link them.
    pb = await municipality_with(
        app_pool,
        b,
        [
            dict(moved, household_no="B1", moved_in_on="2026-03-25"),
            dict(renamed, resident_code="99999999999", household_no="B2"),
            person(birth_date="1991-02-02"),
        ],
        scheme,
    )
    # c lists the same person under another national benefit: never compared.
    pc = await municipality_with(app_pool, c, [dict(moved, household_no="C1")], new_scheme())

    first = await contribute(app_pool, key, a, pa)
    assert (first.people, first.stored, first.matched, first.opened) == (3, 6, 0, 0)
    second = await contribute(app_pool, key, b, pb)
    assert (second.matched, second.opened) == (2, 2)
    assert (await contribute(app_pool, key, c, pc)).matched == 0

    seen_a, seen_b = await side(app_pool, a), await side(app_pool, b)
    assert len(seen_a) == len(seen_b) == 2
    assert {r["reference"] for r in seen_a} == {r["reference"] for r in seen_b}
    by_other = {r["entitlement_id"]: r for r in seen_a}
    assert {r["other_municipality_code"] for r in seen_a} == {b}
    assert by_other[await entitlement_of(app_pool, a, moved["resident_code"])]["matched_on"] == [
        "name_birth",
        "resident_code",
    ]
    assert by_other[await entitlement_of(app_pool, a, renamed["resident_code"])]["matched_on"] == ["name_birth"]
    assert all(r["municipality_code"] == b and r["other_municipality_code"] == a for r in seen_b)
    assert {r["entitlement_id"] for r in seen_b} == {
        await entitlement_of(app_pool, b, moved["resident_code"]),
        await entitlement_of(app_pool, b, "99999999999"),
    }
    assert await side(app_pool, c) == []

    # Contributing again (a later eligibility run) finds the same pairs and opens nothing new.
    again = await contribute(app_pool, key, a, pa)
    assert (again.matched, again.opened) == (2, 0)
    assert len(await side(app_pool, a)) == 2

    # A program whose scheme is cleared takes its hashes out: nothing more matches it.
    async with tenant_transaction(app_pool, b) as conn:
        await duplicates.set_scheme(conn, b, pb, None)
        cleared = await duplicates.contribute(conn, key, b, pb)
    assert (cleared.scheme, cleared.stored) == (None, 0)
    assert (await contribute(app_pool, key, a, pa)).matched == 0
    assert len(await side(app_pool, a)) == 2  # the cases found stay


async def test_the_app_role_sees_only_its_own_side_and_never_a_hash(app_pool, municipality, settings):
    """Tenant isolation of the cases: A sees A's sides only (not B's entitlement, answer or comment), no
    transaction sees the platform tables, an unscoped one sees no case, and A can answer and contribute
    only as A."""
    key = settings.duplicate_key_bytes
    scheme = new_scheme()
    a, b = await municipality("甲市"), await municipality("乙町")
    moved = shared_person()
    pa = await municipality_with(app_pool, a, [moved], scheme)
    pb = await municipality_with(app_pool, b, [dict(moved, household_no="B1")], scheme)
    await contribute(app_pool, key, a, pa)
    await contribute(app_pool, key, b, pb)
    [case] = await side(app_pool, a)
    b_staff = await reviewer(app_pool, settings, b)
    async with tenant_transaction(app_pool, b) as conn:
        await duplicates.resolve(conn, b, b_staff, case["reference"], "not_pay", "乙町の秘密のメモ")

    async with tenant_transaction(app_pool, a) as conn:
        rows = await conn.fetch("SELECT * FROM duplicate_cases")
        assert [r["municipality_code"] for r in rows] == [a]
        assert rows[0]["entitlement_id"] == await conn.fetchval("SELECT entitlement_id FROM entitlements")
        assert rows[0]["other_answered"] and rows[0]["resolution"] is None and rows[0]["comment"] is None
        assert "乙町の秘密のメモ" not in repr(rows)
        assert await conn.fetchval("SELECT count(*) FROM duplicate_cases WHERE municipality_code = $1", b) == 0
        assert await conn.fetchval("SELECT count(*) FROM duplicate_holds WHERE municipality_code = $1", b) == 0
        for table in ("hashes", "cases", "case_sides", "keys"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():
                    await conn.fetch(f"SELECT * FROM duplicate_match.{table}")
        # B's program cannot be contributed to from A's scope.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.fetch(duplicates.CONTRIBUTE, duplicates.key_id(key), pb, [], [], [])
    async with platform_transaction(app_pool) as conn:
        assert await conn.fetchval("SELECT count(*) FROM duplicate_cases") == 0
        assert await conn.fetchval("SELECT count(*) FROM duplicate_holds") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval(duplicates.RESOLVE, case["reference"], "pay", "", 1)

    # A's answer is A's side only; B's answer is untouched.
    a_staff = await reviewer(app_pool, settings, a)
    async with tenant_transaction(app_pool, a) as conn:
        assert await duplicates.resolve(conn, a, a_staff, case["reference"], "pay", "") is True
    [b_side] = await side(app_pool, b)
    assert (b_side["resolution"], b_side["comment"], b_side["closed_at"] is not None) == (
        "not_pay",
        "乙町の秘密のメモ",
        True,
    )
    # A municipality without a side in the case does not find it.
    stranger = await municipality()
    async with tenant_transaction(app_pool, stranger) as conn:
        with pytest.raises(NotFound):
            await duplicates.resolve(conn, stranger, a_staff, case["reference"], "pay", "")


async def test_a_matched_entitlement_is_paid_only_after_both_sides_answer(app_pool, municipality, settings):
    key = settings.duplicate_key_bytes
    scheme = new_scheme()
    a, b = await municipality("甲市"), await municipality("乙町")
    moved, other = shared_person(), person()
    pa = await municipality_with(app_pool, a, [moved, other], scheme)
    pb = await municipality_with(app_pool, b, [dict(moved, household_no="B1")], scheme)
    held = await entitlement_of(app_pool, a, moved["resident_code"])
    free = await entitlement_of(app_pool, a, other["resident_code"])
    async with tenant_transaction(app_pool, a) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, a)
        app_held = await create_application(conn, cipher, a, held, "ｻﾄｳ ﾊﾅｺ", account_number="1111111")
        app_free = await create_application(conn, cipher, a, free, "ﾔﾏﾀﾞ ﾀﾛｳ", account_number="2222222")
        await conn.execute("UPDATE applications SET status = 'verified', decided_at = now()")
        # A payment made before the case opens (a returned payment's follow-up): it will not join a batch.
        early = await insert_payment(
            conn,
            cipher,
            a,
            entitlement_id=held,
            application_id=app_held,
            amount_yen=10000,
            bank_code="0001",
            branch_code="001",
            account_type=1,
            account_number="1111111",
            holder_kana="ｻﾄｳ ﾊﾅｺ",
        )
        await conn.execute("UPDATE payments SET status = 'cancelled' WHERE payment_id = $1", early)
    await contribute(app_pool, key, a, pa)
    await contribute(app_pool, key, b, pb)
    [case] = await side(app_pool, a)

    async def payable() -> set[int]:
        async with tenant_transaction(app_pool, a, readonly=True) as conn:
            return {r["application_id"] for r in await conn.fetch(ELIGIBLE, a, pa)}

    assert await payable() == {app_free}
    async with tenant_transaction(app_pool, a, readonly=True) as conn:
        assert (await eligible_totals(conn, a, pa))["count"] == 1  # what the draft page previews
    # The database refuses the payment whatever the code does.
    with pytest.raises(asyncpg.CheckViolationError, match="waits for a cross-municipality duplicate"):
        async with tenant_transaction(app_pool, a) as conn:
            await insert_payment(
                conn,
                cipher,
                a,
                entitlement_id=held,
                application_id=app_held,
                amount_yen=10000,
                bank_code="0001",
                branch_code="001",
                account_type=1,
                account_number="1111111",
                holder_kana="ｻﾄｳ ﾊﾅｺ",
            )

    a_staff, b_staff = await reviewer(app_pool, settings, a), await reviewer(app_pool, settings, b)
    async with tenant_transaction(app_pool, a) as conn:
        with pytest.raises(InvalidInput, match="理由"):
            await duplicates.resolve(conn, a, a_staff, case["reference"], "not_pay", " ")
        with pytest.raises(InvalidInput):
            await duplicates.resolve(conn, a, a_staff, case["reference"], "maybe", "")
        assert await duplicates.resolve(conn, a, a_staff, case["reference"].lower(), "pay", "乙町と電話で確認") is False
    assert await payable() == {app_free}  # one side's answer is not the resolution
    async with tenant_transaction(app_pool, b) as conn:
        assert await duplicates.resolve(conn, b, b_staff, case["reference"], "not_pay", "3/25 転出済み") is True
    with pytest.raises(Conflict):
        async with tenant_transaction(app_pool, a) as conn:
            await duplicates.resolve(conn, a, a_staff, case["reference"], "not_pay", "やはり")
    async with tenant_transaction(app_pool, a) as conn:
        audited = await conn.fetchval(
            "SELECT details FROM audit_log WHERE action = 'duplicate.resolve' AND object_id = $1", case["reference"]
        )
        assert "乙町と電話で確認" in audited

    assert await payable() == {app_held, app_free}
    async with tenant_transaction(app_pool, a) as conn:
        assert await create_payments_for_program(conn, cipher, a, pa) == 2
    # B answered 'not_pay': its entitlement stays out of every draft.
    async with tenant_transaction(app_pool, b, readonly=True) as conn:
        assert await conn.fetchval("SELECT count(*) FROM duplicate_holds") == 1


async def test_a_held_ready_payment_does_not_join_a_batch(app_pool, municipality, settings):
    """The preparation's freeze of ready payments leaves a held one out, and the database refuses it anyway."""
    from payouts.drafting import FREEZE_READY

    key = settings.duplicate_key_bytes
    scheme = new_scheme()
    a, b = await municipality(), await municipality()
    moved = shared_person()
    pa = await municipality_with(app_pool, a, [moved], scheme)
    pb = await municipality_with(app_pool, b, [dict(moved, household_no="B1")], scheme)
    held = await entitlement_of(app_pool, a, moved["resident_code"])
    async with tenant_transaction(app_pool, a) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, a)
        payment = await insert_payment(
            conn,
            cipher,
            a,
            entitlement_id=held,
            application_id=None,
            amount_yen=10000,
            bank_code="0001",
            branch_code="001",
            account_type=1,
            account_number="1111111",
            holder_kana="ｻﾄｳ ﾊﾅｺ",
        )
    drafter = (await reviewer(app_pool, settings, a)).staff_id  # any staff member of A drafts, for this test
    await contribute(app_pool, key, a, pa)
    await contribute(app_pool, key, b, pb)
    async with tenant_transaction(app_pool, a) as conn:
        batch = await conn.fetchval(
            "INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by, record_count,"
            " total_yen, status) VALUES ($1, $2, current_date + 7, $3, 0, 0, 'preparing') RETURNING batch_id",
            a,
            pa,
            drafter,
        )
        assert await conn.execute(FREEZE_READY, a, pa, batch, dt.datetime.now(dt.UTC)) == "UPDATE 0"
    with pytest.raises(asyncpg.CheckViolationError, match="waits for a cross-municipality duplicate"):
        async with tenant_transaction(app_pool, a) as conn:
            await conn.execute(
                "UPDATE payments SET status = 'in_batch', batch_id = $2 WHERE payment_id = $1", payment, batch
            )


# ---- the key -----------------------------------------------------------------------------------------


async def test_rotation_finds_the_matches_again_and_never_compares_two_keys(servers):
    """In a database of its own: rotation changes the platform's current key."""
    name = f"kyufu_dup_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(servers.admin_url)
    await admin.execute(f'CREATE DATABASE "{name}" OWNER kyufu_owner')
    try:
        from app.migrate import migrate

        url = servers.url_for(servers.owner_url, name)
        await migrate(url)
        owner = await asyncpg.connect(url)
        try:
            master, old, new = os.urandom(32), os.urandom(32), os.urandom(32)
            scheme = "R6-TEIGAKU"
            codes = [next_municipality_code() for _ in range(3)]
            for code in codes:
                await add_municipality(owner, master, code, f"市{code}")
            a, b, c = codes
            moved = shared_person()
            pa = await municipality_with(owner, a, [moved, person()], scheme)
            pb = await municipality_with(owner, b, [dict(moved, household_no="B1")], scheme)
            await municipality_with(owner, c, [dict(moved, household_no="C1")], scheme)
            await contribute(owner, old, a, pa)  # the first key seen becomes version 1
            assert (await contribute(owner, old, b, pb)).opened == 1
            [before] = await side(owner, a)

            assert await duplicates.rotate_key(owner, new) == 2
            assert await owner.fetchval("SELECT count(*) FROM duplicate_match.hashes") == 0
            # A process still holding the old key is refused: its hashes could never match the new ones.
            with pytest.raises(duplicates.DuplicateKeyNotCurrent):
                await contribute(owner, old, b, pb)
            # A, hashed again first, finds nothing: B's hashes under the old key are gone...
            assert (await contribute(owner, new, a, pa)).matched == 0
            # ...and even an old-version row with the very same bytes is never compared with a new one.
            async with tenant_transaction(owner, a):
                digest = await owner.fetchval(
                    "SELECT digest FROM duplicate_match.hashes WHERE kind = 'resident_code' AND municipality_code = $1"
                    " LIMIT 1",
                    a,
                )
            entitlement_b = await entitlement_of(owner, b, moved["resident_code"])
            await owner.execute(
                "INSERT INTO duplicate_match.hashes (key_version, scheme, kind, digest, municipality_code, program_id,"
                " entitlement_id) VALUES (1, $1, 'resident_code', $2, $3, $4, $5)",
                scheme,
                digest,
                b,
                pb,
                entitlement_b,
            )
            assert (await contribute(owner, new, a, pa)).matched == 0
            await owner.execute("DELETE FROM duplicate_match.hashes WHERE key_version = 1")

            done = await duplicates.rehash(owner, new, "test")  # in code order: a, b, c
            assert {code: [(r.matched, r.opened) for r in results] for code, results in done.items()} == {
                a: [(0, 0)],
                b: [(1, 0)],  # a and b found again under the new key: their case, not a new one
                c: [(2, 2)],  # the newcomer meets both
            }
            assert ((await contribute(owner, new, a, pa)).matched, (await contribute(owner, new, b, pb)).opened) == (
                2,
                0,
            )
            after = {r["reference"] for r in await side(owner, a)}
            assert before["reference"] in after and len(after) == 2
            assert await owner.fetchval("SELECT count(DISTINCT key_version) FROM duplicate_match.hashes") == 1

            with pytest.raises(duplicates.RegistryError, match="同じ"):
                await duplicates.rotate_key(owner, new)
            with pytest.raises(duplicates.RegistryError, match="以前に使われ"):
                await duplicates.rotate_key(owner, old)
        finally:
            await owner.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


# ---- the commands --------------------------------------------------------------------------------------


async def test_the_commands_set_the_scheme_and_contribute_after_eligibility(
    app_pool, municipality, settings, subprocess_env
):
    scheme = new_scheme()
    a, b = await municipality(), await municipality()
    moved = shared_person()
    pa = await municipality_with(app_pool, a, [moved], None)
    pb = await municipality_with(app_pool, b, [dict(moved, household_no="B1")], None)
    r = run_cli(
        subprocess_env, "programs", "scheme", "--municipality", a, "--program", str(pa), "--scheme", scheme.lower()
    )
    assert r.returncode == 0, r.stderr
    assert f"({scheme}): 2 hashes of 1 people contributed; 0 entitlement pairs" in r.stdout
    r = run_cli(subprocess_env, "programs", "scheme", "--municipality", b, "--program", str(pb), "--scheme", scheme)
    assert "1 entitlement pairs shared with other municipalities, 1 new cases" in r.stdout
    r = run_cli(subprocess_env, "programs", "eligibility", "--municipality", b, "--program", str(pb))
    assert r.returncode == 0, r.stderr
    assert "1 entitlement pairs shared with other municipalities, 0 new cases" in r.stdout
    r = run_cli(subprocess_env, "registry", "duplicates", "contribute", "--municipality", a)
    assert r.returncode == 0 and "0 new cases" in r.stdout, r.stderr
    r = run_cli(subprocess_env, "programs", "scheme", "--municipality", a, "--program", str(pa), "--scheme", "bad code")
    assert r.returncode == 2 and "全国事業コード" in r.stderr
    for out in (r.stdout, r.stderr):
        assert moved["resident_code"] not in out and "サトウ" not in out
    async with tenant_transaction(app_pool, a, readonly=True) as conn:
        events = await conn.fetch("SELECT action, details FROM audit_log WHERE action LIKE 'duplicates.%'")
    assert [e["action"] for e in events] == ["duplicates.contribute", "duplicates.contribute"]
    assert all(moved["resident_code"] not in e["details"] for e in events)


async def test_a_case_that_opens_after_drafting_stops_the_approval_and_the_release(app_pool, municipality, settings):
    """0023: the payment is already in the batch when the case opens; approval is refused (app and database)
    and an approved batch's release job seals nothing while the case waits."""
    from payouts import batches, guardrails
    from tests.staff.conftest import ready_staff

    key = settings.duplicate_key_bytes
    scheme = new_scheme()
    a, b = await municipality(), await municipality()
    first = shared_person()
    second = person(
        family_kana="スズキ", given_kana="タロウ", family_name="鈴木", given_name="太郎", birth_date="1970-01-02"
    )
    pa = await municipality_with(app_pool, a, [first, dict(second, household_no="A2")], scheme)
    pb = await municipality_with(app_pool, b, [dict(first, household_no="B1"), dict(second, household_no="B2")], scheme)
    async with tenant_transaction(app_pool, a) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, a)
        drafter, _ = await ready_staff(conn, cipher, a, "drafter", ["drafter"])
        approver, _ = await ready_staff(conn, cipher, a, "approver", ["approver"])
    batch_ids = []
    for who in (first, second):  # the first batch is approved before the case opens, the second is a draft
        entitlement = await entitlement_of(app_pool, a, who["resident_code"])
        async with tenant_transaction(app_pool, a) as conn:
            batch = await conn.fetchval(
                "INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by, record_count,"
                " total_yen, status) VALUES ($1, $2, current_date + 7, $3, 1, 10000, 'preparing') RETURNING batch_id",
                a,
                pa,
                drafter.staff_id,
            )
            payment = await insert_payment(
                conn,
                cipher,
                a,
                entitlement_id=entitlement,
                application_id=None,
                amount_yen=10000,
                bank_code="0001",
                branch_code="001",
                account_type=1,
                account_number=f"{len(batch_ids) + 1:07d}",
                holder_kana="ｻﾄｳ ﾊﾅｺ",
            )
            await conn.execute(
                "UPDATE payments SET status = 'in_batch', batch_id = $2 WHERE payment_id = $1", payment, batch
            )
            await conn.execute(
                "UPDATE payout_batches SET status = 'draft', plaintext_sha256 = $2 WHERE batch_id = $1", batch, "a" * 64
            )
            if not batch_ids:
                await conn.execute(batches.APPROVE, a, batch, approver.staff_id, "a" * 64)
                await conn.execute(
                    "UPDATE payout_batches SET release_attempt = 1, release_requested_at = now(),"
                    " release_requested_by = $2 WHERE batch_id = $1",
                    batch,
                    approver.staff_id,
                )
        batch_ids.append(batch)
    approved, drafted = batch_ids
    await contribute(app_pool, key, a, pa)
    await contribute(app_pool, key, b, pb)
    async with tenant_transaction(app_pool, a) as conn:
        reference = await guardrails.duplicate_hold(conn, a, drafted)
        assert reference and reference.startswith("D-")
        with pytest.raises(Conflict, match=reference):
            await batches.approve_batch(conn, settings, a, approver, drafted, "a" * 64)
    with pytest.raises(asyncpg.CheckViolationError, match="waiting for duplicate case"):
        async with tenant_transaction(app_pool, a) as conn:
            await conn.execute(batches.APPROVE, a, drafted, approver.staff_id, "a" * 64)
    assert await batches.perform_release(app_pool, settings, a, approved, 1) == "refused: duplicate case"
    async with tenant_transaction(app_pool, a, readonly=True) as conn:
        row = await conn.fetchrow("SELECT status, release_error FROM payout_batches WHERE batch_id = $1", approved)
    assert row["status"] == "approved" and "重複の疑い" in row["release_error"]

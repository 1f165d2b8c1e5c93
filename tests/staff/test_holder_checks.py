"""The account-holder check in the console: the approval page counts how the batch's payments went through it
(passed, reviewed, overridden and by whom; migration 0020, recorded when the preparation ends), and the review
screen puts the holder's kana beside the payee's registry kana."""

from __future__ import annotations

from app.staff import review
from app.tenancy.transaction import tenant_transaction
from payouts import batches, reconcile
from payouts.accounts import PayeeAccount
from payouts.payments import insert_payment
from tests.jobs import draft
from tests.staff.conftest import add_application, add_bank_settings, make_staff

SET_DECIDED_BY = "UPDATE applications SET decided_by = $2, decided_at = now() WHERE application_id = ANY($1::bigint[])"


async def _checked_world(make_world, app_pool):
    """Two verified applications, one approved for another reason, three approved despite a holder flag (two
    by rev, one by rev2) and one whose payment came back and was re-issued to an account staff typed."""
    world = await make_world(applications=0)
    code = world.code
    async with tenant_transaction(app_pool, code) as conn:
        await add_bank_settings(conn, code)
        await make_staff(conn, world, "rev2", ["reviewer"])
        for _ in range(2):
            await add_application(conn, world, status="verified", reasons=())
        not_head = await add_application(conn, world, status="approved", reasons=("not_head",))
        mismatches = [await add_application(conn, world, status="approved", reasons=("kana_mismatch",)) for _ in "ab"]
        member = await add_application(
            conn, world, status="approved", reasons=("not_head", "holder_is_member_not_applicant")
        )
        await conn.execute(SET_DECIDED_BY, [not_head, *mismatches], world.staff["rev"].staff_id)
        await conn.execute(SET_DECIDED_BY, [member], world.staff["rev2"].staff_id)
        # A payment that came back (振込不能) and was re-issued to a corrected account.
        returned_app = await add_application(conn, world, status="verified", reasons=())
        entitlement = await conn.fetchval(
            "SELECT entitlement_id FROM applications WHERE application_id = $1", returned_app
        )
        payment = await insert_payment(
            conn,
            world.cipher,
            code,
            entitlement_id=entitlement,
            application_id=returned_app,
            amount_yen=100_000,
            bank_code="0001",
            branch_code="001",
            account_type=1,
            account_number="1111111",
            holder_kana="ﾔﾏﾀﾞ ﾀﾛｳ",
        )
        await conn.execute("UPDATE payments SET status = 'returned' WHERE payment_id = $1", payment)
        await reconcile.mark_recontact(conn, code, world.staff["draft"], payment, "電話で確認")
        await reconcile.reissue(
            conn,
            world.cipher,
            code,
            world.staff["draft"],
            payment,
            PayeeAccount.parse("0001", "002", 1, "2222222", "ﾔﾏﾀﾞ ﾀﾛｳ"),
        )
    return world


async def test_the_approval_view_counts_how_the_payments_went_through_the_holder_check(
    make_world, app_pool, settings, transfer_date
):
    world = await _checked_world(make_world, app_pool)
    code = world.code
    batch_id = await draft(app_pool, world, transfer_date)
    async with tenant_transaction(app_pool, code) as conn:
        assert await conn.fetchval("SELECT status FROM payout_batches WHERE batch_id = $1", batch_id) == "draft"
        view = await batches.approval_view(conn, settings, world.cipher, code, world.staff["appr"], batch_id)
        checks = view["holder_checks"]
        assert checks == {
            "counts": {"passed": 2, "reviewed": 1, "overridden": 3, "reissued": 1, "unchecked": 0},
            "overridden_by_flag": [("kana_mismatch", 2), ("holder_is_member_not_applicant", 1)],
            "overridden_by": [("rev", 2), ("rev2", 1)],
        }
        assert sum(checks["counts"].values()) == view["batch"]["record_count"] == 7
        # Recorded once, when the preparation ended: the page reads the record, not the applications again.
        await conn.execute("UPDATE applications SET reason_codes = '{}'")
        again = await batches.approval_view(conn, settings, world.cipher, code, world.staff["appr"], batch_id)
        assert again["holder_checks"] == checks


async def test_the_approval_page_shows_the_holder_check_counts_and_who_overrode(
    make_world, app_pool, settings, transfer_date
):
    from starlette.testclient import TestClient

    from app.main import create_app
    from tests.hostile.helpers import staff_signed_in

    world = await _checked_world(make_world, app_pool)
    batch_id = await draft(app_pool, world, transfer_date)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        await staff_signed_in(client, app_pool, world.code, world.staff["appr"].staff_id)
        page = client.get(f"/staff/batches/{batch_id}")
    assert page.status_code == 200
    for fragment in (
        'id="holder-passed">2<',
        'id="holder-reviewed">1<',
        'id="holder-overridden">3<',
        'id="holder-reissued">1<',
        "口座名義と住民票のカナ氏名が一致しない 2件、口座名義が申請者以外の世帯員 1件",
        'id="holder-overridden-by">rev 2件、rev2 1件<',
    ):
        assert fragment in page.text, fragment
    assert 'id="holder-unchecked"' not in page.text


async def test_a_batch_without_a_record_says_so(make_world, app_pool, settings, transfer_date):
    world = await make_world(applications=1, status="approved")
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
    batch_id = await draft(app_pool, world, transfer_date)
    async with tenant_transaction(app_pool, world.code) as conn:
        await conn.execute("UPDATE payout_batches SET holder_checks = NULL WHERE batch_id = $1", batch_id)
        view = await batches.approval_view(conn, settings, world.cipher, world.code, world.staff["appr"], batch_id)
    assert view["holder_checks"] is None


async def test_the_review_screen_puts_the_holder_beside_the_payee_and_names_the_member(make_world, app_pool, settings):
    """The family-member case: the head's benefit into the wife's account. The reviewer sees the holder's kana,
    the payee's registry kana (and as a bank writes it), and which member the holder is."""
    from starlette.testclient import TestClient

    from app.main import create_app
    from tests.hostile.helpers import staff_signed_in

    world = await make_world(applications=0)
    code = world.code
    async with tenant_transaction(app_pool, code) as conn:
        app_id = await add_application(conn, world, holder="ﾔﾏﾀﾞ ﾊﾅｺ", reasons=("holder_is_member_not_applicant",))
        household = await conn.fetchval(
            "SELECT e.household_no FROM applications a JOIN entitlements e USING (municipality_code, entitlement_id)"
            " WHERE a.application_id = $1",
            app_id,
        )
        await conn.execute(
            "INSERT INTO residents (municipality_code, snapshot_id, resident_code, household_no, relationship,"
            " is_head, family_name, given_name, family_kana, given_kana, birth_date, sex, address)"
            " VALUES ($1, $2, '99999999999', $3, '妻', false, '山田', '花子', 'ヤマダ', 'ハナコ', '1982-02-02', '2',"
            " '東京都千代田区1-1')",
            code,
            world.snapshot_id,
            household,
        )
        view = await review.personal_view(conn, world.cipher, code, world.staff["rev"], app_id, "review")
    assert view["holder_kana"] == "ﾔﾏﾀﾞ ﾊﾅｺ"
    assert (view["payee"]["family_kana"], view["payee"]["given_kana"], view["payee"]["zengin_kana"]) == (
        "ヤマダ",
        "タロウ",
        "ﾔﾏﾀﾞ ﾀﾛｳ",
    )
    assert [(m["relationship"], m["is_payee"], m["holder_match"]) for m in view["household"]] == [
        ("世帯主", True, False),
        ("妻", False, True),
    ]
    with TestClient(create_app(settings), follow_redirects=False) as client:
        await staff_signed_in(client, app_pool, code, world.staff["rev"].staff_id)
        page = client.get(f"/staff/applications/{app_id}?purpose=review")
    assert page.status_code == 200
    assert '<dd id="holder-kana">ﾔﾏﾀﾞ ﾊﾅｺ</dd>' in page.text
    assert "ヤマダ タロウ（世帯主）<br>振込用のカナでは ﾔﾏﾀﾞ ﾀﾛｳ" in page.text
    assert "口座名義は受取人ではなく、世帯員（妻）の名前と一致します" in page.text

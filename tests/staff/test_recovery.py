"""組戻し and 返還 (payouts/recovery.py, migration 0019): the recall and the debt are state machines held by
the database as well as the application; a write-off takes a second, independent person; repayments keep
the balance, never below zero; every step is audited; another municipality sees nothing; the dashboard
adds the figures up; and money that came back never makes its entitlement payable a second time."""

from __future__ import annotations

import dataclasses
import datetime as dt

import asyncpg
import pytest

from app import audit
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.staff import overview
from app.tenancy.transaction import tenant_transaction
from payouts import batches, reconcile, recovery
from payouts.bankdays import today_jst
from payouts.returns_csv import write_returns_csv
from tests.jobs import draft, run_payout_jobs
from tests.staff.conftest import add_application, add_bank_settings

TODAY = today_jst()
ACCOUNT = {
    "bank_code": "0005",
    "branch_code": "123",
    "account_type": "1",
    "account_number": "7654321",
    "holder_kana": "ヤマダ タロウ",
}


async def _released(make_world, app_pool, settings, transfer_date, tmp_path, *, n=3, reconciled=True):
    """A world whose program's batch was drafted, approved and released by the worker's jobs, and (with
    `reconciled`) reconciled by an empty returns file: every payment 'paid'. Returns (world, batch, ids)."""
    world = await make_world(applications=n, status="approved")
    code = world.code
    async with tenant_transaction(app_pool, code) as conn:
        await add_bank_settings(conn, code)
    batch_id = await draft(app_pool, world, transfer_date)
    [sha] = await run_payout_jobs(app_pool, settings, code)
    async with tenant_transaction(app_pool, code) as conn:
        await batches.approve_batch(conn, settings, code, world.staff["appr"], batch_id, sha)
        await batches.release_batch(conn, settings, code, world.staff["appr"], batch_id)
    [outcome] = await run_payout_jobs(app_pool, settings, code)
    assert outcome.startswith("released"), outcome
    if reconciled:
        empty = write_returns_csv([], tmp_path / f"returns-{batch_id}.csv")
        await reconcile.import_returns(app_pool, code, empty, batch_id=batch_id)
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        ids = [r["payment_id"] for r in await conn.fetch("SELECT payment_id FROM payments ORDER BY payment_id")]
    return world, batch_id, ids


async def _payment(conn, payment_id):
    return await conn.fetchrow(
        "SELECT p.status, p.return_reason, e.status AS entitlement_status, p.entitlement_id FROM payments p"
        " JOIN entitlements e USING (municipality_code, entitlement_id) WHERE p.payment_id = $1",
        payment_id,
    )


async def _db_refuses(app_pool, code, constraint, statement, *args):
    """The statement, run by the app's role bypassing payouts/recovery.py, is refused by `constraint`."""
    with pytest.raises((asyncpg.CheckViolationError, asyncpg.UniqueViolationError)) as refused:
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(statement, *args)
    assert refused.value.constraint_name == constraint, refused.value


async def test_money_that_came_back_never_makes_the_entitlement_payable_twice(
    make_world, app_pool, settings, transfer_date, tmp_path
):
    """A recall answered 'returned' and a debt repaid in full: drafting the program again creates nothing;
    the recalled one is paid again only by staff's deliberate re-issue on the reconciliation screen, once."""
    world, _, (recalled, recovered, untouched) = await _released(
        make_world, app_pool, settings, transfer_date, tmp_path
    )
    code, s = world.code, world.staff
    async with tenant_transaction(app_pool, code) as conn:
        await recovery.request_recall(conn, code, s["draft"], recalled, "死亡後の振込")
        await recovery.answer_recall(conn, code, s["rev"], recalled, "returned", "受取人の同意を得て返金", 660)
        await recovery.open_debt(conn, code, s["draft"], recovered, 100_000, "重複受給")
        assert await recovery.record_repayment(conn, code, s["rev"], recovered, 100_000, TODAY, "窓口で納付") == 0
        before = {pid: await _payment(conn, pid) for pid in (recalled, recovered, untouched)}
    # The recalled payment came back: 'returned' with reason 組戻し, listed on the reconciliation screen; the
    # entitlement is not reopened. The recovered one stays 'paid', as does its entitlement.
    assert (before[recalled]["status"], before[recalled]["return_reason"]) == ("returned", "組戻し")
    assert before[recalled]["entitlement_status"] == "paid"
    assert (before[recovered]["status"], before[recovered]["entitlement_status"]) == ("paid", "paid")

    # Drafting the program again finds nothing to pay: the draft is cancelled and no payment is created.
    batch_id = await draft(app_pool, world, transfer_date)
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        again = await batches.get_batch(conn, code, batch_id)
        assert again["status"] == "cancelled" and "起案できる支払がありません" in again["draft_error"]
        per_entitlement = await conn.fetch("SELECT entitlement_id, count(*) AS n FROM payments GROUP BY 1")
        assert {r["n"] for r in per_entitlement} == {1} and len(per_entitlement) == 3

    # The recovered debt's payment cannot be re-issued (it is not returned), and stays credited in the database.
    async with tenant_transaction(app_pool, code) as conn:
        account = reconcile.corrected_account(ACCOUNT)
        with pytest.raises(Conflict, match="振込不能になった支払ではありません"):
            await reconcile.mark_recontact(conn, code, s["rev"], recovered, "")
        with pytest.raises(Conflict, match="振込不能になった支払ではありません"):
            await reconcile.reissue(conn, world.cipher, code, s["draft"], recovered, account)
    await _db_refuses(
        app_pool,
        code,
        "payments_claimed_back_was_credited",
        "UPDATE payments SET status = 'returned' WHERE payment_id = $1",
        recovered,
    )
    # The recalled payment stays returned: it cannot be made 'paid' (or live) again behind staff's back.
    await _db_refuses(
        app_pool,
        code,
        "payments_recalled_stay_returned",
        "UPDATE payments SET status = 'paid' WHERE payment_id = $1",
        recalled,
    )
    # Paying the recalled entitlement again is the deliberate path: re-contact, then one re-issue.
    async with tenant_transaction(app_pool, code) as conn:
        [row] = [r for r in await reconcile.returned(conn, code) if r["payment_id"] == recalled]
        assert row["reason"] == "組戻し"
        await reconcile.mark_recontact(conn, code, s["rev"], recalled, "正しい受取人に連絡")
        new_id = await reconcile.reissue(conn, world.cipher, code, s["draft"], recalled, account)
        with pytest.raises(Conflict):
            await reconcile.reissue(conn, world.cipher, code, s["draft"], recalled, account)
        live = await conn.fetchval(
            "SELECT count(*) FROM payments WHERE entitlement_id = $1 AND status IN ('ready', 'in_batch', 'paid')",
            before[recalled]["entitlement_id"],
        )
        assert live == 1 and (await _payment(conn, new_id))["status"] == "ready"


async def test_the_recall_state_machine_in_the_app_and_in_the_database(
    make_world, app_pool, settings, transfer_date, tmp_path
):
    world, _, (a, b, _) = await _released(make_world, app_pool, settings, transfer_date, tmp_path, reconciled=False)
    code, s = world.code, world.staff
    async with tenant_transaction(app_pool, code) as conn:
        unsent = await add_application(conn, world, status="approved")
        with pytest.raises(Forbidden):  # a reviewer records answers; a drafter decides to recall
            await recovery.request_recall(conn, code, s["rev"], a, "誤振込")
        with pytest.raises(InvalidInput, match="組戻しの理由（reason）"):
            await recovery.request_recall(conn, code, s["draft"], a, "   ")
        with pytest.raises(NotFound):
            await recovery.request_recall(conn, code, s["draft"], 999_999_999, "誤振込")
        # 'in_batch' of a released batch (no returns file yet) can be recalled.
        await recovery.request_recall(conn, code, s["draft"], a, "誤振込")
        with pytest.raises(Conflict, match="回答待ちの組戻し依頼があります"):
            await recovery.request_recall(conn, code, s["draft"], a, "二度目")
        with pytest.raises(Conflict, match="組戻しの回答待ち"):  # no debt while the bank has not answered
            await recovery.open_debt(conn, code, s["draft"], a, 1, "x")
        with pytest.raises(InvalidInput, match="outcome"):
            await recovery.answer_recall(conn, code, s["rev"], a, "maybe", "回答", 0)
        with pytest.raises(InvalidInput, match="fee_yen"):
            await recovery.answer_recall(conn, code, s["rev"], a, "refused", "回答", -1)
        with pytest.raises(InvalidInput, match="bank_answer"):
            await recovery.answer_recall(conn, code, s["rev"], a, "refused", "", 0)
        with pytest.raises(Forbidden):
            await recovery.answer_recall(conn, code, s["appr"], a, "refused", "受取人が同意しない", 880)
        await recovery.answer_recall(conn, code, s["rev"], a, "refused", "受取人が同意しない", 880)
        with pytest.raises(Conflict, match="回答待ちの組戻し依頼はありません"):
            await recovery.answer_recall(conn, code, s["rev"], a, "returned", "やはり返金", 0)
        # 組戻し不能: the payment is untouched, and a new request (or a debt) may follow.
        assert (await _payment(conn, a))["status"] == "in_batch"
        await recovery.request_recall(conn, code, s["draft"], a, "再依頼")
        # A payment not in a released file (a ready one) cannot be recalled.
        await conn.execute(
            "INSERT INTO payments (municipality_code, entitlement_id, amount_yen, bank_code, branch_code, account_type,"
            " account_number_enc, holder_kana_enc) SELECT municipality_code, entitlement_id, 1, '0001', '001', 1,"
            " '\\x00', '\\x00' FROM applications WHERE application_id = $1",
            unsent,
        )
        ready = await conn.fetchval("SELECT payment_id FROM payments WHERE status = 'ready'")
        with pytest.raises(Conflict, match="送信済みの振込の支払"):
            await recovery.request_recall(conn, code, s["draft"], ready, "誤振込")
        answered = await conn.fetchval("SELECT recall_id FROM payment_recalls WHERE status = 'refused'")
        staff_id = s["rev"].staff_id

    # The database holds each rule without the application.
    insert = (
        "INSERT INTO payment_recalls (municipality_code, payment_id, reason, requested_by) VALUES ($1, $2, 'x', $3)"
    )
    await _db_refuses(app_pool, code, "payment_recalls_payment_sent", insert, code, ready, staff_id)
    await _db_refuses(app_pool, code, "payment_recalls_one_open", insert, code, a, staff_id)
    await _db_refuses(
        app_pool,
        code,
        "payment_recalls_answered_once",
        "UPDATE payment_recalls SET status = 'returned' WHERE recall_id = $1",
        answered,
    )
    await _db_refuses(
        app_pool,
        code,
        "payment_recalls_answered_once",
        "INSERT INTO payment_recalls (municipality_code, payment_id, reason, requested_by, status, bank_answer,"
        " fee_yen, answered_by, answered_at) VALUES ($1, $2, 'x', $3, 'returned', 'x', 0, $3, now())",
        code,
        b,
        staff_id,
    )
    await _db_refuses(
        app_pool,
        code,
        "payment_recalls_request_fixed",
        "UPDATE payment_recalls SET reason = 'changed' WHERE payment_id = $1 AND status = 'requested'",
        a,
    )
    await _db_refuses(
        app_pool,
        code,
        "payment_recalls_answer_whole",
        "UPDATE payment_recalls SET status = 'returned' WHERE payment_id = $1 AND status = 'requested'",
        a,
    )
    await _db_refuses(
        app_pool,
        code,
        "payment_debts_not_during_recall",
        "INSERT INTO payment_debts (municipality_code, payment_id, amount_yen, reason, opened_by)"
        " VALUES ($1, $2, 1, 'x', $3)",
        code,
        a,
        staff_id,
    )
    # 組戻し済 on an 'in_batch' payment: it is returned, and a later returns file's 'paid' passes it by.
    async with tenant_transaction(app_pool, code) as conn:
        await recovery.answer_recall(conn, code, s["draft"], a, "returned", "返金済み", 0)
        assert (await _payment(conn, a))["status"] == "returned"
        with pytest.raises(Conflict, match="送信済みの振込の支払"):
            await recovery.request_recall(conn, code, s["draft"], a, "もう一度")
        # A debt first: then no recall.
        await recovery.open_debt(conn, code, s["draft"], b, 100_000, "受給資格なし")
        with pytest.raises(Conflict, match="返還請求があります"):
            await recovery.request_recall(conn, code, s["draft"], b, "誤振込")
    await _db_refuses(app_pool, code, "payment_recalls_not_after_debt", insert, code, b, staff_id)


async def test_a_debt_keeps_its_balance_from_its_repayments_never_below_zero(
    make_world, app_pool, settings, transfer_date, tmp_path
):
    world, _, (a, b, _) = await _released(make_world, app_pool, settings, transfer_date, tmp_path)
    code, s = world.code, world.staff
    async with tenant_transaction(app_pool, code) as conn:
        with pytest.raises(InvalidInput, match="支払額（100,000円）以下"):
            await recovery.open_debt(conn, code, s["draft"], a, 100_001, "過払い")
        with pytest.raises(InvalidInput, match="amount_yen"):
            await recovery.open_debt(conn, code, s["draft"], a, 0, "過払い")
        with pytest.raises(Forbidden):
            await recovery.open_debt(conn, code, s["rev"], a, 60_000, "過払い")
        with pytest.raises(Conflict, match="返還請求がありません"):
            await recovery.record_repayment(conn, code, s["rev"], a, 1, TODAY, "")
        debt_id = await recovery.open_debt(conn, code, s["draft"], a, 60_000, "過払い")
        with pytest.raises(Conflict, match="既に返還請求"):
            await recovery.open_debt(conn, code, s["draft"], a, 1, "二度目")
        with pytest.raises(InvalidInput, match="kind"):
            await recovery.record_notice(conn, code, s["rev"], a, "letter", TODAY, "")
        with pytest.raises(InvalidInput, match="未来の日付"):
            await recovery.record_notice(conn, code, s["rev"], a, "demand", TODAY + dt.timedelta(days=1), "")
        with pytest.raises(InvalidInput, match="送信日"):
            await recovery.record_repayment(conn, code, s["rev"], a, 1, TODAY - dt.timedelta(days=1), "")
        await recovery.record_notice(conn, code, s["rev"], a, "demand", TODAY, "返還請求書を郵送")
        assert await recovery.record_repayment(conn, code, s["draft"], a, 20_000, TODAY, "一部") == 40_000
        with pytest.raises(InvalidInput, match="残額（40,000円）を超えて"):
            await recovery.record_repayment(conn, code, s["rev"], a, 40_001, TODAY, "")
        staff_id = s["rev"].staff_id
    repay = (
        "INSERT INTO debt_repayments (municipality_code, debt_id, amount_yen, received_on, recorded_by)"
        " VALUES ($1, $2, $3, current_date, $4)"
    )
    await _db_refuses(app_pool, code, "payment_debts_balance_not_negative", repay, code, debt_id, 40_001, staff_id)
    await _db_refuses(
        app_pool,
        code,
        "payment_debts_repaid_is_the_repayments",
        "UPDATE payment_debts SET repaid_yen = 60000, status = 'repaid' WHERE debt_id = $1",
        debt_id,
    )
    await _db_refuses(
        app_pool,
        code,
        "payment_debts_within_payment",
        "INSERT INTO payment_debts (municipality_code, payment_id, amount_yen, reason, opened_by)"
        " VALUES ($1, $2, 100001, 'x', $3)",
        code,
        b,
        staff_id,
    )
    await _db_refuses(
        app_pool,
        code,
        "payment_debts_claim_fixed",
        "UPDATE payment_debts SET amount_yen = 20000 WHERE debt_id = $1",
        debt_id,
    )
    async with tenant_transaction(app_pool, code) as conn:  # repayments are facts: never rewritten
        for statement in ("UPDATE debt_repayments SET amount_yen = 1", "DELETE FROM debt_repayments"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():
                    await conn.execute(statement)
        assert await recovery.record_repayment(conn, code, s["rev"], a, 40_000, TODAY, "完済") == 0
        case = await recovery.case(conn, code, a)
        debt = case["debt"]
        assert (debt["status"], debt["repaid_yen"], debt["balance_yen"]) == ("repaid", 60_000, 0)
        assert [r["amount_yen"] for r in case["repayments"]] == [20_000, 40_000]
        assert [n["kind"] for n in case["notices"]] == ["demand"]
        with pytest.raises(Conflict, match="完済または償却済み"):
            await recovery.record_notice(conn, code, s["rev"], a, "reminder", TODAY, "")
        with pytest.raises(Conflict, match="完済または償却済み"):
            await recovery.request_write_off(conn, code, s["draft"], a, "回収不能")
    await _db_refuses(
        app_pool,
        code,
        "payment_debts_settled_is_final",
        "INSERT INTO debt_notices (municipality_code, debt_id, kind, sent_on, recorded_by)"
        " VALUES ($1, $2, 'reminder', current_date, $3)",
        code,
        debt_id,
        staff_id,
    )
    await _db_refuses(app_pool, code, "payment_debts_settled_is_final", repay, code, debt_id, 1, staff_id)


async def test_a_write_off_is_approved_by_someone_else_than_its_requester(
    make_world, app_pool, settings, transfer_date, tmp_path
):
    world, _, (a, b, _) = await _released(make_world, app_pool, settings, transfer_date, tmp_path)
    code, s = world.code, world.staff
    async with tenant_transaction(app_pool, code) as conn:
        debt_a = await recovery.open_debt(conn, code, s["draft"], a, 100_000, "受給資格なし")
        debt_b = await recovery.open_debt(conn, code, s["draft"], b, 100_000, "受給資格なし")
        await recovery.record_repayment(conn, code, s["rev"], a, 30_000, TODAY, "")
        with pytest.raises(Conflict, match="償却の申請はありません"):
            await recovery.approve_write_off(conn, code, s["appr"], a)
        with pytest.raises(Forbidden):  # a reviewer records; a drafter asks for a write-off
            await recovery.request_write_off(conn, code, s["rev"], a, "所在不明")
        with pytest.raises(InvalidInput, match="償却の理由（reason）"):
            await recovery.request_write_off(conn, code, s["draft2"], a, "")
        # draft2 holds both the drafter and the approver role: it asks, and may not approve its own request.
        await recovery.request_write_off(conn, code, s["draft2"], a, "受取人死亡・相続人なし")
        with pytest.raises(Conflict, match="承認待ちの償却申請"):
            await recovery.request_write_off(conn, code, s["draft"], a, "二度目")
        with pytest.raises(Forbidden, match="申請した本人は承認できません"):
            await recovery.approve_write_off(conn, code, s["draft2"], a)
        with pytest.raises(Forbidden):
            await recovery.approve_write_off(conn, code, s["draft"], a)  # not an approver
        requester = s["draft2"].staff_id
    # In the database: the requester as approver, or approval in the request's own statement.
    await _db_refuses(
        app_pool,
        code,
        "payment_debts_write_off_four_eyes",
        "UPDATE payment_debts SET status = 'written_off', written_off_by = $2, written_off_at = now(),"
        " written_off_yen = amount_yen - repaid_yen WHERE debt_id = $1",
        debt_a,
        requester,
    )
    await _db_refuses(
        app_pool,
        code,
        "payment_debts_write_off_four_eyes",
        "UPDATE payment_debts SET write_off_requested_by = $2, write_off_requested_at = now(), write_off_reason = 'x',"
        " status = 'written_off', written_off_by = $3, written_off_at = now(), written_off_yen = amount_yen"
        " WHERE debt_id = $1",
        debt_b,
        s["draft"].staff_id,
        s["appr"].staff_id,
    )
    # Another account is not enough: admin confirmed appr's approver role, so appr cannot approve admin's request.
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(
                "UPDATE payment_debts SET write_off_requested_by = $2, write_off_requested_at = now(),"
                " write_off_reason = 'x' WHERE debt_id = $1",
                debt_b,
                s["admin"].staff_id,
            )
            await conn.execute(
                "UPDATE payment_debts SET status = 'written_off', written_off_by = $2, written_off_at = now(),"
                " written_off_yen = amount_yen WHERE debt_id = $1",
                debt_b,
                s["appr"].staff_id,
            )
    assert refused.value.constraint_name == "payment_debts_write_off_independent"

    async with tenant_transaction(app_pool, code) as conn:
        assert await recovery.approve_write_off(conn, code, s["appr"], a) == 70_000
        debt = (await recovery.case(conn, code, a))["debt"]
        assert (debt["status"], debt["written_off_yen"], debt["balance_yen"]) == ("written_off", 70_000, 0)
        assert debt["written_off_by_login"] == "appr" and debt["write_off_requested_by_login"] == "draft2"
        with pytest.raises(Conflict, match="完済または償却済み"):
            await recovery.record_repayment(conn, code, s["rev"], a, 1, TODAY, "")
        # A request can be refused by an approver or withdrawn by its requester; the debt stays open.
        await recovery.request_write_off(conn, code, s["draft"], b, "所在不明")
        # A drafter other than the requester, without the approver role, can neither refuse nor withdraw it.
        other_drafter = dataclasses.replace(s["draft2"], roles=("drafter",))
        with pytest.raises(Forbidden, match="申請した本人か承認者"):
            await recovery.refuse_write_off(conn, code, other_drafter, b, "")
        await recovery.refuse_write_off(conn, code, s["appr"], b, "調査を続けること")
        debt = (await recovery.case(conn, code, b))["debt"]
        assert debt["status"] == "open" and debt["write_off_requested_by"] is None
        await recovery.request_write_off(conn, code, s["draft"], b, "所在不明")
        await recovery.refuse_write_off(conn, code, s["draft"], b, "取り下げ")
        assert (await recovery.case(conn, code, b))["debt"]["write_off_requested_by"] is None


async def test_every_step_is_in_the_audit_trail_without_personal_data(
    make_world, app_pool, settings, transfer_date, tmp_path
):
    world, _, (a, b, _) = await _released(make_world, app_pool, settings, transfer_date, tmp_path)
    code, s = world.code, world.staff
    async with tenant_transaction(app_pool, code) as conn:
        recall_id = await recovery.request_recall(conn, code, s["draft"], a, "誤振込")
        await recovery.answer_recall(conn, code, s["rev"], a, "returned", "返金済み", 660)
        debt_id = await recovery.open_debt(conn, code, s["draft"], b, 100_000, "重複受給")
        await recovery.record_notice(conn, code, s["rev"], b, "demand", TODAY, "郵送")
        await recovery.record_repayment(conn, code, s["rev"], b, 10_000, TODAY, "振込で受領")
        await recovery.request_write_off(conn, code, s["draft"], b, "分納困難")
        await recovery.refuse_write_off(conn, code, s["appr"], b, "分納で回収を続ける")
        await recovery.request_write_off(conn, code, s["draft"], b, "所在不明")
        await recovery.approve_write_off(conn, code, s["appr"], b)
        rows = await conn.fetch(
            "SELECT action, actor_label, object_type, object_id, details::text AS details FROM audit_log"
            " WHERE action LIKE 'recall.%' OR action LIKE 'debt.%' ORDER BY seq"
        )
        assert (await audit.verify_chain(conn, code)).ok
    assert [(r["action"], r["actor_label"], r["object_type"], r["object_id"]) for r in rows] == [
        ("recall.request", "draft", "payment", str(a)),
        ("recall.answer", "rev", "payment", str(a)),
        ("debt.open", "draft", "debt", str(debt_id)),
        ("debt.notice", "rev", "debt", str(debt_id)),
        ("debt.repayment", "rev", "debt", str(debt_id)),
        ("debt.write_off_request", "draft", "debt", str(debt_id)),
        ("debt.write_off_refuse", "appr", "debt", str(debt_id)),
        ("debt.write_off_request", "draft", "debt", str(debt_id)),
        ("debt.write_off_approve", "appr", "debt", str(debt_id)),
    ]
    details = [r["details"] for r in rows]
    assert f'"recall_id":{recall_id}' in details[0] and '"outcome":"returned"' in details[1]
    assert '"fee_yen":660' in details[1] and '"balance_yen":90000' in details[4]
    assert '"written_off_yen":90000' in details[8]
    # No account number or holder name of the payee (add_application's defaults) in any entry.
    assert not any("ﾔﾏﾀﾞ" in d or "ヤマダ" in d or "山田" in d for d in details)


async def test_another_municipality_sees_no_case_and_reaches_none(
    make_world, app_pool, settings, transfer_date, tmp_path
):
    world, _, (a, b, _) = await _released(make_world, app_pool, settings, transfer_date, tmp_path)
    other = await make_world(applications=0)
    async with tenant_transaction(app_pool, world.code) as conn:
        await recovery.request_recall(conn, world.code, world.staff["draft"], a, "誤振込")
        await recovery.open_debt(conn, world.code, world.staff["draft"], b, 50_000, "過払い")
    code, s = other.code, other.staff
    async with tenant_transaction(app_pool, code) as conn:
        for attempt in (
            recovery.case(conn, code, a),
            recovery.request_recall(conn, code, s["draft"], b, "x"),
            recovery.answer_recall(conn, code, s["rev"], a, "returned", "x", 0),
            recovery.open_debt(conn, code, s["draft"], a, 1, "x"),
            recovery.record_notice(conn, code, s["rev"], b, "demand", TODAY, ""),
            recovery.record_repayment(conn, code, s["rev"], b, 1, TODAY, ""),
            recovery.request_write_off(conn, code, s["draft"], b, "x"),
        ):
            with pytest.raises(NotFound):
                await attempt
        assert await recovery.find_payment(conn, code, str(a)) is None
        listed = await recovery.cases(conn, code)
        assert listed["recalls"] == [] and listed["debts"] == []
        for table in ("payment_recalls", "payment_debts"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0

    from starlette.testclient import TestClient

    from app.main import create_app
    from tests.hostile.helpers import staff_signed_in

    with TestClient(create_app(settings), follow_redirects=False) as client:
        token = await staff_signed_in(client, app_pool, code, s["draft"].staff_id)
        assert client.get(f"/staff/payments/{a}/recovery").status_code == 404
        r = client.post(f"/staff/payments/{b}/debt/repayment", data={"csrf_token": token, "amount_yen": "1"})
        assert r.status_code in (404, 422)  # never the other municipality's debt
        r = client.post(
            f"/staff/payments/{b}/debt/repayment",
            data={"csrf_token": token, "amount_yen": "1", "received_on": TODAY.isoformat()},
        )
        assert r.status_code == 404
    async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
        assert (await recovery.case(conn, world.code, b))["debt"]["repaid_yen"] == 0


async def test_the_dashboard_adds_up_recovered_and_outstanding_yen_per_program(
    make_world, app_pool, settings, transfer_date, tmp_path
):
    world, _, (a, b, c) = await _released(make_world, app_pool, settings, transfer_date, tmp_path)
    code, s = world.code, world.staff
    async with tenant_transaction(app_pool, code) as conn:
        [before], _ = await overview.program_overview(conn, code)
        assert before["recovery"]["recovered_yen"] == 0 and before["recovery"]["outstanding_yen"] == 0
        await recovery.request_recall(conn, code, s["draft"], a, "誤振込")
        await recovery.answer_recall(conn, code, s["rev"], a, "returned", "返金済み", 660)
        await recovery.open_debt(conn, code, s["draft"], b, 80_000, "過払い")
        await recovery.record_repayment(conn, code, s["rev"], b, 30_000, TODAY, "")
        await recovery.request_recall(conn, code, s["draft"], c, "誤振込")
        [after], _ = await overview.program_overview(conn, code)
    rc = after["recovery"]
    assert rc["recovered_yen"] == 100_000 + 30_000
    assert (rc["recalled_yen"], rc["repaid_yen"], rc["outstanding_yen"]) == (100_000, 30_000, 50_000)
    assert (rc["recall_fees_yen"], rc["recalls_pending"], rc["recalls_pending_yen"], rc["debts_open"]) == (
        660,
        1,
        100_000,
        1,
    )
    # What was recalled is no longer counted as paid (the payment is returned); the repaid debt's still is.
    assert after["paid_yen"] == before["paid_yen"] - 100_000
    async with tenant_transaction(app_pool, code) as conn:
        await recovery.request_write_off(conn, code, s["draft"], b, "所在不明")
        await recovery.approve_write_off(conn, code, s["appr"], b)
        [last], _ = await overview.program_overview(conn, code)
    assert (last["recovery"]["outstanding_yen"], last["recovery"]["written_off_yen"]) == (0, 50_000)
    assert last["recovery"]["recovered_yen"] == 130_000


async def test_the_console_takes_a_debt_from_the_batch_page_to_a_repayment(
    make_world, app_pool, settings, transfer_date, tmp_path
):
    """End to end in the console: the released batch links to its payments; a drafter opens a debt; a
    reviewer records a notice and a partial repayment; bad input is a 422 naming the field, and writes
    nothing; the dashboard shows the figures."""
    from starlette.testclient import TestClient

    from app.main import create_app
    from tests.hostile.helpers import csrf_from, staff_signed_in

    world, batch_id, (a, _, _) = await _released(make_world, app_pool, settings, transfer_date, tmp_path)
    code = world.code
    with TestClient(create_app(settings), follow_redirects=False) as client:
        await staff_signed_in(client, app_pool, code, world.staff["draft"].staff_id)
        page = client.get(f"/staff/batches/{batch_id}")
        assert page.status_code == 200 and f'href="/staff/recovery?batch={batch_id}"' in page.text
        listing = client.get(f"/staff/recovery?batch={batch_id}")
        assert listing.status_code == 200 and f'href="/staff/payments/{a}/recovery"' in listing.text
        found = client.get("/staff/recovery", params={"q": str(a)})
        assert found.status_code == 303 and found.headers["location"] == f"/staff/payments/{a}/recovery"
        case = client.get(f"/staff/payments/{a}/recovery")
        assert case.status_code == 200 and 'id="debt-form"' in case.text and 'id="recall-request"' in case.text
        token = csrf_from(case.text)
        bad = client.post(
            f"/staff/payments/{a}/debt", data={"csrf_token": token, "amount_yen": "１０万", "reason": "過払い"}
        )
        assert bad.status_code == 422 and "返還請求額は半角数字" in bad.text
        too_much = client.post(
            f"/staff/payments/{a}/debt", data={"csrf_token": token, "amount_yen": "100,001", "reason": "過払い"}
        )
        assert too_much.status_code == 422 and "支払額（100,000円）以下" in too_much.text
        r = client.post(
            f"/staff/payments/{a}/debt", data={"csrf_token": token, "amount_yen": "100,000", "reason": "過払い"}
        )
        assert r.status_code == 303 and r.headers["location"] == f"/staff/payments/{a}/recovery"

        await staff_signed_in(client, app_pool, code, world.staff["rev"].staff_id)
        case = client.get(f"/staff/payments/{a}/recovery")
        token = csrf_from(case.text)
        assert 'id="debt-form"' not in case.text and 'id="repayment-form"' in case.text
        assert 'id="write-off-form"' not in case.text  # a reviewer does not ask for write-offs
        r = client.post(
            f"/staff/payments/{a}/debt/notice",
            data={"csrf_token": token, "kind": "demand", "sent_on": TODAY.isoformat(), "note": "郵送"},
        )
        assert r.status_code == 303
        bad = client.post(
            f"/staff/payments/{a}/debt/repayment",
            data={"csrf_token": token, "amount_yen": "30000", "received_on": "2026/13/40"},
        )
        assert bad.status_code == 422 and "受領日は YYYY-MM-DD" in bad.text
        r = client.post(
            f"/staff/payments/{a}/debt/repayment",
            data={"csrf_token": token, "amount_yen": "30000", "received_on": TODAY.isoformat(), "note": "窓口"},
        )
        assert r.status_code == 303
        case = client.get(f"/staff/payments/{a}/recovery")
        assert 'id="debt-repaid">30,000円<' in case.text and 'id="debt-balance">70,000円<' in case.text
        assert "返還請求書" in case.text and 'id="debt-status">未完済<' in case.text
        dashboard = client.get("/staff/")
        assert f'id="recovered-{world.program_id}">30,000円<' in dashboard.text
        assert f'id="outstanding-{world.program_id}">70,000円<' in dashboard.text
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        assert await conn.fetchval("SELECT count(*) FROM debt_repayments") == 1
        assert await conn.fetchval("SELECT count(*) FROM payment_debts") == 1


async def test_the_demo_helper_leaves_an_open_debt_with_a_notice_and_a_partial_repayment(
    make_world, app_pool, settings, transfer_date, tmp_path
):
    from devtools.demo_recovery import seed_recovery_case

    world = await make_world(applications=0)
    assert await seed_recovery_case(app_pool, world.code, world.staff["draft"], world.staff["rev"]) is None
    world, _, (a, _, _) = await _released(make_world, app_pool, settings, transfer_date, tmp_path)
    line = await seed_recovery_case(app_pool, world.code, world.staff["draft"], world.staff["rev"])
    assert line is not None and f"/staff/payments/{a}/recovery" in line
    async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
        case = await recovery.case(conn, world.code, a)
    debt = case["debt"]
    assert (debt["status"], debt["amount_yen"], debt["repaid_yen"], debt["balance_yen"]) == (
        "open",
        100_000,
        33_333,
        66_667,
    )
    assert [n["kind"] for n in case["notices"]] == ["demand"] and len(case["repayments"]) == 1

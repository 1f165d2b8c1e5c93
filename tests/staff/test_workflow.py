"""審査 → 振込起案 → 振込承認 → release, and the rules that make the 阿武町 accident impossible."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from app import audit
from app.staff import review
from app.staff.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.tenancy.transaction import tenant_transaction
from payouts import batches, reconcile as reconciliation
from payouts.payments import create_payments_for_program, open_bank
from tests.jobs import draft, run_payout_jobs
from tests.staff.conftest import add_application, add_bank_settings, own_account


async def _approved_world(make_world, app_pool, n=3):
    world = await make_world(applications=n, status="approved")
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
    return world


async def _draft(app_pool, world, transfer_date, who="draft", **expected):
    """振込起案 and the worker's preparation: the batch is a draft, or cancelled with its reason."""
    return await draft(app_pool, world, transfer_date, who, **expected)


async def _sha(app_pool, settings, world, batch_id):
    """The worker hashes the draft (job hash_batch); the console shows the recorded SHA-256."""
    await run_payout_jobs(app_pool, settings, world.code)
    async with tenant_transaction(app_pool, world.code) as conn:
        return (await batches.get_batch(conn, world.code, batch_id))["plaintext_sha256"]


async def _release(app_pool, settings, world, batch_id, who="appr"):
    """送信 in the console, then the worker's release job; returns the job's outcome."""
    async with tenant_transaction(app_pool, world.code) as conn:
        await batches.release_batch(conn, settings, world.code, world.staff[who], batch_id)
    [outcome] = await run_payout_jobs(app_pool, settings, world.code)
    return outcome


async def test_review_decisions_need_the_reviewer_role_and_a_reason_to_reject(make_world, app_pool):
    world = await make_world(applications=2)
    a, b = world.applications
    async with tenant_transaction(app_pool, world.code) as conn:
        with pytest.raises(Forbidden):
            await review.decide(conn, world.cipher, world.code, world.staff["draft"], a, "approve", "")
        with pytest.raises(InvalidInput, match="comment"):
            await review.decide(conn, world.cipher, world.code, world.staff["rev"], a, "reject", " ")
        await review.decide(conn, world.cipher, world.code, world.staff["rev"], a, "approve", "名義は旧姓")
        await review.decide(conn, world.cipher, world.code, world.staff["rev"], b, "reject", "転出済み")
        with pytest.raises(Conflict):
            await review.decide(conn, world.cipher, world.code, world.staff["rev"], a, "reject", "二度目")
        statuses = dict(await conn.fetch("SELECT application_id, status FROM applications"))
        assert statuses == {a: "approved", b: "rejected"}
        actions = [
            r["action"]
            for r in await conn.fetch("SELECT action FROM audit_log WHERE action LIKE 'review.%' ORDER BY seq")
        ]
        assert actions == ["review.approve", "review.reject"]


async def test_personal_data_view_is_audited_with_purpose(make_world, app_pool):
    world = await make_world(applications=1)
    app_id = world.applications[0]
    async with tenant_transaction(app_pool, world.code) as conn:
        with pytest.raises(InvalidInput):
            await review.personal_view(conn, world.cipher, world.code, world.staff["rev"], app_id, "curiosity")
        view = await review.personal_view(conn, world.cipher, world.code, world.staff["rev"], app_id, "review")
        assert view["holder_kana"] == "ﾔﾏﾀﾞ ﾀﾛｳ" and view["household"][0]["family_name"] == "山田"
        row = await conn.fetchrow("SELECT actor_label, details FROM audit_log WHERE action = 'personal_data.view'")
        assert row["actor_label"] == "rev" and '"purpose":"review"' in row["details"]


async def test_payments_are_created_once_with_bank_details_rebound_to_the_payment(make_world, app_pool):
    world = await make_world(applications=3, status="approved")
    async with tenant_transaction(app_pool, world.code) as conn:
        assert await create_payments_for_program(conn, world.cipher, world.code, world.program_id) == 3
        assert await create_payments_for_program(conn, world.cipher, world.code, world.program_id) == 0
        rows = await conn.fetch("SELECT payment_id, application_id, bank_enc FROM payments")
        for r in rows:
            assert open_bank(world.cipher, r) == (own_account(r["application_id"]), "ﾔﾏﾀﾞ ﾀﾛｳ")


async def test_concurrent_payment_creation_gives_one_payment_per_entitlement(make_world, app_pool):
    world = await make_world(applications=20, status="verified")

    async def create():
        async with tenant_transaction(app_pool, world.code) as conn:
            return await create_payments_for_program(conn, world.cipher, world.code, world.program_id)

    assert sum(await asyncio.gather(*(create() for _ in range(4)))) == 20
    async with tenant_transaction(app_pool, world.code) as conn:
        assert await conn.fetchval("SELECT count(DISTINCT entitlement_id) FROM payments") == 20
        assert await conn.fetchval("SELECT count(*) FROM payments") == 20


async def test_drafting_refuses_non_business_days_and_short_lead(make_world, app_pool):
    world = await _approved_world(make_world, app_pool)
    saturday = dt.date(2031, 3, 1)
    with pytest.raises(InvalidInput, match="銀行営業日"):
        await _draft(app_pool, world, saturday)
    tomorrow_ish = dt.date.today() + dt.timedelta(days=1)
    with pytest.raises(InvalidInput):
        await _draft(app_pool, world, tomorrow_ish)
    with pytest.raises(Forbidden):
        await _draft(app_pool, world, dt.date(2031, 3, 3), who="rev")


async def test_drafting_freezes_the_set(make_world, app_pool, transfer_date):
    world = await _approved_world(make_world, app_pool)
    batch_id = await _draft(app_pool, world, transfer_date)
    async with tenant_transaction(app_pool, world.code) as conn:
        b = await batches.get_batch(conn, world.code, batch_id)
        assert (b["status"], b["record_count"], b["total_yen"]) == ("draft", 3, 300000)
        assert (
            await conn.fetchval("SELECT count(*) FROM payments WHERE batch_id = $1 AND status = 'in_batch'", batch_id)
            == 3
        )
        # A later approved application does not slip into the frozen batch.
        await add_application(conn, world, status="approved")
    # The drafter saw 5 but only the new one is left: the worker refuses that draft and says why.
    refused = await _draft(app_pool, world, transfer_date, expected_count=5)
    async with tenant_transaction(app_pool, world.code) as conn:
        r = await batches.get_batch(conn, world.code, refused)
        assert r["status"] == "cancelled" and "表示: 5件" in r["draft_error"] and "作成: 1件" in r["draft_error"]
        assert await conn.fetchval("SELECT count(*) FROM payments WHERE batch_id = $1", refused) == 0
    second = await _draft(app_pool, world, transfer_date)
    async with tenant_transaction(app_pool, world.code) as conn:
        assert (await batches.get_batch(conn, world.code, second))["record_count"] == 1
        assert (await batches.get_batch(conn, world.code, batch_id))["record_count"] == 3


async def test_concurrent_drafts_one_wins(make_world, app_pool, transfer_date):
    world = await _approved_world(make_world, app_pool, n=30)

    async def attempt(who):
        try:
            return await _draft(app_pool, world, transfer_date, who)
        except Conflict as exc:  # another draft of the program was still being prepared
            assert "処理中" in str(exc)
            return None

    results = await asyncio.gather(*(attempt(w) for w in ("draft", "draft2", "draft", "draft2")))
    async with tenant_transaction(app_pool, world.code) as conn:
        rows = await conn.fetch("SELECT batch_id, status, draft_error FROM payout_batches")
        winners = [r["batch_id"] for r in rows if r["status"] == "draft"]
        assert len(winners) == 1 and winners[0] in results
        assert await conn.fetchval("SELECT count(*) FROM payments WHERE batch_id = $1", winners[0]) == 30
        # The others were refused at once (one preparation per program) or found nothing left.
        assert all(
            r["status"] == "cancelled" and "ありません" in r["draft_error"] for r in rows if r["status"] != "draft"
        )


async def test_the_drafter_cannot_approve_in_the_app_or_in_the_database(make_world, app_pool, settings, transfer_date):
    world = await _approved_world(make_world, app_pool)
    batch_id = await _draft(app_pool, world, transfer_date, who="draft2")  # draft2 is drafter AND approver
    sha = await _sha(app_pool, settings, world, batch_id)
    async with tenant_transaction(app_pool, world.code) as conn:
        with pytest.raises(Forbidden, match="起案した本人"):
            await batches.approve_batch(conn, settings, world.code, world.staff["draft2"], batch_id, sha)
    with pytest.raises(asyncpg.CheckViolationError, match="payout_batches_four_eyes"):
        async with tenant_transaction(app_pool, world.code) as conn:
            await conn.execute(batches.APPROVE, world.code, batch_id, world.staff["draft2"].staff_id, sha)
    async with tenant_transaction(app_pool, world.code) as conn:
        with pytest.raises(Forbidden):
            await batches.approve_batch(conn, settings, world.code, world.staff["draft"], batch_id, sha)


async def test_approve_then_release_once(make_world, app_pool, settings, transfer_date):
    world = await _approved_world(make_world, app_pool)
    batch_id = await _draft(app_pool, world, transfer_date)
    sha = await _sha(app_pool, settings, world, batch_id)
    async with tenant_transaction(app_pool, world.code) as conn:
        with pytest.raises(Conflict, match="SHA-256"):
            await batches.approve_batch(conn, settings, world.code, world.staff["appr"], batch_id, "0" * 64)
    async with tenant_transaction(app_pool, world.code) as conn:
        assert await batches.approve_batch(conn, settings, world.code, world.staff["appr"], batch_id, sha) == sha
    async with tenant_transaction(app_pool, world.code) as conn:
        await batches.release_batch(conn, settings, world.code, world.staff["appr"], batch_id)
        with pytest.raises(Conflict, match="送信処理中"):  # a second click while the worker is at it
            await batches.release_batch(conn, settings, world.code, world.staff["appr"], batch_id)
    async with tenant_transaction(app_pool, world.code) as conn:
        b = await batches.get_batch(conn, world.code, batch_id)
        assert b["status"] == "approved" and b["release_requested_at"] is not None  # nothing released in the request
    assert (await run_payout_jobs(app_pool, settings, world.code))[0].startswith("released ")
    async with tenant_transaction(app_pool, world.code) as conn:
        b = await batches.get_batch(conn, world.code, batch_id)
        assert b["status"] == "released" and b["released_sha256"] == sha
    with pytest.raises(Conflict, match="既に送信済み"):
        async with tenant_transaction(app_pool, world.code) as conn:
            await batches.release_batch(conn, settings, world.code, world.staff["appr"], batch_id)
    # Even bypassing the app, the database refuses a second release.
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="already released"):
        async with tenant_transaction(app_pool, world.code) as conn:
            await conn.execute("UPDATE payout_batches SET released_at = now() WHERE batch_id = $1", batch_id)
    async with tenant_transaction(app_pool, world.code) as conn:
        assert (await audit.verify_chain(conn, world.code)).ok


async def test_a_batch_changed_after_approval_cannot_be_released(
    make_world, app_pool, settings, transfer_date, servers
):
    world = await _approved_world(make_world, app_pool)
    batch_id = await _draft(app_pool, world, transfer_date)
    sha = await _sha(app_pool, settings, world, batch_id)
    async with tenant_transaction(app_pool, world.code) as conn:
        await batches.approve_batch(conn, settings, world.code, world.staff["appr"], batch_id, sha)
        pid = await conn.fetchval("SELECT min(payment_id) FROM payments WHERE batch_id = $1", batch_id)
    # Someone inflates one transfer after approval (the 阿武町 sum): the database refuses it outright (0018).
    with pytest.raises(asyncpg.CheckViolationError, match="above its entitlement"):
        async with tenant_transaction(app_pool, world.code) as conn:
            await conn.execute("UPDATE payments SET amount_yen = 46300000 WHERE payment_id = $1", pid)
    # Redirected to another branch instead (within every rule): the release refuses the changed file.
    async with tenant_transaction(app_pool, world.code) as conn:
        await conn.execute("UPDATE payments SET branch_code = '998' WHERE payment_id = $1", pid)
    assert await _release(app_pool, settings, world, batch_id) == "refused: ApprovalMismatch"
    async with tenant_transaction(app_pool, world.code) as conn:
        b = await batches.get_batch(conn, world.code, batch_id)
    assert b["status"] == "approved" and "承認後に振込データが変わりました" in b["release_error"]


async def test_reject_sends_back_to_draft_with_a_comment_and_cancel_frees_payments(
    make_world, app_pool, settings, transfer_date
):
    world = await _approved_world(make_world, app_pool)
    batch_id = await _draft(app_pool, world, transfer_date)
    sha = await _sha(app_pool, settings, world, batch_id)
    async with tenant_transaction(app_pool, world.code) as conn:
        await batches.approve_batch(conn, settings, world.code, world.staff["appr"], batch_id, sha)
        with pytest.raises(InvalidInput):
            await batches.reject_batch(conn, settings, world.code, world.staff["appr"], batch_id, "")
        await batches.reject_batch(conn, settings, world.code, world.staff["appr"], batch_id, "振込日を月末に")
        b = await batches.get_batch(conn, world.code, batch_id)
        assert (b["status"], b["approved_sha256"], b["rejection_comment"]) == ("draft", None, "振込日を月末に")
        with pytest.raises(Conflict):  # off the approval queue until resubmitted
            await batches.approve_batch(conn, settings, world.code, world.staff["appr"], batch_id, sha)
        await batches.cancel_batch(conn, world.code, world.staff["draft"], batch_id)
        assert await conn.fetchval("SELECT count(*) FROM payments WHERE status = 'ready' AND batch_id IS NULL") == 3
    assert await _draft(app_pool, world, transfer_date) != batch_id


async def test_an_approved_batch_whose_file_was_already_written_cannot_go_back_to_draft(
    make_world, app_pool, settings, transfer_date
):
    """A release interrupted after writing the file (the bank's transport may have it) must be completed, not
    sent back: reject → cancel → re-draft would put the same payments in a second file."""
    from payouts.release import written_files

    world = await _approved_world(make_world, app_pool)
    batch_id = await _draft(app_pool, world, transfer_date)
    sha = await _sha(app_pool, settings, world, batch_id)
    async with tenant_transaction(app_pool, world.code) as conn:
        await batches.approve_batch(conn, settings, world.code, world.staff["appr"], batch_id, sha)
        batch = await batches.get_batch(conn, world.code, batch_id)
    # What a crash between writing and committing leaves behind.
    directory = settings.outbox_path / world.code
    directory.mkdir(parents=True, exist_ok=True)
    leftover = directory / f"zengin21-{world.code}-b{batch_id:08d}-{batch['transfer_date']:%Y%m%d}.txt.age"
    leftover.write_bytes(b"age-encryption.org/v1 (interrupted release)")
    assert written_files(settings, world.code, batch_id, batch["transfer_date"]) == [leftover]
    try:
        with pytest.raises(Conflict, match="書き出し済み"):
            async with tenant_transaction(app_pool, world.code) as conn:
                await batches.reject_batch(conn, settings, world.code, world.staff["appr"], batch_id, "やり直し")
        async with tenant_transaction(app_pool, world.code) as conn:
            assert (await batches.get_batch(conn, world.code, batch_id))["status"] == "approved"
    finally:
        leftover.unlink()
    async with tenant_transaction(app_pool, world.code) as conn:  # without the file, sending back is allowed
        await batches.reject_batch(conn, settings, world.code, world.staff["appr"], batch_id, "やり直し")
        assert (await batches.get_batch(conn, world.code, batch_id))["status"] == "draft"


async def test_reissue_of_a_returned_payment_happens_once(make_world, app_pool, transfer_date):
    world = await _approved_world(make_world, app_pool, n=1)
    batch_id = await _draft(app_pool, world, transfer_date)
    async with tenant_transaction(app_pool, world.code) as conn:
        pid = await conn.fetchval("SELECT payment_id FROM payments WHERE batch_id = $1", batch_id)
        # What the returns import does (payout stage): the transfer came back.
        await conn.execute(
            "UPDATE payments SET status = 'returned', return_reason = '取引なし' WHERE payment_id = $1", pid
        )
        account = reconciliation.corrected_account(
            {
                "bank_code": "0005",
                "branch_code": "123",
                "account_type": "1",
                "account_number": "7654321",
                "holder_kana": "ヤマダ タロウ",
            }
        )
        with pytest.raises(Conflict, match="再連絡"):
            await reconciliation.reissue(conn, world.cipher, world.code, world.staff["draft"], pid, account)
        await reconciliation.mark_recontact(conn, world.code, world.staff["rev"], pid, "電話で口座確認")
        new_id = await reconciliation.reissue(conn, world.cipher, world.code, world.staff["draft"], pid, account)
        with pytest.raises(Conflict):
            await reconciliation.reissue(conn, world.cipher, world.code, world.staff["draft"], pid, account)
        rows = await reconciliation.returned(conn, world.code)
        assert rows[0]["reissued_payment_id"] == new_id and rows[0]["reason"] == "取引なし"
        row = await conn.fetchrow("SELECT payment_id, bank_enc FROM payments WHERE payment_id = $1", new_id)
        assert open_bank(world.cipher, row)[1] == "ﾔﾏﾀﾞ ﾀﾛｳ"
    with pytest.raises(InvalidInput, match="口座名義"):
        reconciliation.corrected_account(
            {
                "bank_code": "0005",
                "branch_code": "123",
                "account_type": "1",
                "account_number": "7654321",
                "holder_kana": "山田太郎",
            }
        )


async def test_objects_of_another_municipality_are_not_found(make_world, app_pool, settings):
    a, b = await make_world(applications=1), await make_world(applications=1)
    async with tenant_transaction(app_pool, a.code) as conn:
        with pytest.raises(NotFound):
            await review.personal_view(conn, a.cipher, a.code, a.staff["rev"], b.applications[0], "review")
        with pytest.raises(NotFound):
            await review.decide(conn, a.cipher, a.code, a.staff["rev"], b.applications[0], "approve", "")

"""payouts.reconcile: returns import is idempotent; a corrected account is paid once."""

from __future__ import annotations

import asyncpg
import pytest

from app.errors import Conflict
from app.principals import Staff
from app.tenancy.municipalities import load_field_cipher
from app.tenancy.transaction import tenant_transaction
from payouts import reconcile, release
from payouts.payments import open_bank
from payouts.returns_csv import ReturnRow, write_returns_csv
from tests.conftest import run_cli
from tests.payouts._batches import make_batch


async def _released(owner_conn, app_pool, settings, municipality, tmp_path):
    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path)
    await release.release_batch(app_pool, settings, code, batch.batch_id, batch.approver)
    return code, batch


async def _statuses(owner_conn, code, batch):
    async with tenant_transaction(owner_conn, code) as conn:
        rows = await conn.fetch(
            "SELECT payment_id, status, return_reason, paid_on FROM payments"
            " WHERE municipality_code = $1 AND entitlement_id IN (SELECT entitlement_id FROM payments"
            " WHERE municipality_code = $1 AND batch_id = $2) ORDER BY payment_id",
            code,
            batch.batch_id,
        )
    return {r["payment_id"]: (r["status"], r["return_reason"], r["paid_on"]) for r in rows}


async def test_returns_import_marks_returned_and_paid_once(owner_conn, app_pool, settings, municipality, tmp_path):
    """Returned with the reason, the rest paid on the transfer date; the same file again changes nothing."""
    code, batch = await _released(owner_conn, app_pool, settings, municipality, tmp_path)
    returned_id = batch.payment_ids[2]
    csv_path = write_returns_csv([ReturnRow(returned_id, "N", "名義相違")], tmp_path / "r.csv")
    outcome = await reconcile.import_returns(app_pool, code, csv_path)
    assert (outcome.returned_count, outcome.paid_count, outcome.already_imported) == (1, 3, False)
    after = await _statuses(owner_conn, code, batch)
    assert after[returned_id][:2] == ("returned", "名義相違")
    assert {v[0] for k, v in after.items() if k != returned_id} == {"paid"}
    assert {v[2] for k, v in after.items() if k != returned_id} == {release.pipeline.dt.date(2026, 12, 1)}

    again = await reconcile.import_returns(app_pool, code, csv_path)
    assert again.already_imported and again.import_id == outcome.import_id
    assert await _statuses(owner_conn, code, batch) == after
    other = write_returns_csv([ReturnRow(batch.payment_ids[0], "2", "取引なし")], tmp_path / "r2.csv")
    with pytest.raises(reconcile.ReconcileError, match="別の返却ファイル"):
        await reconcile.import_returns(app_pool, code, other, batch_id=batch.batch_id)


async def test_reissue_after_return_pays_once(owner_conn, app_pool, settings, municipality, tmp_path):
    """A corrected account becomes one new ready payment; a second re-issue or a second live payment is refused."""
    code, batch = await _released(owner_conn, app_pool, settings, municipality, tmp_path)
    returned_id = batch.payment_ids[0]
    csv_path = write_returns_csv([ReturnRow(returned_id, "2", "取引なし")], tmp_path / "r.csv")
    await reconcile.import_returns(app_pool, code, csv_path)
    account = reconcile.corrected_account(
        {
            "bank_code": "0005",
            "branch_code": "002",
            "account_type": "1",
            "account_number": "1234567",
            "holder_kana": "ヤマダ タロウ",
        }
    )
    # The one re-issue (payouts.reconcile.reissue), as the console's reconciliation screen calls it.
    clerk = Staff(batch.drafter, code, "drafter", "起案", ("reviewer", "drafter"))
    async with tenant_transaction(app_pool, code) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, code)
        with pytest.raises(Conflict, match="再連絡"):  # re-contact is recorded first
            await reconcile.reissue(conn, cipher, code, clerk, returned_id, account)
        await reconcile.mark_recontact(conn, code, clerk, returned_id, "電話で口座を確認")
        new_id = await reconcile.reissue(conn, cipher, code, clerk, returned_id, account)
        assert open_bank(
            cipher,
            await conn.fetchrow(
                "SELECT payment_id, bank_enc FROM payments WHERE municipality_code = $1 AND payment_id = $2",
                code,
                new_id,
            ),
        ) == ("1234567", "ﾔﾏﾀﾞ ﾀﾛｳ")
        with pytest.raises(Conflict, match="既に再発行"):
            await reconcile.reissue(conn, cipher, code, clerk, returned_id, account)
    # The database itself refuses a second live payment for the entitlement, whatever the code path.
    async with tenant_transaction(owner_conn, code) as conn:
        with pytest.raises(asyncpg.UniqueViolationError, match="payments_one_live"):
            await conn.execute(
                "INSERT INTO payments (municipality_code, entitlement_id, amount_yen, bank_code, branch_code,"
                " account_type,"
                " bank_enc) SELECT municipality_code, entitlement_id, amount_yen, bank_code,"
                " branch_code, account_type, bank_enc FROM payments"
                " WHERE municipality_code = $1 AND payment_id = $2",
                code,
                new_id,
            )
    statuses = await _statuses(owner_conn, code, batch)
    assert statuses[new_id][0] == "ready" and statuses[returned_id][0] == "returned"


async def test_returns_for_payments_outside_the_batch_are_refused(
    owner_conn, app_pool, settings, municipality, tmp_path
):
    code, batch = await _released(owner_conn, app_pool, settings, municipality, tmp_path)
    csv_path = write_returns_csv([ReturnRow(999_999_999, "9", "その他")], tmp_path / "r.csv")
    with pytest.raises(reconcile.ReconcileError, match="ありません"):
        await reconcile.import_returns(app_pool, code, csv_path, batch_id=batch.batch_id)


async def test_cli_simulate_and_import_returns(owner_conn, app_pool, settings, municipality, tmp_path, subprocess_env):
    """kyufu bank simulate → kyufu payouts import-returns, twice (the second is a no-op)."""
    code, batch = await _released(owner_conn, app_pool, settings, municipality, tmp_path)
    age_file = next((settings.outbox_path / code).glob("*.age"))
    out = tmp_path / "returns.csv"
    sim = run_cli(
        subprocess_env,
        "bank",
        "simulate",
        str(age_file),
        "--identity",
        str(batch.identity_path),
        "--out",
        str(out),
        "--share",
        "0.5",
        "--seed",
        "3",
    )
    assert sim.returncode == 0, sim.stderr
    first = run_cli(subprocess_env, "payouts", "import-returns", "--municipality", code, str(out))
    assert first.returncode == 0 and "振込不能 2 件" in first.stdout, first.stderr
    second = run_cli(subprocess_env, "payouts", "import-returns", "--municipality", code, str(out))
    assert second.returncode == 0 and "取込済み" in second.stdout

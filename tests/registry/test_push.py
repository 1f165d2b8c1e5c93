"""プッシュ型: notices for households with a known account, 辞退 before the deadline, settlement after it."""

from __future__ import annotations

import datetime as dt

import pytest

from app.registry.eligibility import determine_eligibility
from app.registry.errors import DeclineNotAllowed
from app.registry.imports import ACCOUNT_COLUMNS, import_accounts, import_residents
from app.registry.letters import export_letters, issue_letters
from app.registry.programs import create_program, parse_program
from app.registry.push import decline, settle_push
from app.tenancy.transaction import tenant_transaction
from tests.registry.helpers import create_application, person, residents_csv, simple_csv

DEADLINE = dt.date(2026, 5, 31)


async def test_push_payout_after_deadline_unless_declined(app_pool, code, cipher):
    a, b, c, d = (person(household_no=h) for h in "ABCD")
    accounts = [[p["resident_code"], "0005", "123", "1", f"000000{i}", "ﾔﾏﾀﾞ ﾀﾛｳ"] for i, p in enumerate((a, b, d))]
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv([a, b, c, d]))
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
        issued = {x.entitlement_id: x.kind for x in await issue_letters(conn, cipher, code, program_id, "test")}
        await export_letters(conn, cipher, code, program_id, "test")
        ents = {r["household_no"]: r["entitlement_id"] for r in await conn.fetch("SELECT * FROM entitlements")}
    assert {h: issued[e] for h, e in ents.items()} == {
        "A": "push_notice",
        "B": "push_notice",
        "C": "confirmation",
        "D": "push_notice",
    }

    async with tenant_transaction(app_pool, code) as conn:
        await decline(conn, code, ents["B"], today=DEADLINE)  # on the deadline: allowed
        # D applied online in the meantime: one claim per entitlement across channels.
        await create_application(conn, cipher, code, ents["D"], "ﾔﾏﾀﾞ ﾀﾛｳ", outbox_job=False)
        assert await settle_push(conn, cipher, code, program_id, today=DEADLINE) == 0  # not yet
    with pytest.raises(DeclineNotAllowed):
        async with tenant_transaction(app_pool, code) as conn:
            await decline(conn, code, ents["A"], today=DEADLINE + dt.timedelta(days=1))

    async with tenant_transaction(app_pool, code) as conn:
        assert await settle_push(conn, cipher, code, program_id, today=DEADLINE + dt.timedelta(days=1)) == 1
        assert await settle_push(conn, cipher, code, program_id, today=DEADLINE + dt.timedelta(days=2)) == 0
        apps = await conn.fetch("SELECT * FROM applications ORDER BY application_id")
        statuses = {
            r["household_no"]: r["status"] for r in await conn.fetch("SELECT household_no, status FROM entitlements")
        }
    push = [r for r in apps if r["channel"] == "push"]
    assert len(apps) == 2 and len(push) == 1
    app = push[0]
    assert (app["entitlement_id"], app["status"], app["applicant_resident_code"]) == (
        ents["A"],
        "verified",
        a["resident_code"],
    )
    assert (
        cipher.decrypt_str("applications", "account_number", app["application_id"], app["account_number_enc"])
        == "0000000"
    )
    assert statuses == {"A": "claimed", "B": "declined", "C": "open", "D": "open"}

"""Each municipality's bank settings (table municipality_bank_settings, migration 0006).

The staff console's admin screen calls `get_bank_settings` / `put_bank_settings`; the payout stage reads
them with `get_bank_settings` when it renders a batch. Call inside tenant_transaction(conn, code).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from payouts import sealing, zengin


class BankSettingsMissing(LookupError):
    """The municipality has not entered its bank settings yet: no file can be made."""

    def __init__(self) -> None:
        super().__init__("振込依頼人（自治体）の金融機関設定が登録されていません。管理画面で登録してください。")


@dataclass(frozen=True)
class StoredBankSettings:
    """The Zengin header settings plus what the stage needs beyond the file format."""

    bank: zengin.BankSettings
    age_recipients: tuple[str, ...]
    min_business_days_ahead: int = 2
    updated_by: int | None = field(default=None, compare=False)


GET = """
SELECT requester_code, requester_name_kana, bank_code, bank_name_kana, branch_code, branch_name_kana,
       account_type, account_number, separator, clearing_house_fill, transfer_designation, reference_field,
       allow_wo, age_recipients, min_business_days_ahead, updated_by
FROM municipality_bank_settings WHERE municipality_code = $1
"""
PUT = """
INSERT INTO municipality_bank_settings (municipality_code, requester_code, requester_name_kana, bank_code,
    bank_name_kana, branch_code, branch_name_kana, account_type, account_number, separator,
    clearing_house_fill, transfer_designation, reference_field, allow_wo, age_recipients,
    min_business_days_ahead, updated_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT (municipality_code) DO UPDATE SET
    requester_code = EXCLUDED.requester_code, requester_name_kana = EXCLUDED.requester_name_kana,
    bank_code = EXCLUDED.bank_code, bank_name_kana = EXCLUDED.bank_name_kana,
    branch_code = EXCLUDED.branch_code, branch_name_kana = EXCLUDED.branch_name_kana,
    account_type = EXCLUDED.account_type, account_number = EXCLUDED.account_number,
    separator = EXCLUDED.separator, clearing_house_fill = EXCLUDED.clearing_house_fill,
    transfer_designation = EXCLUDED.transfer_designation, reference_field = EXCLUDED.reference_field,
    allow_wo = EXCLUDED.allow_wo, age_recipients = EXCLUDED.age_recipients,
    min_business_days_ahead = EXCLUDED.min_business_days_ahead, updated_by = EXCLUDED.updated_by,
    updated_at = now()
"""


async def get_bank_settings(conn: asyncpg.Connection, code: str) -> StoredBankSettings:
    """The municipality's settings; BankSettingsMissing if none were entered."""
    row = await conn.fetchrow(GET, code)
    if row is None:
        raise BankSettingsMissing()
    bank = zengin.BankSettings(
        requester_code=row["requester_code"],
        requester_name_kana=row["requester_name_kana"],
        bank_code=row["bank_code"],
        bank_name_kana=row["bank_name_kana"],
        branch_code=row["branch_code"],
        branch_name_kana=row["branch_name_kana"],
        account_type=int(row["account_type"]),
        account_number=row["account_number"],
        separator=row["separator"],
        clearing_house_fill=row["clearing_house_fill"],
        transfer_designation=row["transfer_designation"],
        reference_field=row["reference_field"],
        allow_wo=row["allow_wo"],
    )
    return StoredBankSettings(bank, tuple(row["age_recipients"]), row["min_business_days_ahead"], row["updated_by"])


async def put_bank_settings(conn: asyncpg.Connection, code: str, settings: StoredBankSettings) -> None:
    """Insert or replace the settings. The values were already checked by zengin.BankSettings (on
    construction, Japanese message naming the field); the recipients are checked here, so a malformed
    key is refused before a release would discover it."""
    sealing.parse_recipients(list(settings.age_recipients))
    if type(settings.min_business_days_ahead) is not int or not 0 <= settings.min_business_days_ahead <= 30:
        raise ValueError("振込指定日の何営業日前までに起案するかは0〜30で指定してください。")
    b = settings.bank
    await conn.execute(
        PUT,
        code,
        b.requester_code,
        b.requester_name_kana,
        b.bank_code,
        b.bank_name_kana,
        b.branch_code,
        b.branch_name_kana,
        b.account_type,
        b.account_number,
        b.separator,
        b.clearing_house_fill,
        b.transfer_designation,
        b.reference_field,
        b.allow_wo,
        [r.strip() for r in settings.age_recipients],
        settings.min_business_days_ahead,
        settings.updated_by,
    )

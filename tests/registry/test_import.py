"""Registry imports: snapshots, set-wise validation with line reports, encodings, re-import no-op."""

from __future__ import annotations

import pytest

from app.registry.errors import ImportRejected
from app.registry.imports import ACCOUNT_COLUMNS, import_accounts, import_residents, import_tax
from app.tenancy.transaction import tenant_transaction
from tests.registry.helpers import person, residents_csv, simple_csv


async def _count(app_pool, code, table):
    async with tenant_transaction(app_pool, code) as conn:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")


async def test_import_publishes_a_snapshot_and_reimport_is_a_no_op(app_pool, code):
    rows = [person(household_no="1"), person(household_no="1", relationship="妻", given_name="花子", given_kana="ハナコ")]
    data = residents_csv(rows)
    async with tenant_transaction(app_pool, code) as conn:
        first = await import_residents(conn, code, data)
    assert (first.rows, first.already_imported) == (2, False)
    async with tenant_transaction(app_pool, code) as conn:
        again = await import_residents(conn, code, data)
        snap = await conn.fetchrow("SELECT status, row_count FROM registry_snapshots WHERE snapshot_id = $1", first.snapshot_id)
        wife = await conn.fetchrow("SELECT is_head, given_kana, birth_date::text FROM residents WHERE resident_code = $1",
                                   rows[1]["resident_code"])
    assert (again.snapshot_id, again.already_imported) == (first.snapshot_id, True)
    assert dict(snap) == {"status": "published", "row_count": 2}
    assert dict(wife) == {"is_head": False, "given_kana": "ハナコ", "birth_date": "1980-05-05"}
    assert await _count(app_pool, code, "residents") == 2
    assert await _count(app_pool, code, "registry_snapshots") == 1


@pytest.mark.parametrize("encoding", ["cp932", "utf-8-sig"])
async def test_cp932_and_bom_files_import_the_same_names(app_pool, code, encoding):
    row = person(family_name="髙橋", family_kana="タカハシ", given_name="ヴィオラ", given_kana="ヴィオラ",
                 address="東京都千代田区丸の内１－１")
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv([row], encoding))
        got = await conn.fetchrow("SELECT family_name, given_kana, address FROM residents")
    assert dict(got) == {"family_name": "髙橋", "given_kana": "ヴィオラ", "address": "東京都千代田区丸の内１－１"}


async def test_a_bad_file_is_rejected_whole_with_every_bad_line_and_no_values(app_pool, code):
    dup = person()
    rows = [
        person(),                                             # line 2: fine
        person(resident_code="1234567890"),                   # line 3: 10 digits
        person(birth_date="2020-02-30"),                      # line 4: impossible date
        person(relationship="恋人", is_head="0"),             # line 5: unknown 続柄
        person(family_kana="山田"),                           # line 6: kanji in the kana column
        dup,                                                  # line 7
        dict(dup, household_no="2"),                          # line 8: duplicate 住民票コード
        person(removed_on="2024-01-01"),                      # line 9: 消除日 without 消除事由
        person(household_no="3", relationship="妻"),         # line 10: fine (member)
        person(birth_date="19800505", moved_in_on="1979/01/01"),  # line 11: moved in before birth
    ]
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_residents(conn, code, residents_csv(rows))
    got = {(e.line, e.column, e.reason) for e in caught.value.errors}
    assert got == {
        (3, "住民票コード", "digits"), (4, "生年月日", "bad_date"), (5, "続柄", "unknown_relationship"),
        (6, "氏カナ", "not_katakana"), (8, "住民票コード", "duplicate"), (9, "消除事由", "removal_reason_missing"),
        (11, "住定日", "moved_in_before_birth"),
    }
    text = str(caught.value) + "".join(e.describe() for e in caught.value.errors)
    assert "1234567890" not in text and "山田" not in text and dup["resident_code"] not in text
    assert await _count(app_pool, code, "registry_snapshots") == 0
    assert await _count(app_pool, code, "residents") == 0


async def test_a_file_whose_only_fault_is_a_duplicate_code_is_rejected_with_its_line(app_pool, code):
    """Duplicates in an otherwise clean file are caught by the residents primary key during the publishing
    INSERT; the report is then built with the duplicate search and nothing is published."""
    first = person(household_no="1")
    rows = [first, person(household_no="2"), dict(first, household_no="3")]
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_residents(conn, code, residents_csv(rows))
    assert [(e.line, e.column, e.reason) for e in caught.value.errors] == [(4, "住民票コード", "duplicate")]
    assert await _count(app_pool, code, "residents") == 0


async def test_only_the_three_date_shapes_are_accepted(app_pool, code):
    good = [person(birth_date=v, moved_in_on="") for v in ("1980-05-05", "1980/05/05", "19800505")]
    bad = [person(birth_date=v, moved_in_on="") for v in ("1980-05/05", "1980-5-05", "1980.05.05", "１９８０-05-05",
                                                           "80-05-05", "1980-05-5x", "1980--0505", "198005050")]
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_residents(conn, code, residents_csv(good + bad))
    assert {(e.line, e.reason) for e in caught.value.errors} == {(n, "bad_date") for n in range(5, 5 + len(bad))}
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv(good))
        got = await conn.fetch("SELECT DISTINCT birth_date::text FROM residents")
    assert [r[0] for r in got] == ["1980-05-05"]


async def test_wrong_column_count_and_bad_header_are_reported(app_pool, code):
    good = residents_csv([person(), person()])
    lines = good.decode().split("\r\n")
    lines[2] = lines[2] + ",extra"
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_residents(conn, code, "\r\n".join(lines).encode())
    assert [(e.line, e.reason) for e in caught.value.errors] == [(3, "column_count")]
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_residents(conn, code, good.replace("続柄".encode(), "続き柄".encode(), 1))
    assert {(e.column, e.reason) for e in caught.value.errors} == {("続き柄", "unknown_column"), ("続柄", "missing_column")}


async def test_tax_import_maps_classes_and_rejects_unknown_ones(app_pool, code):
    header = ["世帯番号", "住民票コード", "課税区分"]
    ok = simple_csv(header, [["1", "", "非課税"], ["", "12345678901", "均等割のみ"], ["2", "", "課税"]], "cp932")
    async with tenant_transaction(app_pool, code) as conn:
        result = await import_tax(conn, code, 2026, ok)
        classes = [r[0] for r in await conn.fetch("SELECT tax_class FROM tax_statuses ORDER BY line_no")]
    assert result.rows == 3 and classes == ["exempt", "per_capita_only", "taxable"]
    bad = simple_csv(header, [["1", "12345678901", "非課税"], ["2", "", "免除"]])
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_tax(conn, code, 2026, bad)
    assert {(e.line, e.reason) for e in caught.value.errors} == {(2, "one_key"), (3, "bad_tax_class")}


async def test_registered_accounts_are_encrypted_per_resident(app_pool, code, cipher):
    header = [c.header for c in ACCOUNT_COLUMNS]
    data = simple_csv(header, [["12345678901", "0001", "002", "1", "7654321", "ヤマダ タロウ"]])
    async with tenant_transaction(app_pool, code) as conn:
        await import_accounts(conn, cipher, code, data)
        row = await conn.fetchrow("SELECT * FROM registered_accounts")
    assert b"7654321" not in row["account_number_enc"]
    assert cipher.decrypt_str("registered_accounts", "account_number", "12345678901", row["account_number_enc"]) == "7654321"
    assert cipher.decrypt_str("registered_accounts", "holder_kana", "12345678901", row["holder_kana_enc"]) == "ﾔﾏﾀﾞ ﾀﾛｳ"
    bad = simple_csv(header, [["12345678901", "01", "002", "3", "7654321", "山田"]])
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_accounts(conn, cipher, code, bad)
    assert {(e.column, e.reason) for e in caught.value.errors} == {
        ("金融機関コード", "digits"), ("預金種目", "bad_account_type"), ("口座名義カナ", "kana")}


async def test_residents_must_belong_to_an_existing_snapshot(app_pool, code):
    """The statement-level check that replaces the per-row foreign key still refuses orphans."""
    import asyncpg

    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(
                "INSERT INTO residents (municipality_code, snapshot_id, resident_code, household_no, relationship, is_head,"
                " family_name, given_name, family_kana, given_kana, birth_date, sex, address)"
                " VALUES ($1, 999999999, '12345678901', '1', '世帯主', true, 'a', 'b', 'ア', 'イ', '1980-01-01', '1', 'x')", code)


async def test_dates_are_checked_against_the_calendar(app_pool, code):
    async with tenant_transaction(app_pool, code) as conn:
        got = [await conn.fetchval("SELECT coalesce(kyufu_ymd_valid($1), false)", v)
               for v in (20240229, 20000229, 20231231, 20230229, 19000229, 20241301, 20240100, 20240431, None)]
    assert got == [True] * 3 + [False] * 6

"""Registry imports: snapshots, set-wise validation with line reports, encodings, re-import no-op."""

from __future__ import annotations

import pytest

from app.registry.errors import ImportRejected
from app.registry.imports import ACCOUNT_COLUMNS, RESIDENT_COLUMNS, _ymd, import_accounts, import_residents, import_tax
from app.tenancy.transaction import tenant_transaction
from tests.registry.helpers import person, residents_csv, simple_csv


async def _count(app_pool, code, table):
    async with tenant_transaction(app_pool, code) as conn:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")


async def test_import_publishes_a_snapshot_and_reimport_is_a_no_op(app_pool, code):
    rows = [
        person(household_no="1"),
        person(household_no="1", relationship="妻", given_name="花子", given_kana="ハナコ"),
    ]
    data = residents_csv(rows)
    async with tenant_transaction(app_pool, code) as conn:
        first = await import_residents(conn, code, data)
    assert (first.rows, first.already_imported) == (2, False)
    async with tenant_transaction(app_pool, code) as conn:
        again = await import_residents(conn, code, data)
        snap = await conn.fetchrow(
            "SELECT status, row_count FROM registry_snapshots WHERE snapshot_id = $1", first.snapshot_id
        )
        wife = await conn.fetchrow(
            "SELECT is_head, given_kana, birth_date::text FROM residents WHERE resident_code = $1",
            rows[1]["resident_code"],
        )
    assert (again.snapshot_id, again.already_imported) == (first.snapshot_id, True)
    assert dict(snap) == {"status": "published", "row_count": 2}
    assert dict(wife) == {"is_head": False, "given_kana": "ハナコ", "birth_date": "1980-05-05"}
    assert await _count(app_pool, code, "residents") == 2
    assert await _count(app_pool, code, "registry_snapshots") == 1


@pytest.mark.parametrize("encoding", ["cp932", "utf-8-sig"])
async def test_cp932_and_bom_files_import_the_same_names(app_pool, code, encoding):
    row = person(
        family_name="髙橋",
        family_kana="タカハシ",
        given_name="ヴィオラ",
        given_kana="ヴィオラ",
        address="東京都千代田区丸の内１－１",
    )
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, residents_csv([row], encoding))
        got = await conn.fetchrow("SELECT family_name, given_kana, address FROM residents")
    assert dict(got) == {"family_name": "髙橋", "given_kana": "ヴィオラ", "address": "東京都千代田区丸の内１－１"}


async def test_a_bad_file_is_rejected_whole_with_every_bad_line_and_no_values(app_pool, code):
    dup = person()
    rows = [
        person(),  # line 2: fine
        person(resident_code="1234567890"),  # line 3: 10 digits
        person(birth_date="2020-02-30"),  # line 4: impossible date
        person(relationship="恋人", is_head="0"),  # line 5: unknown 続柄
        person(family_kana="山田"),  # line 6: kanji in the kana column
        dup,  # line 7
        dict(dup, household_no="2"),  # line 8: duplicate 住民票コード
        person(removed_on="2024-01-01"),  # line 9: 消除日 without 消除事由
        person(household_no="3", relationship="妻"),  # line 10: fine (member)
        person(birth_date="19800505", moved_in_on="1979/01/01"),  # line 11: moved in before birth
    ]
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_residents(conn, code, residents_csv(rows))
    got = {(e.line, e.column, e.reason) for e in caught.value.errors}
    assert got == {
        (3, "住民票コード", "digits"),
        (4, "生年月日", "bad_date"),
        (5, "続柄", "unknown_relationship"),
        (6, "氏カナ", "not_katakana"),
        (8, "住民票コード", "duplicate"),
        (9, "消除事由", "removal_reason_missing"),
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
    bad = [
        person(birth_date=v, moved_in_on="")
        for v in (
            "1980-05/05",
            "1980-5-05",
            "1980.05.05",
            "１９８０-05-05",
            "80-05-05",
            "1980-05-5x",
            "1980--0505",
            "198005050",
        )
    ]
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
    assert {(e.column, e.reason) for e in caught.value.errors} == {
        ("続き柄", "unknown_column"),
        ("続柄", "missing_column"),
    }


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
    assert (
        cipher.decrypt_str("registered_accounts", "account_number", "12345678901", row["account_number_enc"])
        == "7654321"
    )
    assert cipher.decrypt_str("registered_accounts", "holder_kana", "12345678901", row["holder_kana_enc"]) == "ﾔﾏﾀﾞ ﾀﾛｳ"
    bad = simple_csv(header, [["12345678901", "01", "002", "3", "7654321", "山田"]])
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_accounts(conn, cipher, code, bad)
    assert {(e.column, e.reason) for e in caught.value.errors} == {
        ("金融機関コード", "digits"),
        ("預金種目", "bad_account_type"),
        ("口座名義カナ", "kana"),
    }


async def test_residents_must_belong_to_an_existing_snapshot(app_pool, code):
    """The statement-level check that replaces the per-row foreign key still refuses orphans."""
    import asyncpg

    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(
                "INSERT INTO residents (municipality_code, snapshot_id, resident_code, household_no, relationship,"
                " is_head, family_name, given_name, family_kana, given_kana, birth_date, sex, address)"
                " VALUES ($1, 999999999, '12345678901', '1', '世帯主', true, 'a', 'b', 'ア', 'イ', '1980-01-01',"
                " '1', 'x')",
                code,
            )


async def test_dates_are_checked_against_the_calendar(app_pool, code):
    async with tenant_transaction(app_pool, code) as conn:
        got = [
            await conn.fetchval("SELECT coalesce(kyufu_ymd_valid($1), false)", v)
            for v in (20240229, 20000229, 20231231, 20230229, 19000229, 20241301, 20240100, 20240431, None)
        ]
    assert got == [True] * 3 + [False] * 6


# One fault per line, each with the one (column, reason) the report must give. A residents file is loaded
# through the partition's CHECK constraints (0011) and only a rejected one is read again for the report,
# so each case proves both halves agree: a rule missing from the constraints would let the file import,
# and one the report lacks would end in a rejection without lines.
SINGLE_FAULTS = [
    (dict(resident_code=""), "住民票コード", "required"),
    (dict(resident_code="1234567890a"), "住民票コード", "digits"),
    (dict(household_no=""), "世帯番号", "required"),
    (dict(household_no="H_1"), "世帯番号", "digits"),
    (dict(household_no="1" * 21), "世帯番号", "digits"),
    (dict(relationship="", is_head="0"), "続柄", "required"),
    (dict(relationship="恋人", is_head="0"), "続柄", "unknown_relationship"),
    (dict(is_head="true"), "世帯主", "bad_flag"),
    (dict(is_head=""), "世帯主", "bad_flag"),
    (dict(is_head="0"), "世帯主", "head_mismatch"),
    (dict(family_name=""), "氏", "required"),
    (dict(given_name="名" * 51), "名", "too_long"),
    (dict(family_kana="やまだ"), "氏カナ", "not_katakana"),
    (dict(given_kana="ﾀﾛｳ"), "名カナ", "not_katakana"),
    (dict(given_kana="タ" * 51), "名カナ", "too_long"),
    (dict(birth_date=""), "生年月日", "required"),
    (dict(birth_date="1980-5-05", moved_in_on=""), "生年月日", "bad_date"),
    (dict(birth_date="1980.05.05", moved_in_on=""), "生年月日", "bad_date"),
    (dict(birth_date=" 9800505", moved_in_on=""), "生年月日", "bad_date"),
    (dict(birth_date="1980-05/05", moved_in_on=""), "生年月日", "bad_date"),
    (dict(birth_date="19800230", moved_in_on=""), "生年月日", "bad_date"),
    (dict(birth_date="00000101", moved_in_on=""), "生年月日", "bad_date"),
    (dict(sex="3"), "性別", "bad_sex"),
    (dict(address=""), "住所", "required"),
    (dict(address="町" * 201), "住所", "too_long"),
    (dict(moved_in_on="2000-13-01"), "住定日", "bad_date"),
    (dict(moved_in_on="1979-12-31"), "住定日", "moved_in_before_birth"),
    (dict(removed_on="2001/02/30", removal_reason="転出"), "消除日", "bad_date"),
    (dict(removed_on="1999-12-31", removal_reason="転出"), "消除日", "removed_before_moved_in"),
    (dict(removed_on="2024-01-01"), "消除事由", "removal_reason_missing"),
    (dict(removal_reason="転出"), "消除事由", "removal_without_date"),
    (dict(removed_on="2024-01-01", removal_reason="引越"), "消除事由", "unknown_removal_reason"),
    (dict(prev_household_no="9"), "前世帯番号", "household_change_pair"),
    (dict(prev_household_no="9*", household_changed_on="2026-05-01"), "前世帯番号", "digits"),
    (dict(prev_household_no="9", household_changed_on="2026-02-30"), "世帯変更日", "bad_date"),
]


@pytest.mark.parametrize(
    ("fault", "column", "reason"), SINGLE_FAULTS, ids=[f"{c}-{r}-{i}" for i, (_, c, r) in enumerate(SINGLE_FAULTS)]
)
async def test_each_line_rule_rejects_the_file_with_that_line(app_pool, code, fault, column, reason):
    rows = [person(), person(**fault), person()]
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_residents(conn, code, residents_csv(rows))
    assert [(e.line, e.column, e.reason) for e in caught.value.errors] == [(3, column, reason)]
    assert await _count(app_pool, code, "residents") == 0


async def test_two_current_heads_of_one_household_are_reported(app_pool, code):
    """The one rule across lines besides the primary key (kyufu_residents_publish checks it on the partition)."""
    rows = [
        person(household_no="7"),
        person(household_no="8"),
        person(household_no="7"),
        person(household_no="8", removed_on="2024-01-01", removal_reason="死亡"),
    ]
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_residents(conn, code, residents_csv(rows))
    assert {(e.line, e.reason) for e in caught.value.errors} == {(2, "multiple_heads"), (4, "multiple_heads")}


async def test_empty_and_quoted_empty_optional_values_are_stored_as_null(app_pool, code):
    """A value left empty, quoted ("") or not, and an optional column missing from the header, are NULL;
    the three date shapes give the same day; every column keeps its value."""
    mover = person(
        household_no="10",
        relationship="子",
        given_name="一郎",
        given_kana="イチロウ",
        birth_date="20000102",
        moved_in_on="2000/01/02",
        removed_on="2024-03-31",
        removal_reason="転出",
        prev_household_no="9",
        household_changed_on="2025-04-01",
    )
    head = person(household_no="10", birth_date="1970/01/01")
    data = residents_csv([head, mover]).decode().split("\r\n")
    data[1] = data[1].replace(",,,,", ',"","","",""')  # the head's four trailing optional values
    async with tenant_transaction(app_pool, code) as conn:
        await import_residents(conn, code, "\r\n".join(data).encode())
        got = {
            r["resident_code"]: dict(r)
            for r in await conn.fetch(
                "SELECT resident_code, household_no, relationship, is_head, family_name, given_name, family_kana,"
                " given_kana, birth_date::text, sex, address, moved_in_on::text, removed_on::text, removal_reason,"
                " prev_household_no, household_changed_on::text FROM residents"
            )
        }
    assert got[head["resident_code"]] == dict(
        resident_code=head["resident_code"],
        household_no="10",
        relationship="世帯主",
        is_head=True,
        family_name="山田",
        given_name="太郎",
        family_kana="ヤマダ",
        given_kana="タロウ",
        birth_date="1970-01-01",
        sex="1",
        address="東京都千代田区1-1",
        moved_in_on="2000-01-01",
        removed_on=None,
        removal_reason=None,
        prev_household_no=None,
        household_changed_on=None,
    )
    assert got[mover["resident_code"]] == dict(
        resident_code=mover["resident_code"],
        household_no="10",
        relationship="子",
        is_head=False,
        family_name="山田",
        given_name="一郎",
        family_kana="ヤマダ",
        given_kana="イチロウ",
        birth_date="2000-01-02",
        sex="1",
        address="東京都千代田区1-1",
        moved_in_on="2000-01-02",
        removed_on="2024-03-31",
        removal_reason="転出",
        prev_household_no="9",
        household_changed_on="2025-04-01",
    )
    without_optional = simple_csv(
        [c.header for c in RESIDENT_COLUMNS if c.required],
        [[person(household_no="11")[c.name] for c in RESIDENT_COLUMNS if c.required]],
    )
    async with tenant_transaction(app_pool, code) as conn:
        assert (await import_residents(conn, code, without_optional)).rows == 1
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM residents WHERE household_no = '11'"
                " AND prev_household_no IS NULL AND household_changed_on IS NULL"
            )
            == 1
        )


async def test_the_partitions_date_parse_agrees_with_the_report_and_never_raises(owner_conn):
    """kyufu_load_date_sql (the generated date columns of a load) against _ymd + kyufu_ymd_valid (the report):
    the same verdict for every day of 1999-2001 in all three shapes and for impossible or malformed ones, and
    NULL instead of an error (an error during the COPY would log the row)."""
    load = await owner_conn.fetchval("SELECT kyufu_load_date_sql('v')")
    report = _ymd("v").replace("s.v", "v")
    candidates = """
        SELECT to_char(d, f) AS v FROM generate_series(date '1999-01-01', date '2001-12-31', interval '1 day') d,
               unnest(ARRAY['YYYY-MM-DD', 'YYYY/MM/DD', 'YYYYMMDD']) f
        UNION ALL SELECT format('%s%s%s%s%s', lpad(y::text, 4, '0'), sep, lpad(m::text, 2, '0'), sep,
                                lpad(dd::text, 2, '0'))
        FROM unnest(ARRAY[0, 1, 1900, 2000, 2023, 2024]) y, generate_series(0, 13) m, generate_series(0, 32) dd,
             unnest(ARRAY['', '-', '/']) sep
        UNION ALL SELECT unnest(ARRAY['1980-05/05', '1980-5-05', '1980.05.05', ' 9800505', '+9800505', '0x989745',
                                      '1_980505', '1980-05-5x', '1980--0505', '198005050', '', '１９８０-05-05'])
    """
    disagreements = await owner_conn.fetch(f"""
        SELECT v FROM ({candidates}) c
        WHERE (({load}) IS NOT NULL) IS DISTINCT FROM coalesce(kyufu_ymd_valid({report}), false)
           OR ({load}) IS DISTINCT FROM (SELECT CASE WHEN kyufu_ymd_valid(n)
                                                     THEN make_date(n / 10000, n / 100 % 100, n % 100) END
                                        FROM (SELECT {report} AS n) r)
    """)
    assert [r["v"] for r in disagreements] == []


@pytest.mark.parametrize("encoding", ["utf-8", "cp932"])
async def test_reports_name_the_files_physical_lines_after_a_quoted_line_break(app_pool, code, encoding):
    """An address over two lines (a quoted line break, which COPY and csv take as one record): the lines
    reported after it are the lines a clerk's editor shows, not the record numbers."""
    rows = [
        person(address="東京都千代田区\n丸の内１－１"),  # lines 2-3
        person(resident_code="1234567890"),  # line 4 (record 3)
        person(address='"コーポ""青葉""\r\n２０１号'),  # lines 5-6, doubled quotes and CRLF inside
        person(birth_date="2020-02-30"),  # line 7 (record 5)
    ]
    data = residents_csv(rows, encoding)
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_residents(conn, code, data)
    assert {(e.line, e.column, e.reason) for e in caught.value.errors} == {
        (4, "住民票コード", "digits"),
        (7, "生年月日", "bad_date"),
    }
    lines = data.decode(encoding).splitlines()  # as an editor breaks them: CRLF, LF, CR
    assert "1234567890" in lines[4 - 1] and "2020-02-30" in lines[7 - 1]

    # A line COPY cannot split (one field too many), after the same two-line address.
    broken = residents_csv(rows[:1] + [person()], encoding).decode(encoding).split("\r\n")  # the LF stays inside
    broken[2] += ",extra"  # the second record, on line 4
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_residents(conn, code, "\r\n".join(broken).encode(encoding))
    assert [(e.line, e.reason) for e in caught.value.errors] == [(4, "column_count")]
    assert await _count(app_pool, code, "residents") == 0


async def test_account_reports_name_physical_lines_too(app_pool, code, cipher):
    header = [c.header for c in ACCOUNT_COLUMNS]
    rows = [
        ["12345678901", "0001", "001", "1", "1234567", "ヤマダ タロウ"],
        ["12345678902", "0001", "001", "1", "1234567", "ヤマダ\nハナコ"],  # lines 3-4
        ["12345678903", "001", "001", "1", "1234567", "ヤマダ ジロウ"],
    ]  # line 5 (record 4)
    with pytest.raises(ImportRejected) as caught:
        async with tenant_transaction(app_pool, code) as conn:
            await import_accounts(conn, cipher, code, simple_csv(header, rows))
    assert {(e.line, e.column) for e in caught.value.errors} == {(3, "口座名義カナ"), (5, "金融機関コード")}

"""The typed import path (migrations/0012, app/registry/residentcsv.py): the same residents rows as the text
path, the same isolation, the same no-op re-import, and the text path with its report whenever the
encoder declines a file or a rule turns out broken at publish.

Until app/registry/_residentcsv.c is built these tests stand tests/registry/binary_copy.py (format only,
no validation) in for it; the comparison with the text path also runs with the C encoder when it exists.
"""

from __future__ import annotations

import pytest

from app.registry import imports, residentcsv
from app.registry.errors import ImportRejected
from app.registry.imports import import_residents
from app.registry.synthetic import generate
from app.tenancy.transaction import tenant_transaction
from tests.registry import binary_copy
from tests.registry.helpers import person, residents_csv

ROWS = """
SELECT resident_code, household_no, relationship, is_head, family_name, given_name, family_kana, given_kana,
       birth_date, sex, address, moved_in_on, removed_on, removal_reason, prev_household_no, household_changed_on
FROM residents WHERE snapshot_id = $1 ORDER BY resident_code
"""


@pytest.fixture
def loaded_typed(monkeypatch):
    """The row counts of the typed loads that were published (not refused and redone on the text path)."""
    done = []
    real = imports._load_typed

    async def spy(*args):
        done.append(await real(*args))
        return done[-1]

    monkeypatch.setattr(imports, "_load_typed", spy)
    return done


@pytest.fixture
def typed(monkeypatch):
    """Route imports through the typed path with the Python stand-in; records what took it."""
    calls = []

    def encode(body, columns, relationships, removal_reasons):
        assert (tuple(relationships), tuple(removal_reasons)) == (tuple(imports.RELATIONSHIPS),
                                                                  tuple(imports.REMOVAL_REASONS))
        calls.append(len(body))
        return binary_copy.encode(body, columns, relationships, removal_reasons)

    monkeypatch.setattr(residentcsv, "encode", encode)
    return calls


@pytest.fixture
def text_only(monkeypatch):
    """The encoder declines every file (as without the C module): the text path of 0011."""
    calls = []

    def encode(*args):
        calls.append(1)
        return None

    monkeypatch.setattr(residentcsv, "encode", encode)
    return calls


async def _import(app_pool, code, data):
    async with tenant_transaction(app_pool, code) as conn:
        return await import_residents(conn, code, data)


async def _rows(app_pool, code, snapshot_id):
    async with tenant_transaction(app_pool, code) as conn:
        return [tuple(r) for r in await conn.fetch(ROWS, snapshot_id)]


@pytest.mark.parametrize("encoder", ["python", "c"])
async def test_the_typed_path_stores_exactly_what_the_text_path_stores(app_pool, municipality, monkeypatch, encoder,
                                                                       loaded_typed):
    files = generate(300, seed=12)
    # Plus the other date shapes, a quoted empty value, a household change and an unusual name.
    extra = [person(household_no="X1", birth_date="19700101", moved_in_on="2001/02/03", family_name="髙橋",
                    given_kana="ヴィオラ", prev_household_no="X0", household_changed_on="20250401"),
             person(household_no="X1", relationship="子", birth_date="2000/02/29", moved_in_on="",
                    removed_on="2024-03-31", removal_reason="死亡", address="東京都千代田区丸の内１－１")]
    data = files.residents_csv + residents_csv(extra).split(b"\r\n", 1)[1].replace(b",,2024-03-31", b',"",2024-03-31')
    total = files.residents + len(extra)
    a, b = await municipality(), await municipality()
    calls = []
    if encoder == "c":
        if not residentcsv.available():
            pytest.skip("app.registry._residentcsv is not built")
        real = residentcsv.encode

        def spy(*args):
            payload = real(*args)
            calls.append(payload is not None)
            return payload
        monkeypatch.setattr(residentcsv, "encode", spy)
    else:
        monkeypatch.setattr(residentcsv, "encode", lambda *args: calls.append(True) or binary_copy.encode(*args))
    typed_result = await _import(app_pool, a, data)
    assert calls == [True] and loaded_typed == [total]
    monkeypatch.setattr(residentcsv, "encode", lambda *args: None)
    text_result = await _import(app_pool, b, data)
    assert typed_result.rows == text_result.rows == total
    typed_rows = await _rows(app_pool, a, typed_result.snapshot_id)
    assert len(typed_rows) == total and b',"",2024-03-31' in data
    assert typed_rows == await _rows(app_pool, b, text_result.snapshot_id)
    # Optional values and removals occur in the sample (else the comparison would prove less).
    assert any(r[12] is not None for r in typed_rows) and any(r[14] is not None for r in typed_rows)


async def test_a_typed_reimport_is_a_no_op(app_pool, code, typed, loaded_typed):
    data = residents_csv([person(household_no="1"), person(household_no="1", relationship="子")])
    first = await _import(app_pool, code, data)
    again = await _import(app_pool, code, data)
    assert len(typed) == 1 and loaded_typed == [2]               # the second never reached the encoder
    assert (again.snapshot_id, again.rows, again.already_imported) == (first.snapshot_id, 2, True)
    async with tenant_transaction(app_pool, code) as conn:
        assert await conn.fetchval("SELECT count(*) FROM residents") == 2
        assert await conn.fetchval("SELECT count(*) FROM registry_snapshots") == 1


async def test_cp932_files_never_reach_the_encoder(app_pool, code, typed):
    await _import(app_pool, code, residents_csv([person(family_name="髙橋")], "cp932"))
    assert typed == []


async def test_a_declined_file_takes_the_text_path_and_gets_its_full_report(app_pool, code, text_only):
    dup = person()
    rows = [person(), person(resident_code="1234567890"), person(birth_date="2020-02-30"), dup,
            dict(dup, household_no="2"), person(sex="0")]
    with pytest.raises(ImportRejected) as caught:
        await _import(app_pool, code, residents_csv(rows))
    assert text_only == [1]
    assert {(e.line, e.column, e.reason) for e in caught.value.errors} == {
        (3, "住民票コード", "digits"), (4, "生年月日", "bad_date"), (6, "住民票コード", "duplicate"),
        (7, "性別", "bad_sex")}


async def test_two_current_heads_are_left_to_the_encoder(app_pool, code, typed, loaded_typed):
    """kyufu_residents_publish_typed does not look for two current heads (0012: the encoder guarantees it, and
    the check costs a third of a bare COPY): what the encoder lets through is published as it is."""
    first = person()
    await _import(app_pool, code, residents_csv([first, person(household_no=first["household_no"])]))
    assert loaded_typed == [2]


@pytest.mark.parametrize(("rows", "expected"), [
    # What the C encoder would never accept, forced through the typed load by the unvalidating stand-in:
    # publish refuses it and the text path reports it.
    (lambda first: [first, dict(first, household_no="2")], {(3, "住民票コード", "duplicate")}),
    (lambda first: [first, person(sex="0")], {(3, "性別", "bad_sex")}),
    (lambda first: [first, person(is_head="0")], {(3, "世帯主", "head_mismatch")}),
    (lambda first: [first, person(removed_on="2024-01-01")], {(3, "消除事由", "removal_reason_missing")}),
    (lambda first: [first, person(birth_date="1990-01-01", moved_in_on="1989-01-01")],
     {(3, "住定日", "moved_in_before_birth")}),
], ids=["duplicate", "parent_check", "head_flag", "removal_pair", "moved_in"])
async def test_a_rule_broken_at_typed_publish_falls_back_to_the_report(app_pool, code, typed, loaded_typed, rows,
                                                                       expected):
    with pytest.raises(ImportRejected) as caught:
        await _import(app_pool, code, residents_csv(rows(person())))
    assert len(typed) == 1 and loaded_typed == []
    assert {(e.line, e.column, e.reason) for e in caught.value.errors} == expected
    async with tenant_transaction(app_pool, code) as conn:
        assert await conn.fetchval("SELECT count(*) FROM residents") == 0
        assert await conn.fetchval("SELECT count(*) FROM registry_snapshots") == 0


async def test_typed_publish_leaves_no_resident_data_in_the_server_log(app_pool, servers, code, typed):
    """tests/registry/test_partitions.py's log test, for the typed load: nothing fails during the binary COPY,
    and kyufu_residents_publish_typed re-raises a broken rule without the row."""
    if servers.embedded is None:
        pytest.skip("the server log of an external DATABASE_URL is not readable here")
    log = servers.embedded.pgdata / "server.log"
    start = log.stat().st_size
    marker = "トクメイ" + "ハナエ"                                # appears in no other test
    first = person(given_kana=marker)
    for rows in ([first, dict(first, household_no="2")],                                        # a duplicate code
                 [first, person(given_kana=marker, sex="0")],                                   # the parent's CHECK
                 [first, person(given_kana=marker, family_name="")],                            # a NOT NULL / rule
                 [first, person(given_kana=marker, removed_on="2024-01-01")]):                  # 消除事由 missing
        with pytest.raises(ImportRejected):
            await _import(app_pool, code, residents_csv(rows))
    with open(log, "rb") as fh:
        fh.seek(start)
        written = fh.read().decode("utf-8", "replace")
    assert marker not in written and first["resident_code"] not in written
    assert "breaks a line rule" in written


@pytest.mark.parametrize("damage", [
    lambda payload: payload[:-12],                                            # ends inside a row
    lambda payload: payload[:19] + b"\x00\x0f" + payload[21:],                # a row of 15 fields
    lambda payload: payload.replace("タロウ".encode(), b"\xe3\x82\x3f\x3f\x3f\x3f\x3f\x3f\x3f", 1),  # not UTF-8
])
async def test_a_payload_postgresql_cannot_read_falls_back_to_the_text_path(app_pool, code, monkeypatch, damage,
                                                                            loaded_typed):
    """An encoder bug must not refuse a good file: the text path (the reference) loads it instead."""
    monkeypatch.setattr(residentcsv, "encode", lambda *args: damage(binary_copy.encode(*args)))
    rows = [person(household_no="1"), person(household_no="1", relationship="子"), person()]
    result = await _import(app_pool, code, residents_csv(rows))
    assert result.rows == 3 and loaded_typed == []
    assert sorted(r[0] for r in await _rows(app_pool, code, result.snapshot_id)) == sorted(r["resident_code"] for r in rows)

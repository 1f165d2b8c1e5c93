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
from app.tenancy.transaction import tenant_transaction
from devtools.synthetic import generate
from tests.registry import binary_copy
from tests.registry.helpers import ServerLog, person, residents_csv

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
        assert (tuple(relationships), tuple(removal_reasons)) == (
            tuple(imports.RELATIONSHIPS),
            tuple(imports.REMOVAL_REASONS),
        )
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
async def test_the_typed_path_stores_exactly_what_the_text_path_stores(
    app_pool, municipality, monkeypatch, encoder, loaded_typed
):
    files = generate(300, seed=12)
    # Plus the other date shapes, a quoted empty value, a household change and an unusual name.
    extra = [
        person(
            household_no="X1",
            birth_date="19700101",
            moved_in_on="2001/02/03",
            family_name="髙橋",
            given_kana="ヴィオラ",
            prev_household_no="X0",
            household_changed_on="20250401",
        ),
        person(
            household_no="X1",
            relationship="子",
            birth_date="2000/02/29",
            moved_in_on="",
            removed_on="2024-03-31",
            removal_reason="死亡",
            address="東京都千代田区丸の内１－１",
        ),
    ]
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
    assert len(typed) == 1 and loaded_typed == [2]  # the second never reached the encoder
    assert (again.snapshot_id, again.rows, again.already_imported) == (first.snapshot_id, 2, True)
    async with tenant_transaction(app_pool, code) as conn:
        assert await conn.fetchval("SELECT count(*) FROM residents") == 2
        assert await conn.fetchval("SELECT count(*) FROM registry_snapshots") == 1


async def test_cp932_files_never_reach_the_encoder(app_pool, code, typed):
    await _import(app_pool, code, residents_csv([person(family_name="髙橋")], "cp932"))
    assert typed == []


async def test_a_declined_file_takes_the_text_path_and_gets_its_full_report(app_pool, code, text_only):
    dup = person()
    rows = [
        person(),
        person(resident_code="1234567890"),
        person(birth_date="2020-02-30"),
        dup,
        dict(dup, household_no="2"),
        person(sex="0"),
    ]
    with pytest.raises(ImportRejected) as caught:
        await _import(app_pool, code, residents_csv(rows))
    assert text_only == [1]
    assert {(e.line, e.column, e.reason) for e in caught.value.errors} == {
        (3, "住民票コード", "digits"),
        (4, "生年月日", "bad_date"),
        (6, "住民票コード", "duplicate"),
        (7, "性別", "bad_sex"),
    }


async def test_two_current_heads_are_left_to_the_encoder(app_pool, code, typed, loaded_typed):
    """kyufu_residents_publish (typed load) does not look for two current heads (0011: the encoder guarantees it, and
    the check costs a third of a bare COPY): what the encoder lets through is published as it is."""
    first = person()
    await _import(app_pool, code, residents_csv([first, person(household_no=first["household_no"])]))
    assert loaded_typed == [2]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # What the C encoder would never accept, forced through the typed load by the unvalidating stand-in:
        # publish refuses it and the text path reports it.
        (lambda first: [first, dict(first, household_no="2")], {(3, "住民票コード", "duplicate")}),
        (lambda first: [first, person(sex="0")], {(3, "性別", "bad_sex")}),
        (lambda first: [first, person(is_head="0")], {(3, "世帯主", "head_mismatch")}),
        (lambda first: [first, person(removed_on="2024-01-01")], {(3, "消除事由", "removal_reason_missing")}),
        (
            lambda first: [first, person(birth_date="1990-01-01", moved_in_on="1989-01-01")],
            {(3, "住定日", "moved_in_before_birth")},
        ),
    ],
    ids=["duplicate", "parent_check", "head_flag", "removal_pair", "moved_in"],
)
async def test_a_rule_broken_at_typed_publish_falls_back_to_the_report(
    app_pool, code, typed, loaded_typed, rows, expected
):
    with pytest.raises(ImportRejected) as caught:
        await _import(app_pool, code, residents_csv(rows(person())))
    assert len(typed) == 1 and loaded_typed == []
    assert {(e.line, e.column, e.reason) for e in caught.value.errors} == expected
    async with tenant_transaction(app_pool, code) as conn:
        assert await conn.fetchval("SELECT count(*) FROM residents") == 0
        assert await conn.fetchval("SELECT count(*) FROM registry_snapshots") == 0


async def test_typed_publish_leaves_no_resident_data_in_the_server_log(app_pool, servers, code, typed):
    """tests/registry/test_partitions.py's log test, for the typed load: nothing fails during the binary COPY,
    and kyufu_residents_publish (typed load) re-raises a broken rule without the row."""
    log = ServerLog(servers)
    marker = "トクメイ" + "ハナエ"  # appears in no other test
    first = person(given_kana=marker)
    for rows in (
        [first, dict(first, household_no="2")],  # a duplicate code
        [first, person(given_kana=marker, sex="0")],  # the parent's CHECK
        [first, person(given_kana=marker, family_name="")],  # a NOT NULL / rule
        [first, person(given_kana=marker, removed_on="2024-01-01")],
    ):  # 消除事由 missing
        with pytest.raises(ImportRejected):
            await _import(app_pool, code, residents_csv(rows))
    written = log.written()
    assert marker not in written and first["resident_code"] not in written
    assert "breaks a line rule" in written


@pytest.mark.parametrize(
    "damage",
    [
        lambda payload: payload[:-12],  # ends inside a row
        lambda payload: payload[:19] + b"\x00\x0f" + payload[21:],  # a row of 15 fields
        lambda payload: payload.replace("タロウ".encode(), b"\xe3\x82\x3f\x3f\x3f\x3f\x3f\x3f\x3f", 1),  # not UTF-8
    ],
)
async def test_a_payload_postgresql_cannot_read_falls_back_to_the_text_path(
    app_pool, code, monkeypatch, damage, loaded_typed
):
    """An encoder bug must not refuse a good file: the text path (the reference) loads it instead."""
    monkeypatch.setattr(residentcsv, "encode", lambda *args: damage(binary_copy.encode(*args)))
    rows = [person(household_no="1"), person(household_no="1", relationship="子"), person()]
    result = await _import(app_pool, code, residents_csv(rows))
    assert result.rows == 3 and loaded_typed == []
    assert sorted(r[0] for r in await _rows(app_pool, code, result.snapshot_id)) == sorted(
        r["resident_code"] for r in rows
    )


# --- the C encoder against the text path, file by file --------------------------------------------------
# Soundness: whenever the encoder returns rows, the text path (the reference: COPY csv, 0011's generated
# columns and CHECKs, two current heads, the primary key) accepts the same file and stores exactly those
# rows. Corner files of the CSV reading, the date shapes, the character classes and the pairings, in several
# file shapes (quoting, line ending, BOM, column order, optional columns absent), then seeded random ones.

_HEADERS = {c.name: c.header for c in imports.RESIDENT_COLUMNS}
_NAMES = [c.name for c in imports.RESIDENT_COLUMNS]


def _shaped(rows, cols=_NAMES, quoted=frozenset(), eol="\r\n", bom=False) -> bytes:
    """A residents file written by hand: `quoted` names columns (or (column, 住民票コード) pairs) written
    quoted, every other value verbatim (a value with a delimiter, quote or line break then breaks the line)."""

    def cell(r, c):
        v = r[c]
        return '"' + v.replace('"', '""') + '"' if c in quoted or (c, r["resident_code"]) in quoted else v

    lines = [",".join(_HEADERS[c] for c in cols)] + [",".join(cell(r, c) for c in cols) for r in rows]
    return (b"\xef\xbb\xbf" if bom else b"") + (eol.join(lines) + eol).encode()


def _c_rows(data: bytes):
    """The C encoder's rows for a file (None: declined or the header refused), decoded."""
    from tests.registry.test_residentcsv import decode

    try:
        body = imports.read_header(data, imports.RESIDENT_COLUMNS)
    except ImportRejected:
        return None
    payload = residentcsv.encode(
        memoryview(data)[body.body_offset :], body.columns, imports.RELATIONSHIPS, imports.REMOVAL_REASONS
    )
    return None if payload is None else decode(payload)


async def _text_path_rows(app_pool, municipality, monkeypatch, data: bytes):
    """The rows the text path stores for a file in a fresh municipality, or None if it refuses the file."""
    code = await municipality()
    with monkeypatch.context() as m:
        m.setattr(residentcsv, "encode", lambda *args: None)
        try:
            result = await _import(app_pool, code, data)
        except imports.RegistryError:  # ImportRejected, or a refusal the report could not place
            return None
    return await _rows(app_pool, code, result.snapshot_id)


def _corner_files() -> dict[str, list[dict]]:
    p = person
    removed = dict(removed_on="2024-01-01", removal_reason="死亡")
    files = {
        "mixed separators": [p(birth_date="2024/02-29", moved_in_on="")],
        "year 0000": [p(birth_date="0000-01-01", moved_in_on="")],
        "1900-02-29": [p(birth_date="1900-02-29", moved_in_on="")],
        "2000-02-29 in two shapes": [p(birth_date="2000-02-29", moved_in_on="20000229")],
        "the extreme days": [
            p(birth_date="0001-01-01", moved_in_on="9999/12/31"),
            p(birth_date="00010101", moved_in_on="", removed_on="15821015", removal_reason="死亡", relationship="子"),
            p(
                birth_date="1582-10-04",
                moved_in_on="1582-10-05",
                prev_household_no="-",
                household_changed_on="0004/02/29",
            ),
        ],
        "removed before birth, no moved_in": [
            p(
                birth_date="2000-01-02",
                moved_in_on="",
                removed_on="2000-01-01",
                removal_reason="死亡",
                relationship="子",
            )
        ],
        "removed on the birth day, no moved_in": [
            p(
                birth_date="2000-01-02",
                moved_in_on="",
                removed_on="2000/01/02",
                removal_reason="死亡",
                relationship="子",
            )
        ],
        "removed before moved_in": [
            p(moved_in_on="2001-01-02", removed_on="2001-01-01", removal_reason="死亡", relationship="子")
        ],
        "household changed before birth": [p(prev_household_no="9", household_changed_on="1900-01-01")],
        "prev_household_no of 20": [p(prev_household_no="A" * 20, household_changed_on="20250101")],
        "household_changed_on alone": [p(household_changed_on="20250101")],
        "removal_reason alone": [p(removal_reason="死亡")],
        "head flag on a child": [p(is_head="1", relationship="子")],
        "two current heads": [p(household_no="7"), p(household_no="7")],
        "two removed heads": [
            p(household_no="7", **removed),
            p(household_no="7", removed_on="2024-01-01", removal_reason="転出"),
        ],
        "a removed and a current head": [p(household_no="7", **removed), p(household_no="7")],
        "heads of a and A": [p(household_no="a"), p(household_no="A")],
        "a code with a space": [p(resident_code="1234567890 ")],
        "50 quotes": [p(family_name='"' * 50)],
        "51 quotes": [p(family_name='"' * 51)],
        "astral and combining": [p(family_name="\U00020bb7" * 50, given_name="e\u0301" * 25, address="\u3000" * 200)],
        "BOM, tab, space, backslash-dot, noncharacters": [
            p(family_name="\ufeff", given_name="\t"),
            p(family_name=" ", given_name="\\."),
            p(family_name="\ufffe\uffff", given_name="\U0010ffff"),
        ],
        "a line break before backslash-dot": [p(address="a\r\n\\.\r\nb"), p(address="a\n\\.")],
        "a lone CR": [p(address="a\rb")],
    }
    for ch in "\u30a0\u30a1\u30fa\u30fb\u30fc\u30fd\u30fe\u30ff\u309b":
        files[f"kana U+{ord(ch):04X}"] = [p(given_kana=ch)]
    return files


_FILE_SHAPES = {
    "plain": {},
    "every value quoted, LF": dict(quoted=frozenset(_NAMES), eol="\n"),
    "BOM, reversed columns": dict(bom=True, cols=_NAMES[::-1]),
    "no optional columns, 氏 first": dict(cols=["family_name"] + [c for c in _NAMES[:14] if c != "family_name"]),
}


async def test_the_c_encoder_accepts_only_what_the_text_path_stores_and_the_same_rows(
    app_pool, municipality, monkeypatch
):
    if not residentcsv.available():
        pytest.skip("app.registry._residentcsv is not built")
    verdicts = set()
    for name, rows in _corner_files().items():
        for shape, kw in _FILE_SHAPES.items():
            cols = kw.get("cols", _NAMES)
            if any(r[c] for r in rows for c in _NAMES if c not in cols):
                continue
            data = _shaped([person(household_no="Z1")] + rows, **kw)
            c_rows = _c_rows(data)
            text = await _text_path_rows(app_pool, municipality, monkeypatch, data)
            verdicts.add((c_rows is not None, text is not None))
            if c_rows is not None:
                assert c_rows == text, (name, shape)
    assert verdicts >= {(True, True), (False, False)}


async def test_the_c_encoder_against_the_text_path_on_random_files(app_pool, municipality, monkeypatch):
    if not residentcsv.available():
        pytest.skip("app.registry._residentcsv is not built")
    import random

    rng = random.Random(20261127)
    values = [
        "",
        '""',
        '"',
        "1",
        "0",
        "9",
        "2",
        "世帯主",
        "子",
        "転出",
        "死亡",
        "2024-02-29",
        "2023-02-29",
        "19000229",
        "0000-01-01",
        "9999-12-31",
        "1980-05-04",
        "2024/02-29",
        "12345678901",
        "A-1",
        "a" * 21,
        "ア" * 51,
        "ヴー・ァ",
        "ヽ",
        "名" * 51,
        " ",
        "\\.",
        "\r\n",
        "\n",
        "\r",
        "a,b",
        "\ufeff",
        "ｱ",
        "１",
    ]
    accepted = 0
    for _ in range(400):
        rows = [
            person(household_no="1"),
            person(household_no="1", relationship="妻"),
            person(
                household_no="2",
                birth_date="2001/02/03",
                moved_in_on="",
                removed_on="2024-01-01",
                removal_reason="死亡",
            ),
            person(household_no="3", prev_household_no="2", household_changed_on="20260501"),
        ]
        for _ in range(rng.randint(0, 2)):
            rng.choice(rows)[rng.choice(_NAMES)] = rng.choice(values)
        cols = _NAMES[:14] + [c for c in _NAMES[14:] if rng.random() < 0.6]
        rng.shuffle(cols)
        for r in rows:
            r.update({c: "" for c in _NAMES if c not in cols})
        quoted = frozenset((c, r["resident_code"]) for c in _NAMES for r in rows if rng.random() < 0.2)
        data = _shaped(rows, cols=cols, quoted=quoted, eol=rng.choice(["\r\n", "\n"]), bom=rng.random() < 0.2)
        c_rows = _c_rows(data)
        if c_rows is None and rng.random() > 0.05:
            continue  # declining is always sound: only a sample goes to the server
        accepted += c_rows is not None
        text = await _text_path_rows(app_pool, municipality, monkeypatch, data)
        if c_rows is not None:
            assert c_rows == text, data
    assert accepted > 50

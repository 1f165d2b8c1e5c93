"""payouts.kana: the §6 pipeline of docs/zengin.md, its errors, and fit()."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from payouts.kana import (
    _WHITELISTS,
    MAX_INPUT_CHARS,
    KanaResult,
    ZenginKanaError,
    fit,
    is_zengin_kana,
    normalise,
    to_zengin_kana,
)

VECTORS = Path(__file__).resolve().parent.parent / "data" / "kana_vectors.tsv"
REASONS = {"empty", "too_long", "kanji", "wo", "latin", "unsupported_symbol", "unsupported_char", "invalid_voicing"}
PARTY = _WHITELISTS[("party", False)]


def _vectors() -> list[tuple[str, str]]:
    rows = []
    for line in VECTORS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        text, expected = line.split("\t")
        rows.append((text, expected))
    return rows


def test_vector_file_is_read():
    """The parametrised vector test below cannot pass vacuously."""
    rows = _vectors()
    assert len(rows) >= 16
    assert ("山田", "REJECT") in rows


@pytest.mark.parametrize(("text", "expected"), _vectors(), ids=lambda v: repr(v))
def test_vector(text, expected):
    if expected == "REJECT":
        with pytest.raises(ZenginKanaError):
            to_zengin_kana(text)
    else:
        assert to_zengin_kana(text) == expected
        assert normalise(text).value == expected


@pytest.mark.parametrize(
    ("text", "value", "material", "changes"),
    [
        ("ヤマダ タロウ", "ﾔﾏﾀﾞ ﾀﾛｳ", False, ()),
        ("キャッシュ", "ｷﾔﾂｼﾕ", True, ("small_kana",)),
        ("ヨーコ", "ﾖ-ｺ", True, ("long_vowel",)),
        ("ヰヱ", "ｲｴ", True, ("wi_we",)),
        ("ヷヸヹヺ", "ﾊﾞﾋﾞﾍﾞﾎﾞ", True, ("va_row",)),
        ("ジョン・スミス", "ｼﾞﾖﾝ ｽﾐｽ", True, ("small_kana", "middle_dot")),
        ("ヤマダ‐ハナコ", "ﾔﾏﾀﾞ-ﾊﾅｺ", False, ("dash",)),  # U+2010 is already a hyphen: reads the same
        ("ｶﾞｯｺｳ", "ｶﾞﾂｺｳ", True, ("small_kana",)),
    ],
)
def test_material_changes(text, value, material, changes):
    assert normalise(text) == KanaResult(value, material, changes)


def test_spaces_collapsed_and_stripped():
    assert to_zengin_kana("  ヤマダ　　 タロウ  ") == "ﾔﾏﾀﾞ ﾀﾛｳ"


@pytest.mark.parametrize(
    ("text", "reason", "position"),
    [
        ("山田", "kanji", 0),
        ("ヤマ田", "kanji", 2),
        ("", "empty", 0),
        ("　 ", "empty", 0),
        ("ヤマダ ヲサム", "wo", 4),
        ("ア\u3099", "invalid_voicing", 1),  # ア cannot take a dakuten
        ("゛", "invalid_voicing", 0),
        ("ﾀﾛｳ@", "unsupported_symbol", 3),
        ("￥", "unsupported_symbol", 0),
        ("サヽキ", "unsupported_char", 1),
        ("Ivan ı", "unsupported_char", 5),  # str.upper would have made it a silent 'I'
        ("ヤマダ\tタロウ", "unsupported_symbol", 3),
    ],
)
def test_rejections_carry_reason_and_position(text, reason, position):
    with pytest.raises(ZenginKanaError) as info:
        normalise(text)
    assert info.value.reason == reason
    assert info.value.position == position


def test_kanji_message_is_japanese_and_free_of_input():
    with pytest.raises(ZenginKanaError) as info:
        to_zengin_kana("山田ヤマダ")
    message = str(info.value)
    assert "漢字" in message and "カタカナ" in message
    assert "山田" not in message and "ヤマダ" not in message


def test_wo_allowed_only_by_keyword():
    with pytest.raises(ZenginKanaError) as info:
        to_zengin_kana("ヲノ")
    assert info.value.reason == "wo"
    assert to_zengin_kana("ヲノ", allow_wo=True) == "ｦﾉ"


def test_max_width_refuses_long_names():
    assert to_zengin_kana("ガ" * 20, max_width=40) == "ｶﾞ" * 20
    with pytest.raises(ZenginKanaError) as info:
        to_zengin_kana("ガ" * 21, max_width=40)
    assert info.value.reason == "too_long"
    assert info.value.position == 20  # the 21st ガ is the first that does not fit
    assert "40" in str(info.value)


def test_overlong_input_refused_without_work():
    with pytest.raises(ZenginKanaError) as info:
        to_zengin_kana("ア" * (MAX_INPUT_CHARS + 1))
    assert info.value.reason == "too_long"


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("ミツビシユ－エフジエイ", "bank", "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ"),  # zengin-code master data form (§5)
        ("ヤマダ 1", "salary", "ﾔﾏﾀﾞ 1"),
    ],
)
def test_other_field_classes(text, field, expected):
    assert to_zengin_kana(text, field=field) == expected


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("（カ）ヤマダ", "bank", "unsupported_symbol"),
        ("ABC", "salary", "latin"),
        ("ヨ-コ", "salary", "unsupported_symbol"),  # §1.7: ﾖ-ｺ is invalid in 給与 names
        ("ヤマダ.", "salary", "unsupported_symbol"),
    ],
)
def test_other_field_classes_reject(text, field, reason):
    with pytest.raises(ZenginKanaError) as info:
        to_zengin_kana(text, field=field)
    assert info.value.reason == reason


# Characters that make generated text interesting: kana of every kind, marks, the symbols
# at the whitelist's edge, wide and narrow forms, kanji, and spaces.
_INTERESTING = list(
    "アイウカガキャッパヴヲヰヱヷーｰ-‐・･ 　ｶﾞﾊﾟｧｯﾞﾟ゛゜\u3099\u309aあがぱゔゐをぁっ"
    "ABCabcＡｂ0１９().（）,/:?@￥¥\\~〜山田々ㇰヵヶ\tßı"
)
_TEXT = st.one_of(st.text(max_size=40), st.text(alphabet=st.sampled_from(_INTERESTING), max_size=40))


@settings(max_examples=300, deadline=None)
@given(_TEXT, st.sampled_from(["party", "bank", "salary"]))
def test_any_text_is_written_or_refused_cleanly(text, field):
    """Any text yields a value that is one cp932 byte per character and on its whitelist,
    or raises ZenginKanaError (never another exception) whose message cannot hold the input."""
    try:
        result = normalise(text, field=field)
    except ZenginKanaError as e:
        assert e.reason in REASONS
        assert 0 <= e.position <= max(len(text) - 1, 0)
        # The message is a function of (reason, field) only, so it cannot contain the input.
        assert str(e) == str(ZenginKanaError(e.reason, 0, field))
        return
    value = result.value
    assert len(value.encode("cp932")) == len(value)
    assert _WHITELISTS[(field, False)].fullmatch(value)
    assert is_zengin_kana(value, field=field)
    assert not any(0xFF67 <= ord(c) <= 0xFF70 for c in value)  # no small kana, no ｰ (§2.2)
    # Normalising a normalised value changes nothing.
    assert normalise(value, field=field) == KanaResult(value, False, ())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ｱｶｳﾊﾝｦﾞﾟ -.()AZaz0｡ｧｰ山")), max_size=12), st.booleans())
def test_is_zengin_kana_agrees_with_whitelist(value, allow_wo):
    """The fast check used per payment gives the whitelist regex's answer."""
    expected = _WHITELISTS[("party", allow_wo)].fullmatch(value) is not None
    assert is_zengin_kana(value, allow_wo=allow_wo) == expected


_NAMES = st.lists(
    st.lists(
        st.sampled_from(["ｱ", "ﾔ", "ﾝ", "ｶﾞ", "ｻﾞ", "ﾀﾞ", "ﾊﾞ", "ﾊﾟ", "ﾎﾟ", "ｳﾞ", "A", "1", "(", ")", "-", "."]),
        min_size=1,
        max_size=12,
    ).map("".join),
    min_size=1,
    max_size=5,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(_NAMES, st.integers(min_value=1, max_value=45))
def test_fit_never_splits_a_voiced_pair(value, width):
    assert is_zengin_kana(value)
    cut, was_cut = fit(value, width)
    assert was_cut == (len(value) > width)
    assert len(cut) <= width
    assert value.startswith(cut)
    if was_cut:
        rest = value[len(cut) :]
        assert rest[0] not in "ﾞﾟ", "a kana was separated from its mark"
        assert not cut.endswith(" ")
        # Nothing more is dropped than the split pair's base and the spaces before the cut.
        assert cut in (value[:width].rstrip(" "), value[: width - 1].rstrip(" "))
    else:
        assert cut == value


def test_fit_examples():
    assert fit("ﾔﾏﾀﾞ ﾀﾛｳ", 30) == ("ﾔﾏﾀﾞ ﾀﾛｳ", False)
    assert fit("ﾔﾏﾀﾞ ﾀﾛｳ", 4) == ("ﾔﾏﾀﾞ", True)
    assert fit("ﾔﾏﾀﾞ ﾀﾛｳ", 3) == ("ﾔﾏ", True)  # not ﾔﾏﾀ: that would read ヤマタ
    assert fit("ﾔﾏﾀﾞ ﾀﾛｳ", 5) == ("ﾔﾏﾀﾞ", True)  # trailing space removed
    with pytest.raises(ValueError):
        fit("ﾔﾏ", 0)

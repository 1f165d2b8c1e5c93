import pytest

from app.tenancy.codes import MunicipalityCodeError, check_digit, validate_code


@pytest.mark.parametrize("code", ["131016", "131041", "131130", "011002", "271004", "130001", "472018"])
def test_real_codes_are_valid(code):
    """Real codes, including remainders 0 (新宿区) and 1 (渋谷区), pass."""
    assert validate_code(code) == code
    assert check_digit(code[:5]) == code[5]


@pytest.mark.parametrize(
    "code,reason",
    [
        ("131017", "チェックディジット"),
        ("13101", "6桁"),
        ("１３１０１６", "6桁"),
        ("481000", "都道府県"),
        ("001007", "都道府県"),
        (131016, "6桁"),
    ],
)
def test_bad_codes_are_refused_with_the_reason(code, reason):
    with pytest.raises(MunicipalityCodeError, match=reason):
        validate_code(code)

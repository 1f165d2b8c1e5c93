"""地方公共団体コード: 5 digits and a check digit (総務省 全国地方公共団体コード).

The check digit is (11 - (6*d1 + 5*d2 + 4*d3 + 3*d4 + 2*d5) mod 11) mod 10, e.g. 13101 -> 131016 千代田区,
13104 -> 131041 新宿区 (remainder 0), 13113 -> 131130 渋谷区 (remainder 1).
"""

from __future__ import annotations

import re

_SIX_DIGITS = re.compile(r"[0-9]{6}")


class MunicipalityCodeError(ValueError):
    """A 地方公共団体コード that is malformed or fails its check digit. The message says why."""


def check_digit(first_five: str) -> str:
    total = sum(int(d) * w for d, w in zip(first_five, (6, 5, 4, 3, 2)))
    return str((11 - total % 11) % 10)


def validate_code(code: object) -> str:
    """Return the code if it is a valid 6-digit 地方公共団体コード, else raise with the reason."""
    if not isinstance(code, str) or not _SIX_DIGITS.fullmatch(code):
        raise MunicipalityCodeError(
            "地方公共団体コードは6桁の半角数字です（例: 131016）。"
            " / A municipality code is 6 ASCII digits (e.g. 131016)."
        )
    if code[:2] == "00" or not 1 <= int(code[:2]) <= 47:
        raise MunicipalityCodeError(
            f"地方公共団体コード {code} の先頭2桁（都道府県コード）は01〜47です。"
            f" / The first two digits (prefecture) of {code} must be 01-47."
        )
    expected = check_digit(code[:5])
    if code[5] != expected:
        raise MunicipalityCodeError(
            f"地方公共団体コード {code} のチェックディジットが正しくありません（{code[:5]}{expected} が正）。"
            f" / Check digit of {code} is wrong; {code[:5]}{expected} would be valid."
        )
    return code

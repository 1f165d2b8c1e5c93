"""Receipt numbers (受付番号): 11 digits, scoped to one municipality, revealing no volume.

Why not the application id: ids come from one platform-wide sequence, so a receipt that shows its id tells
every resident how many applications all municipalities have taken, and two receipts a minute apart tell
the rate. A receipt is instead a keyed permutation of the id within the municipality: an 8-round decimal
Feistel network over 10^10 (two halves of 10^5, round function HMAC-SHA256 under a key derived from the
municipality's data key). A permutation is a bijection, so distinct ids give distinct receipts by
construction (the UNIQUE (municipality_code, receipt_no) constraint is the database's second word on it);
the same id gives unrelated receipts in two municipalities; and without the key neither the id nor the
order of two receipts can be read off. Ids stay below 10^10 (the sequence is checked here).

The 11th digit is a Damm check digit: it catches every single mistyped digit and every swap of two
adjacent digits, which is what people do when they read a receipt out on the phone.

Receipts already stored keep their value (the column is the record of truth; nothing recomputes them).
The key is derived from the municipality's data key: were that key ever replaced (kyufu rotates only the
master key that wraps it), new receipts would come from another permutation and the UNIQUE constraint
would refuse a collision with an old one rather than give two applications one receipt.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DIGITS = 11
_HALF = 10**5
_DOMAIN = _HALF * _HALF
_ROUNDS = 8

# Damm's totally anti-symmetric quasigroup of order 10.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


@lru_cache(maxsize=256)
def receipt_key(data_key: bytes) -> bytes:
    """The municipality's receipt-permutation key, derived from its data key (never stored)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kyufu-receipt-number").derive(data_key)


def _round(key: bytes, i: int, half: int) -> int:
    digest = hmac.new(key, bytes((i,)) + half.to_bytes(4, "big"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") % _HALF


def damm_digit(digits: str) -> int:
    interim = 0
    for d in digits:
        interim = _DAMM[interim][int(d)]
    return interim


def receipt_number(key: bytes, application_id: int) -> str:
    """The receipt of `application_id` under the municipality's `receipt_key`."""
    if not 0 < application_id < _DOMAIN:
        raise ValueError("application id outside the receipt number space")
    left, right = divmod(application_id, _HALF)
    for i in range(_ROUNDS):
        left, right = right, (left + _round(key, i, right)) % _HALF
    body = f"{left * _HALF + right:010d}"
    return body + str(damm_digit(body))


def is_valid(receipt_no: str) -> bool:
    """Eleven ASCII digits whose check digit holds."""
    return len(receipt_no) == DIGITS and receipt_no.isascii() and receipt_no.isdigit() and damm_digit(receipt_no) == 0


def format_receipt(receipt_no: str) -> str:
    """As printed for residents: 123-4567-8901."""
    return f"{receipt_no[:3]}-{receipt_no[3:7]}-{receipt_no[7:]}"

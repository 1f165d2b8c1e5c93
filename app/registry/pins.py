"""Keyed hashes of letter PINs, shared by letter issue (registry) and sign-in (intake).

Only HMAC-SHA256(pin_key, access_code ":" pin) is stored. The key is derived from the municipality's
data key, so a copied `letters` table is useless without that municipality's key, and a PIN hash of one
letter does not verify another letter's code.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.crypto import FieldCipher


def pin_key(cipher: FieldCipher) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kyufu-letter-pin").derive(cipher.key)


def pin_hash(key: bytes, access_code: str, pin: str) -> bytes:
    return hmac.new(key, f"{access_code}:{pin}".encode(), hashlib.sha256).digest()


def pin_matches(key: bytes, access_code: str, pin: str, stored: bytes) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(pin_hash(key, access_code, pin), bytes(stored))

"""Envelope encryption: one data key per municipality, wrapped by the platform master key.

* The master key (KYUFU_MASTER_KEY) only ever wraps keys; it never touches a resident's data, so rotating
  it re-wraps a few hundred bytes per municipality and leaves every encrypted field as it is.
* A field is encrypted with AES-256-GCM under its municipality's data key, with associated data that names
  the municipality, table, column and row. A ciphertext copied to another row, column or municipality
  fails authentication instead of decrypting to someone else's account number.

Ciphertext layout: version byte (1) || key version (4, big-endian) || nonce (12) || ciphertext+tag.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = 1
_HEADER = struct.Struct(">BI")
NONCE_BYTES = 12


class DecryptionError(Exception):
    """A ciphertext did not authenticate: wrong key, or bound to another municipality, table or row."""


def master_key_id(master_key: bytes) -> str:
    """A non-secret fingerprint that records which master key wrapped a data key."""
    return hashlib.sha256(b"kyufu-master-key-id" + master_key).hexdigest()[:16]


def _wrap_aad(municipality_code: str, purpose: str, version: int) -> bytes:
    return f"kyufu-key|{municipality_code}|{purpose}|{version}".encode()


def wrap_key(master_key: bytes, municipality_code: str, purpose: str, version: int, key: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(master_key).encrypt(nonce, key, _wrap_aad(municipality_code, purpose, version))


def unwrap_key(master_key: bytes, municipality_code: str, purpose: str, version: int, wrapped: bytes) -> bytes:
    try:
        return AESGCM(master_key).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_aad(municipality_code, purpose, version)
        )
    except InvalidTag:
        raise DecryptionError(
            f"key {purpose} v{version} of municipality {municipality_code} does not unwrap with this master key"
        ) from None


def field_aad_prefix(municipality_code: str, table: str, column: str) -> bytes:
    """The associated data of a field up to its row key; hot loops (payouts/_chunk.py and its C loop,
    payouts/_fastrender.c) append the row key themselves."""
    return f"{municipality_code}|{table}|{column}|".encode()


def field_aad(municipality_code: str, table: str, column: str, row_key: object) -> bytes:
    """Binds a ciphertext to its municipality, table, column and row: copied anywhere else, it does not
    decrypt."""
    return field_aad_prefix(municipality_code, table, column) + str(row_key).encode()


def ciphertext_header(key_version: int) -> bytes:
    """The 5 bytes every field ciphertext starts with: format version, key version."""
    return _HEADER.pack(FORMAT_VERSION, key_version)


@dataclass(frozen=True)
class FieldCipher:
    """Encrypts and decrypts personal fields for one municipality."""

    municipality_code: str
    key: bytes
    key_version: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "_aead", AESGCM(self.key))

    def encrypt(self, table: str, column: str, row_key: object, plaintext: str | bytes) -> bytes:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(NONCE_BYTES)
        aad = field_aad(self.municipality_code, table, column, row_key)
        return ciphertext_header(self.key_version) + nonce + self._aead.encrypt(nonce, data, aad)  # type: ignore[attr-defined]

    def decrypt(self, table: str, column: str, row_key: object, ciphertext: bytes) -> bytes:
        return self.decrypt_aad(field_aad(self.municipality_code, table, column, row_key), ciphertext)

    def decrypt_aad(self, aad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt with precomputed associated data (hot loops build the AAD themselves)."""
        if len(ciphertext) < _HEADER.size + NONCE_BYTES:
            raise DecryptionError("ciphertext is truncated")
        fmt, version = _HEADER.unpack_from(ciphertext)
        if fmt != FORMAT_VERSION or version != self.key_version:
            raise DecryptionError("ciphertext was made with another key version or format")
        start = _HEADER.size
        try:
            return self._aead.decrypt(  # type: ignore[attr-defined]
                ciphertext[start : start + NONCE_BYTES], ciphertext[start + NONCE_BYTES :], aad
            )
        except InvalidTag:
            # The message names no value: the row key may itself identify a resident.
            raise DecryptionError("field did not authenticate (wrong municipality, table, column or row)") from None

    def decrypt_str(self, table: str, column: str, row_key: object, ciphertext: bytes) -> str:
        return self.decrypt(table, column, row_key, ciphertext).decode()


def derive_key(secret: str | bytes, purpose: str) -> bytes:
    """The one way kyufu turns a configured secret (KYUFU_SESSION_SECRET) into a key for one purpose:
    HMAC-SHA256(secret, "kyufu|" + purpose). Each purpose gets an independent key, so a token made for one
    use (a resident's session, the console's CSRF, an idempotency digest) is worthless for another.
    An empty secret is refused: there is no fallback key, in any mode."""
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not raw:
        raise ValueError("KYUFU_SESSION_SECRET is empty: refusing to derive a key from nothing")
    return hmac.new(raw, b"kyufu|" + purpose.encode(), hashlib.sha256).digest()

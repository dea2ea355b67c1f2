"""AEAD suites behind one small interface: AES-256-GCM (default) and SM4-GCM (GB/T 39786).

Both are GCM with 96-bit nonces and 128-bit tags. AES-256-GCM uses ``cryptography``'s one-shot
``AESGCM``; SM4 is only reachable through the lower-level ``Cipher`` API, so :class:`Sm4Gcm` wraps it
into the same encrypt/decrypt shape (ciphertext with the tag appended). Each suite also names its
MAC for blind indexes: HMAC-SHA256 or HMAC-SM3.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import DecryptionError

NONCE_SIZE = 12
TAG_SIZE = 16
# NIST SP 800-38D 8.3: with random 96-bit nonces, at most 2**32 encryptions under one key.
RANDOM_NONCE_LIMIT = 2**32


class Suite(IntEnum):
    AES_256_GCM = 1
    SM4_GCM = 2

    @property
    def key_size(self) -> int:
        return 32 if self is Suite.AES_256_GCM else 16

    @property
    def label(self) -> str:
        return "AES-256-GCM" if self is Suite.AES_256_GCM else "SM4-GCM"

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return hashes.SHA256() if self is Suite.AES_256_GCM else hashes.SM3()


class Aead(Protocol):
    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


class Sm4Gcm:
    """SM4 in GCM mode with the ``AESGCM`` calling convention (tag appended to the ciphertext)."""

    __slots__ = ("_algorithm",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError("SM4 keys are 128 bits")
        self._algorithm = algorithms.SM4(key)

    def __repr__(self) -> str:
        return "Sm4Gcm(<key hidden>)"

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        encryptor = Cipher(self._algorithm, modes.GCM(nonce)).encryptor()
        if associated_data:
            encryptor.authenticate_additional_data(associated_data)
        body = encryptor.update(data) + encryptor.finalize()
        return body + encryptor.tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        if len(data) < TAG_SIZE:
            raise InvalidTag()
        decryptor = Cipher(self._algorithm, modes.GCM(nonce, data[-TAG_SIZE:])).decryptor()
        if associated_data:
            decryptor.authenticate_additional_data(associated_data)
        return decryptor.update(data[:-TAG_SIZE]) + decryptor.finalize()


def aead_for(suite: Suite, key: bytes) -> Aead:
    if len(key) != suite.key_size:
        raise ValueError(f"{suite.label} needs a {suite.key_size * 8}-bit key")
    return AESGCM(key) if suite is Suite.AES_256_GCM else Sm4Gcm(key)


def open_or_raise(aead: Aead, nonce: bytes, data: bytes, associated_data: bytes, what: str) -> bytes:
    """Decrypt, turning an authentication failure into a typed error that names only ``what``."""
    try:
        return aead.decrypt(nonce, data, associated_data)
    except InvalidTag:
        raise DecryptionError(f"{what}: authentication failed (altered, or bound to another context)") from None


def mac(suite: Suite, key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 or HMAC-SM3, by suite."""
    h = hmac.HMAC(key, suite.hash_algorithm())
    h.update(data)
    return h.finalize()

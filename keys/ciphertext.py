"""The self-describing field ciphertext format, version 1.

    offset  size  field
    0       2     magic b"HK"
    2       1     format version (1)
    3       1     suite (1 = AES-256-GCM, 2 = SM4-GCM)
    4       4     KEK version that wrapped the DEK when this value was sealed (big-endian)
    8       1     length n of the KEK id
    9       n     KEK id (ASCII)
    9+n     16    DEK id
    25+n    12    nonce
    37+n    ...   ciphertext with its 16-byte tag

The associated data is the whole header (bytes 0 to 37+n) followed by the encoded context, so a
flipped header bit, a value moved to another record or field, or a swapped DEK id all fail the tag.
The KEK version in the header is historical: rotation rewraps DEKs without touching ciphertexts, and
decryption follows the DEK record, not this field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from keys.errors import DecryptionError
from keys.suites import NONCE_SIZE, TAG_SIZE, Suite

MAGIC = b"HK"
FORMAT_VERSION = 1
MAGIC_V1 = MAGIC + bytes([FORMAT_VERSION])
KEK_LEN_OFFSET = 8
DEK_ID_SIZE = 16
_FIXED = struct.Struct(">2sBBIB")


def _part(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("context part longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def encode_context(*parts: str) -> bytes:
    """Length-prefixed UTF-8 parts: unambiguous, so ("a", "bc") never equals ("ab", "c")."""
    return b"".join(_part(p) for p in parts)


# (dataset, field) pairs come from the catalog, a small set: the encoded prefix of each is kept.
# Record keys are unbounded and encoded per call, last.
_PREFIXES: dict[str, dict[str, bytes]] = {}


def field_prefix(dataset: str, field: str) -> bytes:
    by_field = _PREFIXES.get(dataset)
    if by_field is None:
        by_field = _PREFIXES.setdefault(dataset, {})
    prefix = by_field.get(field)
    if prefix is None:
        prefix = encode_context("field", dataset, field)
        if len(by_field) < 4096:  # bounded, in case a caller passes unbounded names
            by_field[field] = prefix
    return prefix


def field_context(dataset: str, record_key: str, field: str) -> bytes:
    """The associated data of a field value: ``encode_context("field", dataset, field, record_key)``."""
    key = record_key.encode("utf-8")
    return field_prefix(dataset, field) + len(key).to_bytes(2, "big") + key


@dataclass(frozen=True, slots=True)
class FieldContext:
    """Where a value lives. Its encoding is bound into the ciphertext as associated data."""

    dataset: str
    record_key: str
    field: str

    def encode(self) -> bytes:
        return field_context(self.dataset, self.record_key, self.field)


def header_prefix(suite: Suite, kek_id: str, kek_version: int, dek_id: bytes) -> bytes:
    """Everything in the header but the nonce; fixed per data key, so it is built once."""
    kek = kek_id.encode("ascii")
    if len(dek_id) != DEK_ID_SIZE or not 0 < len(kek) < 256:
        raise ValueError("malformed key identifiers")
    return _FIXED.pack(MAGIC, FORMAT_VERSION, int(suite), kek_version, len(kek)) + kek + dek_id


@dataclass(frozen=True, slots=True)
class ParsedCiphertext:
    suite: Suite
    kek_id: str
    kek_version: int
    dek_id: bytes
    nonce: bytes
    header: bytes
    body: bytes


def parse(blob: bytes) -> ParsedCiphertext:
    if len(blob) < _FIXED.size:
        raise DecryptionError("ciphertext: too short")
    magic, version, suite, kek_version, kek_len = _FIXED.unpack_from(blob)
    if magic != MAGIC or version != FORMAT_VERSION:
        raise DecryptionError("ciphertext: unknown format")
    try:
        parsed_suite = Suite(suite)
    except ValueError:
        raise DecryptionError("ciphertext: unknown suite") from None
    start = _FIXED.size
    header_end = start + kek_len + DEK_ID_SIZE + NONCE_SIZE
    if kek_len == 0 or len(blob) < header_end + TAG_SIZE:
        raise DecryptionError("ciphertext: truncated")
    try:
        kek_id = blob[start : start + kek_len].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("ciphertext: malformed KEK id") from None
    dek_start = start + kek_len
    return ParsedCiphertext(
        suite=parsed_suite,
        kek_id=kek_id,
        kek_version=kek_version,
        dek_id=blob[dek_start : dek_start + DEK_ID_SIZE],
        nonce=blob[dek_start + DEK_ID_SIZE : header_end],
        header=blob[:header_end],
        body=blob[header_end:],
    )

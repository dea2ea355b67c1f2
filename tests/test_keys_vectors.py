"""Known-answer tests: the suites must reproduce published vectors byte for byte."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from keys.errors import DecryptionError
from keys.suites import Suite, aead_for, mac, open_or_raise

P64 = (
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
)
C64 = (
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
)
K256 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"

# The GCM specification's AES-256 test cases 13-16 (McGrew and Viega), the vectors NIST SP 800-38D uses.
AES_256_GCM = [
    ("0" * 64, "0" * 24, "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"),
    ("0" * 64, "0" * 24, "0" * 32, "", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"),
    (K256, "cafebabefacedbaddecaf888", P64, "", C64, "b094dac5d93471bdec1a502270e3cc6c"),
    (
        K256,
        "cafebabefacedbaddecaf888",
        P64[:120],
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        C64[:120],
        "76fc6ece0f4e1768cddf8853bb2d551b",
    ),
]

# RFC 8998 Appendix A.1 (SM4-GCM, as GB/T 36624 specifies the mode).
SM4_GCM = [
    (
        "0123456789abcdeffedcba9876543210",
        "00001234567800000000abcd",
        "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccddddddddddddddddeeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
        "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d",
        "83de3541e4c2b58177e065a9bf7b62ec",
    )
]


@pytest.mark.parametrize(
    ("suite", "vector"), [(Suite.AES_256_GCM, v) for v in AES_256_GCM] + [(Suite.SM4_GCM, v) for v in SM4_GCM]
)
def test_gcm_vectors(suite: Suite, vector: tuple[str, ...]) -> None:
    key, nonce, plaintext, aad, ciphertext, tag = (bytes.fromhex(v) for v in vector)
    aead = aead_for(suite, key)
    assert aead.encrypt(nonce, plaintext, aad) == ciphertext + tag
    assert aead.decrypt(nonce, ciphertext + tag, aad) == plaintext
    tampered = bytearray(ciphertext + tag)
    tampered[-1] ^= 1
    with pytest.raises(DecryptionError):
        open_or_raise(aead, nonce, bytes(tampered), aad, "vector")


def test_sm4_block_vector_gb_t_32907() -> None:
    # GB/T 32907-2016 Appendix A example 1: key = plaintext = 0123456789abcdeffedcba9876543210.
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()  # noqa: S305 - one block, a known-answer test
    assert (encryptor.update(key) + encryptor.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm3_vector_gb_t_32905() -> None:
    digest = hashes.Hash(hashes.SM3())
    digest.update(b"abc")
    assert digest.finalize().hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_hmac_by_suite_differs() -> None:
    assert mac(Suite.AES_256_GCM, b"k" * 32, b"x") != mac(Suite.SM4_GCM, b"k" * 32, b"x")
    # RFC 4231 test case 2 for HMAC-SHA256.
    assert mac(Suite.AES_256_GCM, b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )

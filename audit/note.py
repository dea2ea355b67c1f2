"""C2SP signed notes, checkpoints and cosignatures, with the standard library and ``cryptography`` only.

- signed-note: ``body`` + blank line + ``— <name> base64(key id || signature)`` lines; Ed25519 key id =
  SHA-256(name || "\\n" || 0x01 || public key)[:4]; a verifier key is ``name+hexid+base64(0x01||key)``.
- tlog-checkpoint: the body is ``origin\\nsize\\nbase64(root)\\n`` plus optional extension lines.
- tlog-cosignature v1: key id with type 0x04; signature = u64 timestamp || Ed25519 signature over
  ``cosignature/v1\\ntime <t>\\n`` + the checkpoint body.
The offline verifier imports this module, so it must not import anything from ``hub``.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014 "


class NoteError(ValueError):
    """A note, checkpoint or signature is malformed or does not verify."""


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, algorithm: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([algorithm]) + public).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise NoteError("key names are non-empty and contain no spaces or '+'")


@dataclass(frozen=True)
class VerifierKey:
    name: str
    algorithm: int
    public: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.algorithm, self.public)

    def encode(self) -> str:
        return f"{self.name}+{self.id.hex()}+{base64.b64encode(bytes([self.algorithm]) + self.public).decode()}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        try:
            name, hex_id, encoded = text.strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise NoteError("verifier key: expected name+keyid+base64key") from None
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise NoteError("verifier key: not an Ed25519 key")
        key = cls(name, raw[0], raw[1:])
        if key.id.hex() != hex_id.lower():
            raise NoteError("verifier key: key id does not match the key")
        return key


class NoteSigner:
    """Signs note bodies as ``name`` with an Ed25519 key (algorithm 0x01 or, for witnesses, 0x04)."""

    def __init__(self, name: str, private: Ed25519PrivateKey, algorithm: int = ED25519) -> None:
        _check_name(name)
        self.name = name
        self._private = private
        self.algorithm = algorithm
        self.verifier = VerifierKey(name, algorithm, _raw_public(private.public_key()))

    def __repr__(self) -> str:
        return f"NoteSigner({self.verifier.encode()})"

    def signature_line(self, body: str) -> str:
        signature = self._private.sign(body.encode())
        return f"{DASH}{self.name} {base64.b64encode(self.verifier.id + signature).decode()}\n"

    def cosignature_line(self, body: str, timestamp: int) -> str:
        message = f"cosignature/v1\ntime {timestamp}\n{body}".encode()
        payload = self.verifier.id + struct.pack(">Q", timestamp) + self._private.sign(message)
        return f"{DASH}{self.name} {base64.b64encode(payload).decode()}\n"


def split_note(text: str) -> tuple[str, list[tuple[str, bytes]]]:
    """The body (with its final newline) and the (name, decoded payload) of each signature line."""
    if not text.endswith("\n"):
        raise NoteError("note: must end with a newline")
    body, separator, signatures = text.rpartition("\n\n")
    if not separator:
        raise NoteError("note: no blank line before the signatures")
    lines: list[tuple[str, bytes]] = []
    for line in signatures[:-1].split("\n"):
        if not line.startswith(DASH):
            raise NoteError("note: malformed signature line")
        name, _, encoded = line[len(DASH) :].rpartition(" ")
        try:
            payload = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise NoteError("note: signature is not base64") from None
        if len(payload) < 5:
            raise NoteError("note: signature too short")
        lines.append((name, payload))
    return body + "\n", lines


def verify_note(text: str, key: VerifierKey) -> str:
    """The note's body if ``key`` signed it; NoteError otherwise."""
    body, signatures = split_note(text)
    public = Ed25519PublicKey.from_public_bytes(key.public)
    for name, payload in signatures:
        if name != key.name or payload[:4] != key.id:
            continue
        try:
            if key.algorithm == ED25519:
                public.verify(payload[4:], body.encode())
            else:
                (timestamp,) = struct.unpack(">Q", payload[4:12])
                public.verify(payload[12:], f"cosignature/v1\ntime {timestamp}\n{body}".encode())
        except (InvalidSignature, struct.error):
            raise NoteError(f"note: signature by {key.name} does not verify") from None
        return body
    raise NoteError(f"note: no signature by {key.name}")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint: expected origin, size and root lines")
        origin, size, root = lines[0], lines[1], lines[2]
        if not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError("checkpoint: size is not a decimal number")
        try:
            digest = base64.b64decode(root, validate=True)
        except ValueError:
            raise NoteError("checkpoint: root is not base64") from None
        if len(digest) != 32 or not origin:
            raise NoteError("checkpoint: malformed origin or root")
        return cls(origin, int(size), digest, tuple(lines[3:-1]))

"""The embedded keystore: one JSON file of sealed KEK versions and named secrets.

Nothing in the file is a key in clear. A master key — given directly (``HUB_MASTER_KEY``) or derived
with scrypt from a passphrase (``HUB_MASTER_PASSPHRASE``) — seals each entry with the keystore's AEAD
suite, the entry's name bound in as associated data so entries cannot be swapped. A sealed verifier
tells a wrong passphrase from a corrupt file. Writes go to a temporary file that is fsynced and
renamed over the old one under an exclusive lock, so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from keys.ciphertext import encode_context
from keys.errors import KeyInUse, KeystoreLocked, KeystoreUnavailable, UnknownKey, WrongPassphrase
from keys.kek import KekVersion
from keys.suites import NONCE_SIZE, Aead, Suite, aead_for, open_or_raise

FORMAT = "hub-keystore/1"
DEFAULT_KEK_ID = "kek-main"
SCRYPT_N = 2**15  # about 32 MiB and a tenth of a second per unlock on this machine class
_VERIFIER = b"hub keystore verifier v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def derive_master_key(passphrase: str, salt: bytes, suite: Suite, n: int = SCRYPT_N) -> bytes:
    return Scrypt(salt=salt, length=suite.key_size, n=n, r=8, p=1).derive(passphrase.encode("utf-8"))


def parse_master_key(text: str) -> bytes:
    """A master key given directly: hex or base64."""
    cleaned = text.strip()
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        pass
    try:
        return _unb64(cleaned)
    except (ValueError, binascii.Error):
        raise KeystoreLocked("HUB_MASTER_KEY: expected hex or base64 key bytes") from None


class Keystore:
    """An unlocked keystore. Implements :class:`~keys.kek.KekProvider`."""

    def __init__(self, path: Path, document: dict[str, Any], master: bytes) -> None:
        self.path = path
        self._doc = document
        self._master = master
        self.suite = Suite[document["suite"]]
        self._aead = aead_for(self.suite, master)
        self._cache: dict[tuple[str, str], bytes] = {}
        self._aeads: dict[str, Aead] = {}
        self._sealed_shut = False

    def lock(self) -> None:
        """Forget the master key and every unsealed secret: from now on nothing can be unwrapped.

        For an operator taking the key store out of service (and for the tests proving the hub then fails
        closed); reopening it needs the passphrase or master key again.
        """
        self._sealed_shut = True
        self._cache.clear()
        self._aeads.clear()
        self._master = b""

    @property
    def locked(self) -> bool:
        return self._sealed_shut

    def __repr__(self) -> str:
        return (
            f"Keystore(path={str(self.path)!r}, suite={self.suite.label}, kek={self.kek_id}@{self.current_kek_version})"
        )

    # -- creation and unlocking ------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        *,
        passphrase: str | None = None,
        master_key: bytes | None = None,
        suite: Suite = Suite.AES_256_GCM,
        kek_id: str = DEFAULT_KEK_ID,
        scrypt_n: int = SCRYPT_N,
    ) -> Keystore:
        if path.exists():
            raise KeystoreUnavailable(f"keystore {path} already exists")
        if passphrase:
            salt = secrets.token_bytes(16)
            kdf: dict[str, Any] = {"alg": "scrypt", "salt": _b64(salt), "n": scrypt_n, "r": 8, "p": 1}
            master = derive_master_key(passphrase, salt, suite, scrypt_n)
        elif master_key is not None:
            if len(master_key) != suite.key_size:
                raise KeystoreLocked(f"HUB_MASTER_KEY: {suite.label} needs a {suite.key_size}-byte master key")
            kdf, master = {"alg": "direct"}, master_key
        else:
            raise KeystoreLocked("creating a keystore needs HUB_MASTER_PASSPHRASE or HUB_MASTER_KEY")
        document: dict[str, Any] = {
            "format": FORMAT,
            "suite": suite.name,
            "kdf": kdf,
            "created_at": _now(),
            "kek": {"id": kek_id, "current": 0, "versions": {}},
            "secrets": {},
            "last_rotation": None,
        }
        store = cls(path, document, master)
        nonce = secrets.token_bytes(NONCE_SIZE)
        document["verifier"] = _b64(nonce + store._aead.encrypt(nonce, _VERIFIER, b"verifier"))
        store._add_kek_version_to(document)
        path.parent.mkdir(parents=True, exist_ok=True)
        with store._locked():
            store._write(document)
        return store

    @classmethod
    def open(cls, path: Path, *, passphrase: str | None = None, master_key: bytes | None = None) -> Keystore:
        document = cls._read(path)
        try:
            suite = Suite[document["suite"]]
            kdf = document["kdf"]
            if kdf["alg"] == "scrypt":
                if not passphrase:
                    raise KeystoreLocked(f"keystore {path} is locked: set HUB_MASTER_PASSPHRASE")
                master = derive_master_key(passphrase, _unb64(kdf["salt"]), suite, int(kdf["n"]))
            elif kdf["alg"] == "direct":
                if master_key is None:
                    raise KeystoreLocked(f"keystore {path} is locked: set HUB_MASTER_KEY")
                master = master_key
            else:
                raise KeystoreUnavailable(f"keystore {path}: unknown key derivation {kdf['alg']!r}")
            verifier = _unb64(document["verifier"])
        except (KeyError, ValueError, TypeError, binascii.Error):
            raise KeystoreUnavailable(f"keystore {path}: corrupt (missing or malformed entries)") from None
        if len(master) != suite.key_size:
            raise WrongPassphrase(f"keystore {path}: wrong passphrase or master key")
        try:
            aead_for(suite, master).decrypt(verifier[:NONCE_SIZE], verifier[NONCE_SIZE:], b"verifier")
        except InvalidTag:
            raise WrongPassphrase(f"keystore {path}: wrong passphrase or master key") from None
        return cls(path, document, master)

    # -- file handling -----------------------------------------------------------------------------

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise KeystoreUnavailable(f"keystore {path} does not exist; create it with 'hub keys init'") from None
        except OSError as error:
            raise KeystoreUnavailable(f"keystore {path}: cannot be read ({error.strerror})") from None
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise KeystoreUnavailable(f"keystore {path}: corrupt (not JSON)") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise KeystoreUnavailable(f"keystore {path}: corrupt (not a {FORMAT} file)")
        return document

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, document: dict[str, Any]) -> None:
        data = json.dumps(document, indent=1, sort_keys=True).encode("utf-8")
        descriptor, temporary = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            Path(temporary).replace(self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._doc = document

    @contextlib.contextmanager
    def _modify(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write under the lock, so two processes never lose each other's changes."""
        with self._locked():
            document = self._read(self.path)
            yield document
            self._write(document)

    # -- sealing -----------------------------------------------------------------------------------

    def _seal(self, kind: str, name: str, secret: bytes) -> str:
        if self._sealed_shut:
            raise KeystoreLocked(f"keystore {self.path} is locked")
        nonce = secrets.token_bytes(NONCE_SIZE)
        return _b64(nonce + self._aead.encrypt(nonce, secret, encode_context("keystore", kind, name)))

    def _unseal(self, kind: str, name: str, sealed: str) -> bytes:
        if self._sealed_shut:
            raise KeystoreLocked(f"keystore {self.path} is locked")
        key = (kind, name)
        if key not in self._cache:
            blob = _unb64(sealed)
            what = f"keystore {self.path} entry {kind}/{name}"
            self._cache[key] = open_or_raise(
                self._aead, blob[:NONCE_SIZE], blob[NONCE_SIZE:], encode_context("keystore", kind, name), what
            )
        return self._cache[key]

    # -- KEKs (KekProvider) ------------------------------------------------------------------------

    @property
    def kek_id(self) -> str:
        return str(self._doc["kek"]["id"])

    @property
    def current_kek_version(self) -> int:
        return int(self._doc["kek"]["current"])

    def _add_kek_version_to(self, document: dict[str, Any]) -> int:
        kek = document["kek"]
        version = max((int(v) for v in kek["versions"]), default=0) + 1
        material = secrets.token_bytes(self.suite.key_size)
        kek["versions"][str(version)] = {
            "sealed": self._seal("kek", f"{kek['id']}@{version}", material),
            "created_at": _now(),
            "retired_at": None,
        }
        kek["current"] = version
        return version

    def _kek(self, version: int) -> bytes:
        entry = self._doc["kek"]["versions"].get(str(version))
        if entry is None or entry.get("sealed") is None:
            raise UnknownKey(f"KEK {self.kek_id} version {version} is not in the keystore (retired or never made)")
        return self._unseal("kek", f"{self.kek_id}@{version}", entry["sealed"])

    def _kek_aead(self, version: int) -> Aead:
        """The KEK version's cipher, kept (like the unsealed material) until lock or retirement: building
        one costs more than the wrap it serves, and a first ingestion wraps a key per resident."""
        name = f"{self.kek_id}@{version}"
        aead = self._aeads.get(name)
        entry = self._doc["kek"]["versions"].get(str(version))
        if aead is None or entry is None or entry.get("sealed") is None or self._sealed_shut:
            aead = self._aeads[name] = aead_for(self.suite, self._kek(version))  # raises when it is gone
        return aead

    def wrap(self, dek: bytes, associated_data: bytes) -> tuple[int, bytes]:
        version, (wrapped,) = self.wrap_many([(dek, associated_data)])
        return version, wrapped

    def wrap_many(self, deks: Sequence[tuple[bytes, bytes]]) -> tuple[int, list[bytes]]:
        """Wrap (DEK, associated data) pairs under the current KEK version, each under its own nonce: a
        first ingestion wraps one key per resident, so the per-call lookups are done once per batch."""
        version = self.current_kek_version
        encrypt = self._kek_aead(version).encrypt
        nonces = os.urandom(NONCE_SIZE * len(deks))
        wrapped = []
        for index, (dek, associated_data) in enumerate(deks):
            nonce = nonces[index * NONCE_SIZE : (index + 1) * NONCE_SIZE]
            wrapped.append(nonce + encrypt(nonce, dek, associated_data))
        return version, wrapped

    def unwrap(self, version: int, wrapped: bytes, associated_data: bytes) -> bytes:
        aead = self._kek_aead(version)
        return open_or_raise(aead, wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], associated_data, "wrapped data key")

    def add_kek_version(self) -> int:
        with self._modify() as document:
            version = self._add_kek_version_to(document)
            document["last_rotation"] = _now()
        return version

    def retire_kek_version(self, version: int) -> None:
        """Destroy an old KEK version's sealed material; callers check that nothing still uses it."""
        if version == self.current_kek_version:
            raise KeyInUse(f"KEK {self.kek_id} version {version} is current; rotate first")
        with self._modify() as document:
            entry = document["kek"]["versions"].get(str(version))
            if entry is None:
                raise UnknownKey(f"KEK {self.kek_id} has no version {version}")
            entry["sealed"] = None
            entry["retired_at"] = entry["retired_at"] or _now()
        self._cache.pop(("kek", f"{self.kek_id}@{version}"), None)
        self._aeads.pop(f"{self.kek_id}@{version}", None)

    def kek_versions(self) -> list[KekVersion]:
        current = self.current_kek_version
        return [
            KekVersion(
                version=int(v),
                created_at=datetime.fromisoformat(e["created_at"]),
                retired_at=datetime.fromisoformat(e["retired_at"]) if e["retired_at"] else None,
                current=int(v) == current,
            )
            for v, e in sorted(self._doc["kek"]["versions"].items(), key=lambda item: int(item[0]))
        ]

    @property
    def last_rotation(self) -> datetime | None:
        value = self._doc.get("last_rotation")
        return datetime.fromisoformat(value) if value else None

    # -- named secrets (blind-index and pseudonym keys) ---------------------------------------------

    def secret_names(self, prefix: str = "") -> list[str]:
        return sorted(name for name in self._doc["secrets"] if name.startswith(prefix))

    def secret(self, name: str) -> bytes:
        """A named 256-bit secret, created on first use and never changed afterwards."""
        entry = self._doc["secrets"].get(name)
        if entry is None:
            with self._modify() as document:
                entry = document["secrets"].get(name)
                if entry is None:  # nobody created it while we waited for the lock
                    entry = {
                        "sealed": self._seal("secret", name, secrets.token_bytes(32)),
                        "created_at": _now(),
                    }
                    document["secrets"][name] = entry
        return self._unseal("secret", name, entry["sealed"])

"""The hub's audit log: opened with keys from keys/, plus the hooks the API serves to auditors.

Signing keys are Ed25519 seeds kept as keystore secrets ``audit:signing:<n>``; the two newest sign
every checkpoint and manifest, so rotating the key never leaves an auditor pinned to the older one
without a verifiable signature. Subject pseudonyms are keyed HMACs under their own family
(``audit.subject``), distinct from the store's blind index: the audit log alone names nobody, and a
resident's own lookup (who accessed my data) recomputes their pseudonym to find their entries.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url

from audit.entries import Actor, EntryDraft
from audit.export import EntryFilter, export_bundle, export_filtered
from audit.log import AuditLog
from audit.merkle import leaf_hash
from audit.note import Checkpoint, NoteSigner, VerifierKey, split_note
from audit.timestamp import TimestampAuthority
from audit.witness import Witness
from hub.errors import HubError, SettingsError
from hub.identifiers import normalise_id_number
from hub.settings import Settings
from hub.store import create_store_engine, init_audit_schema
from hub.store.engine import STORE_PAGE_SIZE
from keys.service import KeyService, ShredReceipt
from keys.sql import create_sql_engine

SIGNING_PREFIX = "audit:signing:"
PSEUDONYM_FAMILY = "audit.subject"
SIGNING_KEYS_IN_USE = 2


def _signing_versions(keys: KeyService) -> list[int]:
    return sorted(int(name.removeprefix(SIGNING_PREFIX)) for name in keys.keystore.secret_names(SIGNING_PREFIX))


def signers(keys: KeyService, origin: str) -> list[NoteSigner]:
    """The current signing key first, then its predecessor (if any)."""
    versions = _signing_versions(keys) or [1]
    chosen = sorted(versions, reverse=True)[:SIGNING_KEYS_IN_USE]
    return [
        NoteSigner(origin, Ed25519PrivateKey.from_private_bytes(keys.keystore.secret(f"{SIGNING_PREFIX}{v}")))
        for v in chosen
    ]


def rotate_signing_key(keys: KeyService) -> int:
    version = max(_signing_versions(keys) or [0]) + 1
    keys.keystore.secret(f"{SIGNING_PREFIX}{version}")
    return version


def audit_database_url(settings: Settings) -> str:
    """Where the audit log is: the configured place (Settings.effective_audit_database_url), except that a
    store made before the log had a database of its own keeps its log where it is, entries, access index and
    all, rather than starting an empty one beside it."""
    chosen = settings.effective_audit_database_url
    store = settings.effective_database_url
    if settings.audit_database_url or chosen == store:
        return chosen
    target = make_url(chosen).database
    if target and Path(target).exists():
        return chosen
    engine = create_store_engine(store)
    try:
        if not inspect(engine).has_table("audit_entry"):
            return chosen
        with engine.connect() as connection:
            holds_entries = connection.exec_driver_sql("SELECT 1 FROM audit_entry LIMIT 1").first() is not None
    finally:
        engine.dispose()
    return store if holds_entries else chosen


def create_audit_engine(url: str) -> Engine:
    """An engine for the audit log's database; a new SQLite file gets the store's page size (measured with
    bench/api.py, a log in a file of 4 KiB pages served no more person views than one of 16 KiB)."""
    try:
        return create_sql_engine(url, sqlite_page_size=STORE_PAGE_SIZE)
    except ValueError as error:
        raise SettingsError(f"HUB_AUDIT_DATABASE_URL: {error}") from None


def open_audit_log(settings: Settings, keys: KeyService, *, interval: bool = True) -> AuditLog:
    timestamper = None
    if settings.audit_tsa_url and settings.audit_tsa_cert and settings.audit_tsa_root:
        authority = TimestampAuthority.from_files(
            settings.audit_tsa_url, settings.audit_tsa_cert, settings.audit_tsa_root
        )
        timestamper = authority.stamp
    engine = create_audit_engine(audit_database_url(settings))
    init_audit_schema(engine)  # the agreements' use counters, which releases count in the log's transactions
    return AuditLog(
        engine,
        signers(keys, settings.audit_origin),
        settings.audit_origin,
        checkpoint_interval=settings.audit_checkpoint_seconds if interval else None,
        timestamper=timestamper,
    )


def operator_actor() -> Actor:
    """The person at the console, for CLI operations (their OS account, not their name)."""
    import getpass

    return Actor(agency="hub", principal=f"os:{getpass.getuser()}", role="operator")


def key_op(operation: str, actor: Actor, subject: str | None = None, **detail: str | int | bool) -> EntryDraft:
    """A ``key.op`` entry: what a key operation did, e.g. a shredding receipt, without key material."""
    return EntryDraft(type="key.op", actor=actor, subject=subject, detail={"operation": operation, **detail})


def shred_entry(receipt: ShredReceipt, actor: Actor, subject: str) -> EntryDraft:
    return key_op(
        "subject.shred",
        actor,
        subject=subject,
        dek=receipt.dek_id,
        kek=receipt.kek_id,
        kek_version=receipt.kek_version,
        shredded_at=receipt.shredded_at,
        wrapped_copies_destroyed=receipt.wrapped_copies_destroyed,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Evidence:
    """Audit operations for the API and CLI: append, pseudonyms, checkpoint, proofs and exports."""

    log: AuditLog
    keys: KeyService

    def pseudonym(self, id_number: str) -> str:
        return self.keys.blind_index(PSEUDONYM_FAMILY, normalise_id_number(id_number)).hex()

    def append(self, draft: EntryDraft) -> int:
        return self.log.append(draft).seq

    def verifier_keys(self) -> list[str]:
        return [s.verifier.encode() for s in self.log.signers]

    def current_checkpoint(self) -> dict[str, Any]:
        note = self.log.checkpoint()
        checkpoint = Checkpoint.parse(split_note(note)[0])
        return {"origin": checkpoint.origin, "size": checkpoint.size, "root": _b64(checkpoint.root), "note": note}

    def inclusion_proof(self, seq: int, size: int | None = None) -> dict[str, Any]:
        size = size if size is not None else int(self.current_checkpoint()["size"])
        body = next(iter(self.log.bodies(seq, seq + 1)))
        return {
            "seq": seq,
            "tree_size": size,
            "leaf_hash": _b64(leaf_hash(body)),
            "entry": body.decode("utf-8"),
            "proof": [_b64(p) for p in self.log.inclusion_proof(seq, size)],
            "root": _b64(self.log.root(size)),
        }

    def consistency_proof(self, size1: int, size2: int) -> dict[str, Any]:
        return {
            "size1": size1,
            "size2": size2,
            "root1": _b64(self.log.root(size1)),
            "root2": _b64(self.log.root(size2)),
            "proof": [_b64(p) for p in self.log.consistency_proof(size1, size2)],
        }

    def export(self, out: Path, start: int = 0, end: int | None = None) -> Path:
        return export_bundle(self.log, out, start, end)

    def export_filtered(self, out: Path, selection: EntryFilter) -> Path:
        return export_filtered(self.log, out, selection)


def load_or_create_ed25519(path: Path) -> Ed25519PrivateKey:
    """A witness's Ed25519 key from a PEM file, created (mode 0600) on first use."""
    if path.exists():
        loaded = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise HubError(f"{path} is not an Ed25519 private key")
        return loaded
    private = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return private


def witness_latest(evidence: Evidence, name: str, key_file: Path, state: Path) -> tuple[str, str, Witness]:
    """Have a witness cosign the log's latest checkpoint, proving from the size it holds.

    Returns the checkpoint note, the cosignature line (also stored with the checkpoint) and the witness.
    """
    trusted = [VerifierKey.parse(k) for k in evidence.verifier_keys()]
    witness = Witness(name, load_or_create_ed25519(key_file), state, trusted)
    current = evidence.current_checkpoint()
    held = witness.held(str(current["origin"]))
    old = held[0] if held else 0
    size = int(current["size"])
    proof = evidence.log.consistency_proof(old, size) if 0 < old <= size else []
    line = witness.add_checkpoint(old, proof, str(current["note"]))
    latest = evidence.log.latest_checkpoint()
    if latest is not None:
        evidence.log.add_cosignature(latest[0], name, line)
    return str(current["note"]), line, witness

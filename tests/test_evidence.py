"""The hub's audit wiring: keys from the keystore, pseudonyms, API hooks, audited key operations."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.entries import Actor, EntryDraft
from audit.merkle import verify_consistency, verify_inclusion
from audit.note import Checkpoint, VerifierKey, split_note, verify_note
from hub.evidence import Evidence, open_audit_log, rotate_signing_key
from hub.protection import open_key_service
from hub.settings import load_settings
from tests.support import run_hub

ID = "11010519491231002X"


@pytest.fixture
def evidence(tmp_path: Path) -> Iterator[Evidence]:
    settings = load_settings(var_dir=tmp_path, master_key=os.urandom(32).hex(), profile="production")
    keys = open_key_service(settings, create=True)
    log = open_audit_log(settings, keys, interval=False)
    yield Evidence(log, keys)
    log.close()


def test_pseudonyms_are_stable_keyed_and_not_the_store_index(evidence: Evidence) -> None:
    pseudonym = evidence.pseudonym(ID.lower())
    assert pseudonym == evidence.pseudonym(f" {ID} ")
    assert len(pseudonym) == 64 and ID not in pseudonym
    assert bytes.fromhex(pseudonym) != evidence.keys.blind_index("id_number", ID)


def test_hooks_return_verifiable_proofs(evidence: Evidence) -> None:
    actor = Actor(agency="police", principal="P-1", role="officer")
    for n in range(9):
        evidence.append(
            EntryDraft(type="access.decision", actor=actor, subject=evidence.pseudonym(ID), detail={"n": n})
        )
    first = evidence.current_checkpoint()
    evidence.append(EntryDraft(type="admin", actor=actor))
    second = evidence.current_checkpoint()
    proof = evidence.inclusion_proof(4)
    verify_inclusion(
        4,
        proof["tree_size"],
        base64.b64decode(proof["leaf_hash"]),
        [base64.b64decode(p) for p in proof["proof"]],
        base64.b64decode(second["root"]),
    )
    assert ID not in proof["entry"] and '"seq":4' in proof["entry"]
    consistency = evidence.consistency_proof(first["size"], second["size"])
    verify_consistency(
        9,
        10,
        [base64.b64decode(p) for p in consistency["proof"]],
        base64.b64decode(first["root"]),
        base64.b64decode(second["root"]),
    )


def test_signing_key_rotation_adds_a_signature_line(evidence: Evidence, tmp_path: Path) -> None:
    old_key = VerifierKey.parse(evidence.verifier_keys()[0])
    rotate_signing_key(evidence.keys)
    settings = load_settings(var_dir=tmp_path, master_key="00" * 32, profile="production")
    log = open_audit_log(settings.model_copy(update={"master_key": None}), evidence.keys, interval=False)
    rotated = Evidence(log, evidence.keys)
    rotated.append(EntryDraft(type="admin", actor=Actor(agency="hub", principal="os:root", role="operator")))
    note = rotated.current_checkpoint()["note"]
    assert note.count("\u2014 hub.local/audit ") == 2
    new_key = VerifierKey.parse(rotated.verifier_keys()[0])
    assert new_key != old_key
    assert Checkpoint.parse(verify_note(note, old_key)).size == Checkpoint.parse(verify_note(note, new_key)).size == 1
    log.close()


def test_cli_key_operations_are_audited_and_exported(tmp_path: Path) -> None:
    assert run_hub(["keys", "init"], tmp_path).returncode == 0
    assert run_hub(["keys", "rotate"], tmp_path).returncode == 0
    shred = run_hub(["keys", "shred", "--id-number", ID, "--yes"], tmp_path)
    assert shred.returncode == 0, shred.stderr
    export = run_hub(["audit", "export", "--out", str(tmp_path / "bundle")], tmp_path)
    assert export.returncode == 0, export.stderr
    lines = (tmp_path / "bundle" / "entries.jsonl").read_text().splitlines()
    assert ['"operation":"kek.rotate"' in lines[0], '"operation":"subject.shred"' in lines[1]] == [True, True]
    assert ID not in "".join(lines) and ID.lower() not in "".join(lines)
    verify = run_hub(["audit", "verify", str(tmp_path / "bundle")], tmp_path)
    assert verify.returncode == 0 and verify.stdout.startswith("OK hub.local/audit: entries [0, 2)")
    filtered = run_hub(["audit", "export", "--out", str(tmp_path / "mine"), "--subject-id", ID.lower()], tmp_path)
    assert filtered.returncode == 0
    assert len((tmp_path / "mine" / "entries.jsonl").read_text().splitlines()) == 1
    witness = run_hub(["audit", "witness"], tmp_path)
    assert witness.returncode == 0 and "witness.local/w1" in witness.stdout
    body, signatures = split_note(witness.stdout.split("witness key:")[0])
    assert len(signatures) == 2 and Checkpoint.parse(body).size == 2


def _entry() -> EntryDraft:
    return EntryDraft(type="admin", actor=Actor(agency="hub", principal="op", role="operator"))


def test_a_sqlite_store_keeps_its_log_in_a_file_of_its_own(tmp_path: Path) -> None:
    """Commits to the log must not make the store's readers drop their page caches: the two are separate files."""
    from sqlalchemy import inspect

    from hub.store import create_store_engine, init_schema

    settings = load_settings(var_dir=tmp_path, master_key=os.urandom(32).hex())
    assert settings.effective_audit_database_url == f"sqlite:///{tmp_path / 'audit.db'}"
    store = create_store_engine(settings.effective_database_url)
    init_schema(store)
    keys = open_key_service(settings, create=True)
    log = open_audit_log(settings, keys, interval=False)
    try:
        Evidence(log, keys).append(_entry())
        assert log.engine.url.database == str(tmp_path / "audit.db")
        assert {"audit_entry", "agreement_use"} <= set(inspect(log.engine).get_table_names())
        assert not {"audit_entry", "access_index", "agreement_use"} & set(inspect(store).get_table_names())
    finally:
        log.close()


def test_the_log_shares_a_postgresql_store_unless_configured_elsewhere() -> None:
    url = "postgresql://hub@127.0.0.1/hub"
    assert load_settings(database_url=url).effective_audit_database_url == url
    elsewhere = "postgresql://audit@127.0.0.1/audit"
    assert load_settings(database_url=url, audit_database_url=elsewhere).effective_audit_database_url == elsewhere


def test_a_store_that_holds_its_log_already_keeps_it_there(tmp_path: Path) -> None:
    """A store from before the log had a file of its own: its entries stay where they are, none are orphaned."""
    settings = load_settings(var_dir=tmp_path, master_key=os.urandom(32).hex())
    keys = open_key_service(settings, create=True)
    legacy = open_audit_log(settings.model_copy(update={"audit_database_url": settings.effective_database_url}), keys)
    Evidence(legacy, keys).append(_entry())
    legacy.close()
    log = open_audit_log(settings, keys, interval=False)
    try:
        assert log.engine.url.database == str(tmp_path / "hub.db") and log.size == 1
        assert not (tmp_path / "audit.db").exists()
    finally:
        log.close()

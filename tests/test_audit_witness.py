"""The witness cosigns only checkpoints that extend the history it holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entries import Actor, EntryDraft
from audit.log import AuditLog
from audit.note import NoteSigner, VerifierKey, verify_note
from audit.witness import SizeConflict, Witness, WitnessRefusal
from keys.sql import create_sql_engine

ORIGIN = "hub.test/audit"


def draft(n: int) -> EntryDraft:
    return EntryDraft(
        type="admin", actor=Actor(agency="civil_affairs", principal="admin-1", role="agency_admin"), detail={"n": n}
    )


def build(path: Path, signer: NoteSigner, count: int, change: int | None = None) -> AuditLog:
    log = AuditLog(create_sql_engine(f"sqlite:///{path}"), signer, ORIGIN)
    for n in range(count):
        log.append(draft(n + 1000 if n == change else n))
    return log


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


@pytest.fixture
def witness(tmp_path: Path, signer: NoteSigner) -> Witness:
    return Witness("witness.test/w1", Ed25519PrivateKey.generate(), tmp_path / "witness.json", [signer.verifier])


def test_witness_cosigns_a_growing_log(tmp_path: Path, signer: NoteSigner, witness: Witness) -> None:
    log = build(tmp_path / "a.db", signer, 10)
    first = log.checkpoint()
    line = witness.add_checkpoint(0, [], first)
    cosigned = first + line
    assert verify_note(cosigned, VerifierKey.parse(witness.verifier.encode())) == first.split("\n\n")[0] + "\n"
    for n in range(10, 25):
        log.append(draft(n))
    second = log.checkpoint()
    witness.add_checkpoint(10, log.consistency_proof(10, 25), second)
    assert witness.held(ORIGIN) == (25, log.root(25))
    log.close()


def test_witness_refuses_older_unproven_and_foreign_checkpoints(
    tmp_path: Path, signer: NoteSigner, witness: Witness
) -> None:
    log = build(tmp_path / "a.db", signer, 10)
    old = log.checkpoint()
    for n in range(10, 20):
        log.append(draft(n))
    new = log.checkpoint()
    witness.add_checkpoint(0, [], new)
    with pytest.raises(SizeConflict) as conflict:
        witness.add_checkpoint(0, [], old)
    assert conflict.value.held_size == 20
    with pytest.raises(WitnessRefusal, match="older checkpoint"):
        witness.add_checkpoint(20, [], old)
    stranger = NoteSigner("hub.stranger/audit", Ed25519PrivateKey.generate())
    with pytest.raises(WitnessRefusal, match="unknown log"):
        witness.add_checkpoint(0, [], "hub.stranger/audit\n1\n" + "A" * 43 + "=\n\n" + stranger.signature_line("x\n"))
    forged = new.replace(new.split("\n")[2], "B" * 43 + "=")
    with pytest.raises(WitnessRefusal, match="does not verify"):
        witness.add_checkpoint(20, [], forged)
    log.close()


def test_witness_refuses_a_rewritten_log(tmp_path: Path, signer: NoteSigner, witness: Witness) -> None:
    honest = build(tmp_path / "honest.db", signer, 30)
    witness.add_checkpoint(0, [], honest.checkpoint())
    # The operator rebuilds the tables with entry 12 changed and more entries after, signed with the same key.
    rewritten = build(tmp_path / "rewritten.db", signer, 40, change=12)
    note = rewritten.checkpoint()
    with pytest.raises(WitnessRefusal, match="not consistent"):
        witness.add_checkpoint(30, rewritten.consistency_proof(30, 40), note)
    # Nor does the honest log's proof help: it proves a different old root.
    for n in range(30, 40):
        honest.append(draft(n))
    with pytest.raises(WitnessRefusal, match="not consistent"):
        witness.add_checkpoint(30, honest.consistency_proof(30, 40), note)
    assert witness.held(ORIGIN) == (30, honest.root(30))
    honest.close()
    rewritten.close()


def test_same_size_fork_is_refused(tmp_path: Path, signer: NoteSigner, witness: Witness) -> None:
    a = build(tmp_path / "a.db", signer, 8)
    b = build(tmp_path / "b.db", signer, 8, change=3)
    witness.add_checkpoint(0, [], a.checkpoint())
    with pytest.raises(WitnessRefusal, match="forked"):
        witness.add_checkpoint(8, [], b.checkpoint())
    a.close()
    b.close()


def test_bundles_carry_cosignatures_and_auditors_can_require_them(
    tmp_path: Path, signer: NoteSigner, witness: Witness
) -> None:
    from audit.export import export_bundle
    from audit.verify import VerificationError, verify_bundle

    log = build(tmp_path / "a.db", signer, 6)
    note = log.checkpoint()
    latest = log.latest_checkpoint()
    assert latest is not None
    log.add_cosignature(latest[0], "witness.test/w1", witness.add_checkpoint(0, [], note))
    bundle = export_bundle(log, tmp_path / "bundle")
    assert "witness.test/w1" in (bundle / "checkpoint.note").read_text()
    assert verify_bundle(bundle, signer.verifier, witnesses=[witness.verifier]).end == 6
    other = Witness("witness.test/w2", Ed25519PrivateKey.generate(), tmp_path / "w2.json", [signer.verifier])
    with pytest.raises(VerificationError, match=r"witness witness\.test/w2: note: no signature"):
        verify_bundle(bundle, signer.verifier, witnesses=[other.verifier])
    log.close()

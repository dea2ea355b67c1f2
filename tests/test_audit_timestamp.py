"""RFC 3161 time-stamps on checkpoints, against a real OpenSSL TSA on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entries import Actor, EntryDraft
from audit.export import EntryFilter, export_bundle, export_filtered
from audit.log import AuditLog
from audit.note import NoteSigner
from audit.timestamp import TimestampAuthority, TimestampError
from audit.verify import TrustedTsa, VerificationError, verify_bundle
from keys.sql import create_sql_engine
from tests.tsa import LocalTsa, local_tsa

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the local TSA needs the openssl CLI")
ORIGIN = "hub.test/audit"


@pytest.fixture(scope="module")
def tsa() -> Iterator[LocalTsa]:
    with local_tsa() as endpoint:
        yield endpoint


@pytest.fixture
def log(tmp_path: Path, tsa: LocalTsa) -> Iterator[AuditLog]:
    authority = TimestampAuthority.from_files(tsa.url, tsa.certificate, tsa.root)
    audit = AuditLog(
        create_sql_engine(f"sqlite:///{tmp_path / 'a.db'}"),
        NoteSigner(ORIGIN, Ed25519PrivateKey.generate()),
        ORIGIN,
        timestamper=authority.stamp,
    )
    for n in range(12):
        audit.append(EntryDraft(type="admin", actor=Actor(agency="police", principal="a", role="r"), detail={"n": n}))
    yield audit
    audit.close()


def test_checkpoints_carry_verified_tokens_into_bundles(log: AuditLog, tsa: LocalTsa, tmp_path: Path) -> None:
    log.checkpoint()
    stored = log.latest_checkpoint_row()
    assert stored is not None and stored.timestamp_token
    bundle = export_bundle(log, tmp_path / "bundle")
    trusted = TrustedTsa(tsa.certificate, tsa.root)
    verdict = verify_bundle(bundle, log.signer.verifier, tsa=trusted)
    assert verdict.timestamp is not None and verdict.timestamp.startswith("time-stamped by the TSA at 20")
    assert "not checked" in str(verify_bundle(bundle, log.signer.verifier).timestamp)
    filtered = export_filtered(log, tmp_path / "filtered", EntryFilter(agency="police"))
    assert verify_bundle(filtered, log.signer.verifier, tsa=trusted).timestamp is not None
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "audit.verify",
            str(bundle),
            "--key",
            log.signer.verifier.encode(),
            "--tsa-cert",
            str(tsa.certificate),
            "--tsa-root",
            str(tsa.root),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0 and "time-stamped by the TSA at" in cli.stdout


def test_a_token_from_another_checkpoint_or_root_fails(log: AuditLog, tsa: LocalTsa, tmp_path: Path) -> None:
    log.checkpoint()
    first = export_bundle(log, tmp_path / "first")
    log.append(EntryDraft(type="admin", actor=Actor(agency="police", principal="a", role="r")))
    log.checkpoint()
    second = export_bundle(log, tmp_path / "second")
    trusted = TrustedTsa(tsa.certificate, tsa.root)
    swapped = tmp_path / "swapped"
    shutil.copytree(second, swapped)
    shutil.copy(first / "checkpoint.tsr", swapped / "checkpoint.tsr")
    with pytest.raises(VerificationError, match=r"checkpoint\.tsr: digest"):
        verify_bundle(swapped, log.signer.verifier, tsa=trusted)
    with local_tsa() as stranger, pytest.raises(VerificationError, match="timestamp"):  # a TSA nobody trusts
        verify_bundle(second, log.signer.verifier, tsa=TrustedTsa(stranger.certificate, stranger.root))


def test_an_unreachable_tsa_fails_the_checkpoint_not_the_log(tmp_path: Path, tsa: LocalTsa) -> None:
    authority = TimestampAuthority.from_files("http://127.0.0.1:9/", tsa.certificate, tsa.root)
    audit = AuditLog(
        create_sql_engine(f"sqlite:///{tmp_path / 'b.db'}"),
        NoteSigner(ORIGIN, Ed25519PrivateKey.generate()),
        ORIGIN,
        timestamper=authority.stamp,
    )
    audit.append(EntryDraft(type="admin", actor=Actor(agency="police", principal="a", role="r")))
    with pytest.raises(TimestampError, match="unreachable"):
        audit.checkpoint()
    assert audit.latest_checkpoint() is None and audit.size == 1
    audit.close()


def test_hub_settings_wire_the_tsa(tmp_path: Path, tsa: LocalTsa) -> None:
    import os

    from hub.evidence import Evidence, open_audit_log
    from hub.protection import open_key_service
    from hub.settings import load_settings

    settings = load_settings(
        var_dir=tmp_path,
        master_key=os.urandom(32).hex(),
        audit_tsa_url=tsa.url,
        audit_tsa_cert=tsa.certificate,
        audit_tsa_root=tsa.root,
    )
    keys = open_key_service(settings, create=True)
    audit = open_audit_log(settings, keys, interval=False)
    evidence = Evidence(audit, keys)
    evidence.append(EntryDraft(type="admin", actor=Actor(agency="hub", principal="os:test", role="operator")))
    bundle = evidence.export(tmp_path / "bundle")
    assert (bundle / "checkpoint.tsr").is_file()
    audit.close()
    with pytest.raises(Exception, match="HUB_AUDIT_TSA_URL needs"):
        load_settings(var_dir=tmp_path, audit_tsa_url=tsa.url)

"""The embedded keystore file: sealed at rest, atomic, and failing closed with clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from keys.errors import KeysError, KeystoreLocked, KeystoreUnavailable, WrongPassphrase
from keys.keystore import Keystore, parse_master_key
from keys.suites import Suite

FAST = 2**10  # scrypt cost for tests; production files use the default


def test_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ks.json"
    Keystore.create(path, passphrase="correct horse", scrypt_n=FAST)
    with pytest.raises(WrongPassphrase, match=r"ks\.json: wrong passphrase or master key"):
        Keystore.open(path, passphrase="battery staple")
    assert Keystore.open(path, passphrase="correct horse").current_kek_version == 1


def test_locked_missing_and_corrupt_keystores_fail_closed(tmp_path: Path) -> None:
    path = tmp_path / "ks.json"
    with pytest.raises(KeystoreUnavailable, match="does not exist; create it with 'hub keys init'"):
        Keystore.open(path, passphrase="x")
    Keystore.create(path, passphrase="pw", scrypt_n=FAST)
    with pytest.raises(KeystoreLocked, match="locked: set HUB_MASTER_PASSPHRASE"):
        Keystore.open(path)
    document = json.loads(path.read_text())
    del document["verifier"]
    path.write_text(json.dumps(document))
    with pytest.raises(KeystoreUnavailable, match="corrupt"):
        Keystore.open(path, passphrase="pw")
    path.write_text("{ half a file")
    with pytest.raises(KeystoreUnavailable, match="corrupt"):
        Keystore.open(path, passphrase="pw")


def test_a_tampered_sealed_entry_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ks.json"
    keystore = Keystore.create(path, passphrase="pw", scrypt_n=FAST)
    keystore.secret("index:id_number")
    document = json.loads(path.read_text())
    # Swap the index key's sealed blob with the KEK's: names are bound in, so this must fail.
    document["secrets"]["index:id_number"]["sealed"] = document["kek"]["versions"]["1"]["sealed"]
    path.write_text(json.dumps(document))
    reopened = Keystore.open(path, passphrase="pw")
    with pytest.raises(KeysError):
        reopened.secret("index:id_number")


def test_file_holds_no_key_in_clear_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "ks.json"
    master = os.urandom(32)
    keystore = Keystore.create(path, master_key=master)
    secret = keystore.secret("index:id_number")
    kek = keystore._kek(1)
    raw = path.read_bytes()
    for material in (master, secret, kek):
        assert material not in raw and material.hex().encode() not in raw
        import base64

        assert base64.b64encode(material) not in raw
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("ks.json.") and p.suffix != ".lock"]


def test_master_key_forms_and_sm4_suite(tmp_path: Path) -> None:
    master = os.urandom(16)
    path = tmp_path / "sm.json"
    Keystore.create(path, master_key=master, suite=Suite.SM4_GCM)
    assert Keystore.open(path, master_key=parse_master_key(master.hex())).suite is Suite.SM4_GCM
    with pytest.raises(WrongPassphrase):
        Keystore.open(path, master_key=os.urandom(16))
    with pytest.raises(KeystoreLocked, match="16-byte master key"):
        Keystore.create(tmp_path / "x.json", master_key=os.urandom(32), suite=Suite.SM4_GCM)


def test_secrets_are_stable_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "ks.json"
    first = Keystore.create(path, passphrase="pw", scrypt_n=FAST)
    value = first.secret("index:phone")
    second = Keystore.open(path, passphrase="pw")
    assert second.secret("index:phone") == value
    second.add_kek_version()
    third = Keystore.open(path, passphrase="pw")
    assert third.secret("index:phone") == value and third.current_kek_version == 2


@pytest.mark.parametrize("suite", list(Suite), ids=lambda s: s.label)
def test_wrap_many_round_trips_each_under_its_own_nonce_and_context(tmp_path: Path, suite: Suite) -> None:
    keystore = Keystore.create(tmp_path / "ks.json", master_key=os.urandom(suite.key_size), suite=suite)
    deks = [(os.urandom(suite.key_size), f"context-{i}".encode()) for i in range(50)]
    version, wrapped = keystore.wrap_many(deks)
    assert version == keystore.current_kek_version and len({w[:12] for w in wrapped}) == 50  # fresh nonces
    assert [keystore.unwrap(version, w, context) for w, (_, context) in zip(wrapped, deks, strict=True)] == [
        dek for dek, _ in deks
    ]
    with pytest.raises(KeysError):
        keystore.unwrap(version, wrapped[0], deks[1][1])  # bound to its own context
    keystore.lock()
    with pytest.raises(KeystoreLocked):
        keystore.wrap_many(deks)

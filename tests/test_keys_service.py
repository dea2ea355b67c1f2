"""Envelope encryption, per-subject keys, rotation and crypto-shredding."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import sealed_record
from keys.ciphertext import FieldContext, parse
from keys.deks import create_keys_engine
from keys.errors import DecryptionError, KeyInUse, KeyShredded, UnknownKey
from keys.keystore import Keystore
from keys.service import KeyService
from keys.suites import Suite

WHERE = ("health.visit", "V2611200000001", "diagnosis")


def make_service(directory: Path, suite: Suite, database_url: str | None = None) -> KeyService:
    keystore = Keystore.create(directory / f"ks-{suite.name}.json", master_key=os.urandom(suite.key_size), suite=suite)
    return KeyService(keystore, create_keys_engine(database_url or f"sqlite:///{directory / (suite.name + '.db')}"))


@pytest.fixture(params=list(Suite), ids=lambda s: s.label)
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyService]:
    yield make_service(tmp_path, request.param)


def subject(service: KeyService, id_number: str = "11010519491231002X") -> bytes:
    return service.blind_index("id_number", id_number)


def test_round_trip_and_header(service: KeyService) -> None:
    key = service.key_for_subject(subject(service))
    blob = service.seal(key, "原发性高血压".encode(), *WHERE)
    assert service.unseal(blob, *WHERE).decode() == "原发性高血压"
    parsed = parse(blob)
    assert parsed.suite is service.suite and parsed.kek_id == "kek-main" and parsed.kek_version == 1
    assert parsed.dek_id == key.dek_id
    assert service.unseal_with(blob, FieldContext(*WHERE)) == "原发性高血压".encode()


def test_nonces_never_repeat(service: KeyService) -> None:
    key = service.key_for_subject(subject(service))
    nonces = {parse(service.seal(key, b"same", *WHERE)).nonce for _ in range(5000)}
    assert len(nonces) == 5000


def test_every_flipped_bit_raises(service: KeyService) -> None:
    key = service.key_for_subject(subject(service))
    blob = service.seal(key, b"13812345678", *WHERE)
    for position in range(len(blob)):
        for bit in range(8):
            altered = bytearray(blob)
            altered[position] ^= 1 << bit
            with pytest.raises(DecryptionError):
                service.unseal(bytes(altered), *WHERE)


def test_truncation_and_garbage_raise(service: KeyService) -> None:
    key = service.key_for_subject(subject(service))
    blob = service.seal(key, b"x", *WHERE)
    for cut in range(len(blob)):
        with pytest.raises(DecryptionError):
            service.unseal(blob[:cut], *WHERE)
    with pytest.raises(DecryptionError):
        service.unseal(b"not a ciphertext at all, but long enough to parse", *WHERE)


@pytest.mark.parametrize(
    "elsewhere",
    [
        ("health.visit", "V2611200000001", "department"),  # moved to another field
        ("health.visit", "V2611200000002", "diagnosis"),  # moved to another record
        ("police.incident", "V2611200000001", "diagnosis"),  # moved to another dataset
        ("health.visi", "tV2611200000001", "diagnosis"),  # boundary shift: the encoding is length-prefixed
    ],
)
def test_associated_data_mismatch_raises(service: KeyService, elsewhere: tuple[str, str, str]) -> None:
    key = service.key_for_subject(subject(service))
    blob = service.seal(key, b"value", *WHERE)
    with pytest.raises(DecryptionError):
        service.unseal(blob, *elsewhere)


def test_sealing_a_whole_record_gives_what_sealing_each_field_gives(service: KeyService) -> None:
    """seal_record is the ingestion path: every value must open exactly as seal's would, bound to its own
    field and record, each with a fresh nonce."""
    key = service.key_for_subject(subject(service))
    dataset, record, _ = WHERE
    values = {"diagnosis": "原发性高血压".encode(), "patient_name": "张三".encode(), "phone": b"13812345678"}
    sealed = service.seal_record(key, dataset, record, values)
    assert set(sealed) == set(values)
    for field, blob in sealed.items():
        assert service.unseal(blob, dataset, record, field) == values[field]
        one_by_one = parse(service.seal(key, values[field], dataset, record, field))
        assert parse(blob).header[:-12] == one_by_one.header[:-12]  # same suite, KEK, DEK; only the nonce differs
        with pytest.raises(DecryptionError):
            service.unseal(blob, dataset, record + "1", field)
    with pytest.raises(DecryptionError):
        service.unseal(sealed["diagnosis"], dataset, record, "patient_name")
    assert len({parse(b).nonce for b in sealed.values()}) == len(sealed)


def test_a_sealed_record_blob_holds_the_same_ciphertexts_in_less_room(service: KeyService) -> None:
    """seal_fields packs each field's ciphertext with the shared header stated once: unpacked, every value
    opens exactly as seal_record's would, and the blob is smaller than the JSON packing it replaced."""
    key = service.key_for_subject(subject(service))
    dataset, record, _ = WHERE
    values = {"diagnosis": "原发性高血压".encode(), "patient_name": "张三".encode(), "phone": b"13812345678"}
    blob = service.seal_fields(key, dataset, record, values)
    opened = sealed_record.unpack(blob)
    assert list(opened) == list(values)
    for field, ciphertext in opened.items():
        assert service.unseal(ciphertext, dataset, record, field) == values[field]
        assert parse(ciphertext).dek_id == key.dek_id
    legacy = orjson.dumps({f: base64.b64encode(c).decode() for f, c in opened.items()}, option=orjson.OPT_SORT_KEYS)
    assert sealed_record.unpack(legacy) == opened  # blobs stored by earlier releases still read
    assert len(blob) < 0.7 * len(legacy)


@given(
    fields=st.dictionaries(
        st.text(min_size=1, max_size=40).filter(lambda t: len(t.encode()) < 256), st.binary(max_size=300), max_size=8
    ),
    prefix=st.binary(max_size=64),
)
def test_sealed_record_blobs_round_trip_and_refuse_truncation(fields: dict[str, bytes], prefix: bytes) -> None:
    blob = sealed_record.pack(prefix, list(fields.items()))
    assert sealed_record.unpack(blob) == {f: prefix + rest for f, rest in fields.items()}
    for cut in sorted({0, 1, 4, 5 + len(prefix), len(blob) // 2, len(blob) - 1}):
        if cut < len(blob):
            with pytest.raises(DecryptionError):
                sealed_record.unpack(blob[:cut])


def test_a_malformed_sealed_blob_is_a_decryption_error() -> None:
    bad_blobs = (b"", b"\x02\x00\x00\x00\x00", b"\x01\x00\x01\x00\x09abc", b"{not json", b'{"f": 3}', b"\x01\x00\x01")
    for bad in (*bad_blobs, b"\x01\x00\x02\x00\x00\x01f\x00\x00\x00\x00"):  # the last: one field, two declared
        with pytest.raises(DecryptionError):
            sealed_record.unpack(bad)


def test_each_subject_has_its_own_key_and_index_is_canonical(service: KeyService) -> None:
    a = service.key_for_subject(subject(service, "11010519491231002x"))
    assert service.key_for_subject(subject(service, " 11010519491231002X ")).dek_id == a.dek_id
    b = service.key_for_subject(subject(service, "440524188001010014"))
    assert a.dek_id != b.dek_id
    assert service.blind_index("phone", "+86 138-1234-5678", "phone") == service.blind_index(
        "phone", "13812345678", "phone"
    )
    assert service.blind_index("phone", "13812345678", "phone") != service.blind_index("id_number", "13812345678")


def test_rotation_keeps_earlier_data_readable_and_allows_retirement(service: KeyService) -> None:
    blobs = []
    for n in range(30):
        key = service.key_for_subject(subject(service, f"11010519491231{n:03d}X"))
        blobs.append((n, service.seal(key, f"value {n}".encode(), "d.s", str(n), "f")))
    report = service.rotate()
    assert (report.old_version, report.new_version, report.rewrapped) == (1, 2, 30)
    with pytest.raises(KeyInUse):
        service.retire(2)
    service.retire(1)
    fresh = KeyService(Keystore.open(service.keystore.path, master_key=service.keystore._master), service.engine)
    for n, blob in blobs:
        assert fresh.unseal(blob, "d.s", str(n), "f") == f"value {n}".encode()
        assert parse(blob).kek_version == 1  # ciphertexts were not touched
    status = fresh.status()
    assert [(v.version, v.data_keys, v.retired_at is not None) for v in status.versions] == [
        (1, 0, True),
        (2, 30, False),
    ]
    with pytest.raises(UnknownKey):
        fresh.keystore.unwrap(1, b"\0" * 60, b"")


def test_retire_refused_while_keys_depend_on_the_version(service: KeyService) -> None:
    service.key_for_subject(subject(service))
    service.keystore.add_kek_version()  # a new version without rewrapping
    with pytest.raises(KeyInUse, match="still wraps 1 data keys"):
        service.retire(1)


def test_shredded_subject_raises_while_others_are_unaffected(service: KeyService) -> None:
    victim, other = subject(service, "11010519491231002X"), subject(service, "440524188001010014")
    victim_blob = service.seal(service.key_for_subject(victim), b"secret", *WHERE)
    other_blob = service.seal(service.key_for_subject(other), b"kept", *WHERE)
    receipt = service.shred(victim)
    assert receipt.wrapped_copies_destroyed == 1 and receipt.process_cache_evicted
    with pytest.raises(KeyShredded):
        service.unseal(victim_blob, *WHERE)
    with pytest.raises(KeyShredded):
        service.key_for_subject(victim)  # no new data can be sealed for an erased subject
    assert service.unseal(other_blob, *WHERE) == b"kept"
    # Another process (a fresh service on the same stores) cannot read it either.
    fresh = KeyService(Keystore.open(service.keystore.path, master_key=service.keystore._master), service.engine)
    with pytest.raises(KeyShredded):
        fresh.unseal(victim_blob, *WHERE)
    assert fresh.status().shredded == 1


def test_shredded_key_material_is_gone_from_the_sqlite_file(tmp_path: Path) -> None:
    service = make_service(tmp_path, Suite.AES_256_GCM)
    ref = subject(service)
    service.key_for_subject(ref)
    with service.engine.connect() as connection:
        wrapped = connection.exec_driver_sql("SELECT wrapped FROM key_dek").scalar_one()
    database = tmp_path / "AES_256_GCM.db"
    service.shred(ref)
    service.engine.dispose()
    for path in [database, *database.parent.glob("AES_256_GCM.db-*")]:
        assert bytes(wrapped) not in path.read_bytes()


def test_shred_before_any_data_leaves_a_tombstone(service: KeyService) -> None:
    ref = subject(service)
    receipt = service.shred(ref)
    assert receipt.wrapped_copies_destroyed == 0
    with pytest.raises(KeyShredded):
        service.key_for_subject(ref)


def test_cached_keys_expire_so_shredding_reaches_other_processes(tmp_path: Path) -> None:
    service = make_service(tmp_path, Suite.AES_256_GCM)
    service.cache_ttl = 0.0
    reader = KeyService(
        Keystore.open(service.keystore.path, master_key=service.keystore._master), service.engine, cache_ttl=0.0
    )
    ref = subject(service)
    blob = service.seal(service.key_for_subject(ref), b"x", *WHERE)
    assert reader.unseal(blob, *WHERE) == b"x"  # the reader now has the key cached
    service.shred(ref)
    with pytest.raises(KeyShredded):
        reader.unseal(blob, *WHERE)


def test_repr_never_shows_key_material(service: KeyService) -> None:
    key = service.key_for_subject(subject(service))
    texts = [repr(key), repr(service), repr(service.keystore), str(service.keystore)]
    material = service.keystore._master.hex()
    assert all(material not in text and "key_material" not in text for text in texts)


def test_keys_work_with_postgresql(tmp_path: Path, postgres_url: str) -> None:
    service = make_service(tmp_path, Suite.AES_256_GCM, postgres_url)
    ref = subject(service)
    blob = service.seal(service.key_for_subject(ref), b"on postgres", *WHERE)
    service.rotate()
    assert service.unseal(blob, *WHERE) == b"on postgres"
    receipt = service.shred(ref)
    assert "postgresql" in receipt.note
    with pytest.raises(KeyShredded):
        service.unseal(blob, *WHERE)


def _other_process(service: KeyService) -> KeyService:
    return KeyService(Keystore.open(service.keystore.path, master_key=service.keystore._master), service.engine)


def _check_prefetch(service: KeyService) -> None:
    refs = [subject(service, id_number) for id_number in ("11010519491231002X", "440524188001010014")]
    kept, erased = refs
    service.shred(erased)
    service.prefetch([*refs, kept])
    blob = service.seal(service.key_for_subject(kept), b"prefetched", *WHERE)
    other = _other_process(service)
    assert other.unseal(blob, *WHERE) == b"prefetched"  # the key was stored, wrapped, and opens elsewhere
    other.prefetch([kept])
    assert other.key_for_subject(kept).dek_id == service.key_for_subject(kept).dek_id
    with pytest.raises(KeyShredded):
        service.key_for_subject(erased)  # prefetch leaves an erased subject out; it stays erased


def test_prefetch_creates_stores_and_reuses_keys(service: KeyService) -> None:
    _check_prefetch(service)


def test_prefetch_works_with_postgresql(tmp_path: Path, postgres_url: str) -> None:
    _check_prefetch(make_service(tmp_path, Suite.AES_256_GCM, postgres_url))


def test_prefetch_that_loses_a_race_uses_the_winners_key(service: KeyService, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = subject(service)
    winner = _other_process(service)
    first_look = service._select_many

    def race(refs: list[bytes], columns: str = "") -> dict[bytes, dict[str, object]]:
        if not columns and not winner._by_subject:
            found = first_look(refs)  # nothing yet; then the other process creates the key
            winner.key_for_subject(ref)
            return found
        return first_look(refs, columns)

    monkeypatch.setattr(service, "_select_many", race)
    service.prefetch([ref])
    assert service.key_for_subject(ref).dek_id == winner.key_for_subject(ref).dek_id
    blob = winner.seal(winner.key_for_subject(ref), b"one key per subject", *WHERE)
    assert service.unseal(blob, *WHERE) == b"one key per subject"


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plaintext=st.binary(max_size=512),
    record=st.text(min_size=1, max_size=40),
    field=st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
)
def test_round_trip_property(service: KeyService, plaintext: bytes, record: str, field: str) -> None:
    key = service.key_for_subject(subject(service))
    blob = service.seal(key, plaintext, "d.s", record, field)
    assert service.unseal(blob, "d.s", record, field) == plaintext
    with pytest.raises(DecryptionError):
        service.unseal(blob, "d.s", record + "x", field)


def test_the_sweeper_bounds_how_long_another_process_keeps_a_shredded_key(tmp_path: Path) -> None:
    import time

    service = make_service(tmp_path, Suite.AES_256_GCM)
    keystore = Keystore.open(service.keystore.path, master_key=service.keystore._master)
    reader = KeyService(keystore, service.engine, cache_ttl=0.1)
    ref = subject(service)
    blob = service.seal(service.key_for_subject(ref), b"x", *WHERE)
    assert reader.unseal(blob, *WHERE) == b"x"  # cached in the reader
    service.shred(ref)
    time.sleep(0.3)  # more than 1.5 x cache_ttl
    with pytest.raises(KeyShredded):
        reader.unseal(blob, *WHERE)

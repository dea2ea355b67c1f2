"""The encryption boundary between sources and the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.catalog import load_catalog
from hub.protection import Erased, ProtectionError, RecordProtector
from hub.store import RecordStore, create_store_engine, init_schema
from hub.store.records import Provenance
from keys.deks import create_keys_engine
from keys.keystore import Keystore
from keys.service import KeyService

PERSON = {
    "person_no": "MZ110105000001",
    "id_number": "11010519491231002x",
    "name": "王秀英",
    "category": "solitary_elderly",
    "address": "北京市朝阳区团结湖东里3号楼2单元1201室",
    "phone": "13812345678",
    "guardian_name": "王建国",
    "guardian_phone": "13987654321",
    "community": "团结湖东里社区",
    "district": "110105",
    "registered_on": "2020-03-01",
    "updated_at": "2026-11-19T10:00:00+08:00",
}
VISIT = {
    "visit_no": "V2611190000001",
    "patient_id_number": "11010519491231002X",
    "patient_name": "王秀英",
    "hospital": "北京朝阳医院",
    "department": "神经内科",
    "diagnosis_code": "G30.9",
    "diagnosis": "阿尔茨海默病",
    "visit_time": "2026-11-18T09:30:00+08:00",
    "updated_at": "2026-11-18T12:00:00+08:00",
}
PROVENANCE = Provenance("civil_affairs", "registry", "registry_20261120.csv:2", datetime(2026, 11, 20, tzinfo=UTC))


@pytest.fixture
def protector(tmp_path: Path) -> RecordProtector:
    keystore = Keystore.create(tmp_path / "ks.json", master_key=os.urandom(32))
    return RecordProtector(
        KeyService(keystore, create_keys_engine(f"sqlite:///{tmp_path / 'keys.db'}")), load_catalog()
    )


def test_protect_store_and_reveal_across_agencies(protector: RecordProtector, store: RecordStore) -> None:
    person = protector.protect("civil_affairs.vulnerable_person", PERSON["person_no"], 1, PROVENANCE, PERSON)
    visit = protector.protect("health.visit", VISIT["visit_no"], 1, PROVENANCE, VISIT)
    assert person.subject_index == visit.subject_index  # same resident, two agencies, one index
    assert set(person.clear_fields) == {"person_no", "community", "district", "registered_on", "updated_at"}
    store.upsert([person, visit])
    found = store.by_subject(protector.subject_index("11010519491231002X"))
    assert {r.dataset_id for r in found} == {"civil_affairs.vulnerable_person", "health.visit"}
    revealed = {r.dataset_id: protector.reveal(r) for r in found}
    assert revealed["health.visit"]["diagnosis"] == "阿尔茨海默病"
    assert revealed["civil_affairs.vulnerable_person"]["id_number"] == "11010519491231002x"
    masked = protector.masked(next(r for r in found if r.dataset_id == "civil_affairs.vulnerable_person"))
    assert masked["name"] == "王**" and masked["phone"] == "138****5678" and masked["address"] == "北京市朝阳区"
    assert masked["community"] == "团结湖东里社区"


@pytest.mark.parametrize("value", ["王秀英", 'a\\b "q" \u2028', 2**70, -(2**63) - 1, 1.5, True, ["x", 1]])
def test_a_sealed_value_is_revealed_exactly_as_given(protector: RecordProtector, value: object) -> None:
    """Whatever JSON value a personal field held comes back equal and of the same type (orjson reads the
    strings; integers past 64 bits, which orjson would turn into floats, and the rest go the standard way)."""
    person = protector.protect("civil_affairs.vulnerable_person", "MZ1", 1, PROVENANCE, {**PERSON, "name": value})
    revealed = protector.reveal(person, {"name"})["name"]
    assert revealed == value and type(revealed) is type(value)


def test_a_nan_sealed_by_json_dumps_is_revealed(protector: RecordProtector) -> None:
    person = protector.protect("civil_affairs.vulnerable_person", "MZ1", 1, PROVENANCE, {**PERSON, "name": math.nan})
    assert math.isnan(protector.reveal(person, {"name"})["name"])


def test_no_personal_value_reaches_the_database_in_clear(protector: RecordProtector, tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'scan.db'}")
    init_schema(engine)
    store = RecordStore(engine, load_catalog())
    store.sync_catalog()
    store.upsert([protector.protect("civil_affairs.vulnerable_person", PERSON["person_no"], 1, PROVENANCE, PERSON)])
    store.upsert([protector.protect("health.visit", VISIT["visit_no"], 1, PROVENANCE, VISIT)])
    engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("scan.db*"))
    for value in (
        "王秀英",
        "王建国",
        "13812345678",
        "11010519491231002",
        "阿尔茨海默病",
        "团结湖东里3号楼",
        "神经内科",
    ):
        for encoding in ("utf-8", "unicode_escape"):
            assert value.encode(encoding) not in raw, value
    assert (
        "团结湖东里社区".encode() in raw or "团结湖东里社区".encode("unicode_escape") in raw
    )  # non-personal stays clear


def test_shredded_subject_reveals_erased_fields(protector: RecordProtector, store: RecordStore) -> None:
    record = protector.protect("health.visit", VISIT["visit_no"], 1, PROVENANCE, VISIT)
    store.upsert([record])
    protector.keys.shred(record.subject_index)
    loaded = store.get("health.visit", VISIT["visit_no"])
    assert loaded is not None
    revealed = protector.reveal(loaded)
    assert isinstance(revealed["diagnosis"], Erased) and isinstance(revealed["patient_name"], Erased)
    assert revealed["visit_no"] == VISIT["visit_no"]
    with pytest.raises(Exception, match="shredded"):
        protector.protect("health.visit", "V2", 1, PROVENANCE, VISIT)


def test_bad_subject_and_unknown_fields_are_refused(protector: RecordProtector) -> None:
    with pytest.raises(ProtectionError, match=r"health\.visit\.patient_id_number: ID number check character"):
        protector.protect("health.visit", "V1", 1, PROVENANCE, {**VISIT, "patient_id_number": "110105194912310021"})
    with pytest.raises(ProtectionError, match="subject field patient_id_number is empty"):
        protector.protect("health.visit", "V1", 1, PROVENANCE, {**VISIT, "patient_id_number": None})
    with pytest.raises(ProtectionError, match="fields not in the catalog: insurance_card_no"):
        protector.protect("health.visit", "V1", 1, PROVENANCE, {**VISIT, "insurance_card_no": "1"})


def test_a_sealed_field_cannot_be_moved_to_another_record(protector: RecordProtector) -> None:
    from keys.errors import DecryptionError

    one = protector.protect("health.visit", "V1", 1, PROVENANCE, {**VISIT, "visit_no": "V1"})
    two = protector.protect("health.visit", "V2", 1, PROVENANCE, {**VISIT, "visit_no": "V2", "diagnosis": "胃炎"})
    swapped = two._replace(sealed_fields=one.sealed_fields)
    with pytest.raises(DecryptionError):
        protector.reveal(swapped)

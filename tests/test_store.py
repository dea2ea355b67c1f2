"""Store round trips, run on SQLite and on a real PostgreSQL 18 server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect

from hub.catalog import load_catalog
from hub.store import ProtectedRecord, RecordStore, SubjectGroup, jurisdiction_of
from hub.store.records import Provenance, StoreError

PULLED = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)


def _record(key: str = "J20261119000001", version: int = 1, subject: bytes = b"\x01" * 32) -> ProtectedRecord:
    return ProtectedRecord(
        dataset_id="police.incident",
        record_key=key,
        version=version,
        provenance=Provenance(
            source_agency="police",
            source_system="police-110-dispatch",
            source_position="bj_alarm.last_modified=2026-11-19 10:00:00,alarm_no=" + key,
            pulled_at=PULLED,
            source_updated_at=datetime(2026, 11, 19, 10, 0, tzinfo=timezone(timedelta(hours=8))),
        ),
        subject_index=subject,
        clear_fields={"incident_no": key, "incident_type": "fraud", "district": "110105"},
        sealed_fields=bytes(range(256)) * 2,
    )


def test_round_trip_keeps_every_byte_and_provenance(store: RecordStore) -> None:
    record = _record()
    store.upsert([record])
    loaded = store.get("police.incident", record.record_key)
    assert loaded == record
    assert loaded is not None and loaded.provenance.source_updated_at == datetime(2026, 11, 19, 2, 0, tzinfo=UTC)


def test_newer_version_replaces_and_older_or_equal_never_does(store: RecordStore) -> None:
    store.upsert([_record(version=2)])
    store.upsert([_record(version=3)._replace(sealed_fields=b"v3")])
    store.upsert([_record(version=1)._replace(sealed_fields=b"v1")])
    store.upsert([_record(version=3)._replace(sealed_fields=b"v3-redelivered-differently")])
    loaded = store.get("police.incident", "J20261119000001")
    assert loaded is not None and loaded.version == 3 and loaded.sealed_fields == b"v3"
    assert store.count("police.incident") == 1


def test_versions_are_64_bit_like_a_source_update_time_in_microseconds(store: RecordStore) -> None:
    updated = int(datetime(2026, 8, 2, 10, 24, tzinfo=UTC).timestamp() * 1_000_000)  # far above 2**31
    store.upsert([_record(version=updated)])
    store.upsert([_record(version=updated + 1)._replace(sealed_fields=b"newer")])
    loaded = store.get("police.incident", "J20261119000001")
    assert loaded is not None and loaded.version == updated + 1 and loaded.sealed_fields == b"newer"


def test_a_postgres_store_made_with_32_bit_versions_is_widened(postgres_url: str) -> None:
    from hub.store import create_store_engine, init_schema

    engine = create_store_engine(postgres_url)
    init_schema(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE record ALTER COLUMN version TYPE INTEGER")
    init_schema(engine)
    version = next(c for c in inspect(engine).get_columns("record") if c["name"] == "version")
    assert str(version["type"]) == "BIGINT"


def test_lookup_by_blind_index(store: RecordStore) -> None:
    store.upsert(
        [
            _record("A", subject=b"\xaa" * 32),
            _record("B", subject=b"\xbb" * 32),
            _record("C", subject=b"\xaa" * 32),
        ]
    )
    assert sorted(r.record_key for r in store.by_subject(b"\xaa" * 32)) == ["A", "C"]
    assert store.by_subject(b"\xaa" * 32, datasets=["health.visit"]) == []
    store.upsert([_record("C", version=2, subject=b"\xaa" * 32)._replace(deleted=True)])
    assert [r.record_key for r in store.by_subject(b"\xaa" * 32)] == ["A"]


def test_a_subjects_records_are_counted_by_dataset_and_jurisdiction_without_reading_them(store: RecordStore) -> None:
    """What a release decides on before it reads anything, on both back ends (json_extract and ->>)."""
    aa = b"\xaa" * 32
    visit = _record("V1", subject=aa)._replace(dataset_id="health.visit", clear_fields={"visit_no": "V1"})
    store.upsert(
        [
            _record("A", subject=aa),
            _record("B", subject=aa)._replace(clear_fields={"incident_no": "B", "district": "110108"}),
            _record("C", subject=aa),
            _record("D", subject=aa)._replace(clear_fields={"incident_no": "D", "district": ""}),
            _record("E", subject=b"\xbb" * 32),
            visit,
            visit._replace(record_key="V2"),
        ]
    )
    assert store.subject_groups(aa) == [
        SubjectGroup("health.visit", None, 2),  # no jurisdiction field: placed by the subject's ID number
        SubjectGroup("police.incident", None, 1),  # an empty one counts as none
        SubjectGroup("police.incident", "110105", 2),
        SubjectGroup("police.incident", "110108", 1),
    ]
    store.upsert([_record("C", version=2, subject=aa)._replace(deleted=True)])
    assert SubjectGroup("police.incident", "110105", 1) in store.subject_groups(aa)
    assert store.subject_groups(b"\xcc" * 32) == []
    read = store.by_subject(aa, ["police.incident"])
    assert sorted((r.record_key, jurisdiction_of(r)) for r in read) == [("A", "110105"), ("B", "110108"), ("D", None)]
    assert sorted(r.record_key for r in store.by_subject(aa, ["health.visit", "police.incident"])) == [
        "A",
        "B",
        "D",
        "V1",
        "V2",
    ]


def test_a_store_from_before_the_jurisdiction_column_is_filled_and_indexed(database_url: str) -> None:
    """Stores whose subjects' records were counted from ``clear_fields`` gain the column, filled by the rule
    new records are stored with, and the covering index in place of the index on ``subject_index`` alone."""
    from hub.store import create_store_engine, init_schema

    engine = create_store_engine(database_url)
    init_schema(engine)
    store = RecordStore(engine, load_catalog())
    store.sync_catalog()
    aa = b"\xaa" * 32
    store.upsert(
        [
            _record("A", subject=aa),
            _record("B", subject=aa)._replace(clear_fields={"incident_no": "B", "district": "110108"}),
            _record("D", subject=aa)._replace(clear_fields={"incident_no": "D", "district": ""}),
        ]
    )
    counted = store.subject_groups(aa)
    with engine.begin() as connection:  # the table as those stores have it
        connection.exec_driver_sql("DROP INDEX ix_record_subject_groups")
        connection.exec_driver_sql("ALTER TABLE record DROP COLUMN jurisdiction")
        connection.exec_driver_sql("CREATE INDEX ix_record_subject_index ON record (subject_index)")
    init_schema(engine)
    init_schema(engine)  # twice: the second finds the column and the index and changes nothing
    indexes = {i["name"] for i in inspect(engine).get_indexes("record")}
    assert "ix_record_subject_groups" in indexes and "ix_record_subject_index" not in indexes
    assert store.subject_groups(aa) == counted
    assert {(g.jurisdiction, g.records) for g in counted} == {("110105", 1), ("110108", 1), (None, 1)}


def test_a_subjects_count_reads_the_index_alone(tmp_path: Path) -> None:
    """On SQLite the count is answered from the store's covering index: no table row is read."""
    from hub.store import create_store_engine, init_schema
    from hub.store.records import _GROUPS

    engine = create_store_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    init_schema(engine)
    with engine.connect() as connection:
        plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {_GROUPS}", (b"x",)))
    assert "COVERING INDEX ix_record_subject_groups" in plan, plan


def test_personal_field_in_clear_is_refused(store: RecordStore) -> None:
    leaky = _record()._replace(clear_fields={"incident_no": "X", "caller_name": "not allowed"})
    with pytest.raises(StoreError, match=r"police\.incident\.caller_name is personal and must be sealed"):
        store.upsert([leaky])
    assert store.count() == 0


def test_uncatalogued_field_is_refused(store: RecordStore) -> None:
    with pytest.raises(StoreError, match=r"police\.incident\.dispatch_unit is not in the catalog"):
        store.upsert([_record()._replace(clear_fields={"dispatch_unit": "x"})])


def test_no_plaintext_personal_column_exists(store: RecordStore) -> None:
    catalog = load_catalog()
    personal = {f.name for d in catalog for f in d.personal_fields}
    columns = {c["name"] for c in inspect(store.engine).get_columns("record")}
    assert not personal & columns
    assert {"sealed_fields", "subject_index", "clear_fields", "version", "source_position"} <= columns


def test_catalog_sync_is_idempotent(store: RecordStore) -> None:
    store.sync_catalog()
    store.sync_catalog()
    with store.engine.connect() as connection:
        from sqlalchemy import text

        assert connection.execute(text("SELECT COUNT(*) FROM catalog_dataset")).scalar_one() == 5
        assert connection.execute(text("SELECT COUNT(*) FROM agency")).scalar_one() == 4


def test_naive_datetimes_are_refused(store: RecordStore) -> None:
    naive = _record()._replace(provenance=_record().provenance._replace(pulled_at=datetime(2026, 1, 1)))
    with pytest.raises(Exception, match="naive datetime"):
        store.upsert([naive])


def _create_schema(url: str) -> None:
    from hub.store import create_store_engine, init_access_schema, init_audit_schema, init_schema

    engine = create_store_engine(url)
    init_schema(engine)
    init_audit_schema(engine)  # the same database holds the log on PostgreSQL
    init_access_schema(engine)  # and the log's access index


def test_processes_starting_together_on_a_fresh_database_both_create_the_schema(database_url: str) -> None:
    """Two API workers open a database nobody set up yet; neither may fail on the other's CREATE TABLE."""
    import multiprocessing

    from hub.store import create_store_engine

    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pool.map(_create_schema, [database_url] * 3)
    assert {"record", "access_index", "catalog_dataset"} <= set(
        inspect(create_store_engine(database_url)).get_table_names()
    )

"""Writing and reading protected records; the store's side of the encryption boundary.

Upserts are keyed by (dataset, record key) and ordered by version inside one SQL statement, so a
redelivered or out-of-order message can never replace a newer version, whichever process sends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Engine, and_, bindparam, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from hub.catalog import Catalog, DatasetDefinition
from hub.catalog.labels import PIClass
from hub.errors import HubError
from hub.store.tables import AgencyRow, DatasetRow, RecordRow
from keys.sql import driver_sql, fetch_all


class StoreError(HubError):
    """A record does not fit the store's rules (for instance a personal field offered in clear)."""


class Provenance(NamedTuple):
    """Where a record version came from.

    Named tuples rather than frozen dataclasses, here and for ProtectedRecord: both are made once per
    record on every path (ingestion, the materialiser, every read), and a frozen dataclass's ``__init__``
    (one ``object.__setattr__`` per field) cost about 1.7 µs a record against 0.6 µs; they stay immutable.
    The hottest paths build them with ``tuple.__new__(Provenance, (...))``, every field given in order:
    calling the class goes through the named tuple's Python ``__new__``, 0.64 µs a call against 0.27.
    """

    source_agency: str
    source_system: str
    source_position: str
    pulled_at: datetime
    source_updated_at: datetime | None = None


class ProtectedRecord(NamedTuple):
    """A record ready for the store: only non-personal fields in clear, the rest sealed by keys/."""

    dataset_id: str
    record_key: str
    version: int
    provenance: Provenance
    subject_index: bytes
    clear_fields: Mapping[str, Any]
    sealed_fields: bytes
    deleted: bool = False

    def check_against(self, dataset: DatasetDefinition) -> None:
        """Refuse any clear field that the catalog does not list as non-personal."""
        if dataset.id != self.dataset_id:
            raise StoreError(f"record for {self.dataset_id} checked against {dataset.id}")
        for name in self.clear_fields:
            try:
                definition = dataset.field(name)
            except KeyError:
                raise StoreError(f"{dataset.id}.{name} is not in the catalog") from None
            if definition.pi is not PIClass.NONE:
                raise StoreError(f"{dataset.id}.{name} is personal and must be sealed, not stored in clear")
        if not self.subject_index:
            raise StoreError(f"{dataset.id} record {self.record_key}: no subject index")


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise StoreError("naive datetime given to the store; pass an aware datetime")
    return moment.astimezone(UTC)


def _sqlite_time(moment: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores (naive UTC), which its reads parse back."""
    return _aware(moment).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


_COLUMNS = (
    "dataset_id, record_key, version, source_agency, source_system, source_position, pulled_at, "
    "source_updated_at, subject_index, clear_fields, jurisdiction, sealed_fields, deleted, stored_at"
)
_UPDATED = (
    "version",
    "source_agency",
    "source_system",
    "source_position",
    "pulled_at",
    "source_updated_at",
    "subject_index",
    "clear_fields",
    "jurisdiction",
    "sealed_fields",
    "deleted",
    "stored_at",
)
_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in _UPDATED)
_CONFLICT = f"ON CONFLICT (dataset_id, record_key) DO UPDATE SET {_UPDATE} WHERE record.version < excluded.version"
_UPSERT = f"INSERT INTO record ({_COLUMNS}) VALUES ({', '.join('?' * 14)}) {_CONFLICT}"  # noqa: S608 - constant


_RECORD: Any = RecordRow.__table__  # type: ignore[attr-defined]
# What a ProtectedRecord is made of, in its constructor's order. Reads select these columns with Core
# rather than loading ORM rows: the API's person view reads dozens of records per request, and the ORM's
# identity map and instance state cost more than the query.
_READ = (
    _RECORD.c.dataset_id,
    _RECORD.c.record_key,
    _RECORD.c.version,
    _RECORD.c.source_agency,
    _RECORD.c.source_system,
    _RECORD.c.source_position,
    _RECORD.c.pulled_at,
    _RECORD.c.source_updated_at,
    _RECORD.c.subject_index,
    _RECORD.c.clear_fields,
    _RECORD.c.sealed_fields,
    _RECORD.c.deleted,
)
_BY_SUBJECT = sa_select(*_READ).where(_RECORD.c.subject_index == bindparam("subject"), _RECORD.c.deleted.is_(False))
# One dataset's records of a subject, a constant statement: an expanding ``IN (...)`` parameter makes
# SQLAlchemy rewrite the statement's text on every call, and a release reads only the few datasets it may show.
_BY_SUBJECT_IN = _BY_SUBJECT.where(_RECORD.c.dataset_id == bindparam("dataset"))
_BY_KEY = sa_select(*_READ).where(
    _RECORD.c.dataset_id == bindparam("dataset"), _RECORD.c.record_key == bindparam("key")
)


def _read(row: Sequence[Any]) -> ProtectedRecord:
    dataset_id, record_key, version, agency, system, position, pulled, updated, subject, clear, sealed, deleted = row
    # Once per record read (a person view reads dozens): the tuples are built directly (see Provenance).
    provenance = tuple.__new__(Provenance, (agency, system, position, pulled, updated))
    return tuple.__new__(
        ProtectedRecord,
        (dataset_id, record_key, version, provenance, bytes(subject), clear, bytes(sealed), bool(deleted)),
    )


JURISDICTION_FIELD = "district"
"""The clear field that places a record in an administrative division (police incidents, the registry).
A record without it is placed by its subject's ID number (its first six digits name where it was issued)."""

# A subject's live records counted by dataset and jurisdiction, the inputs a release decides on: the
# release decides each group once and then reads in full only the records it may show (see hub.release).
# One constant statement for both back ends, answered from the index ix_record_subject_groups (SQLite's
# covering index; PostgreSQL's index-only scan where its visibility map allows): no row, blob or JSON
# document is loaded for a record that stays refused. Counting from ``clear_fields`` read every row of the
# subject: measured in process, the count took 100 µs of a ~0.9 ms person view, and 53 µs from the index.
_GROUPS = (
    "SELECT dataset_id, jurisdiction, count(*) FROM record "
    "WHERE subject_index = ? AND deleted = false GROUP BY 1, 2 ORDER BY 1, 2 NULLS FIRST"
)


def place_of(clear_fields: Mapping[str, Any]) -> str | None:
    """The jurisdiction a record's clear fields place it in (None: not recorded); stored as its own column."""
    place = clear_fields.get(JURISDICTION_FIELD)
    return str(place) if place else None


def jurisdiction_of(record: ProtectedRecord) -> str | None:
    """Where a record's own jurisdiction field places it, as :meth:`RecordStore.subject_groups` counts it."""
    return place_of(record.clear_fields)


class SubjectGroup(NamedTuple):
    """How many live records of one dataset about one subject lie in one jurisdiction (None: not recorded)."""

    dataset_id: str
    jurisdiction: str | None
    records: int


class RecordStore:
    """Catalog sync and record upserts over one SQLAlchemy engine."""

    def __init__(self, engine: Engine, catalog: Catalog) -> None:
        self.engine = engine
        self.catalog = catalog
        self._clear: dict[str, frozenset[str]] = {}

    def _clear_allowed(self, dataset_id: str) -> frozenset[str]:
        """The fields of a dataset that may be stored in clear: the catalog's non-personal ones."""
        allowed = self._clear.get(dataset_id)
        if allowed is None:
            dataset = self.catalog.dataset(dataset_id)
            allowed = self._clear[dataset_id] = frozenset(f.name for f in dataset.fields if f.pi is PIClass.NONE)
        return allowed

    def sync_catalog(self) -> None:
        """Write agencies and dataset definitions; a changed definition replaces the stored one."""
        now = _now()
        with Session(self.engine) as session:
            for agency in self.catalog.agencies.values():
                session.merge(AgencyRow(**agency.model_dump()))
            session.flush()
            for dataset in self.catalog:
                session.merge(
                    DatasetRow(
                        id=dataset.id,
                        owner=dataset.owner,
                        title=dataset.title,
                        sharing_attribute=dataset.sharing.attribute.value,
                        retention=dataset.retention,
                        subject_field=dataset.subject_field,
                        definition=dataset.model_dump(mode="json"),
                        catalog_digest=self.catalog.digest,
                        loaded_at=now,
                    )
                )
            session.commit()

    def upsert(self, records: Sequence[ProtectedRecord]) -> None:
        """Insert or replace by (dataset, record key); an equal or older version changes nothing.

        One constant statement (keys.sql.driver_sql) through the driver's executemany: SQLAlchemy's per-row parameter
        processing cost more than the database work at ingestion rates. Values are encoded exactly as the
        table's column types store them (UTC times; JSON text), so ORM reads are unchanged.
        """
        if not records:
            return
        dialect = self.engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"unsupported database dialect {dialect!r}")
        convert = _sqlite_time if dialect == "sqlite" else _aware
        # A batch shares its pulled-at time and often its source-updated times: convert each once. The loop
        # unpacks the named tuples and reads the caches in place, since it runs once per ingested record.
        times: dict[datetime, Any] = {}
        allowed = self._clear
        now = convert(_now())
        rows = []
        for record in records:
            dataset_id, record_key, version, provenance, subject_index, clear, sealed, deleted = record
            clear_allowed = allowed.get(dataset_id) or self._clear_allowed(dataset_id)
            if not clear_allowed.issuperset(clear) or not subject_index:
                record.check_against(self.catalog.dataset(dataset_id))  # raises, naming the field
            agency, system, position, pulled_at, updated_at = provenance
            pulled = times.get(pulled_at)
            if pulled is None:
                pulled = times[pulled_at] = convert(pulled_at)
            if updated_at is not None:
                updated = times.get(updated_at)
                if updated is None:
                    updated = times[updated_at] = convert(updated_at)
            else:
                updated = None
            rows.append(
                (
                    dataset_id,
                    record_key,
                    version,
                    agency,
                    system,
                    position,
                    pulled,
                    updated,
                    subject_index,
                    orjson.dumps(clear if clear.__class__ is dict else dict(clear)).decode(),
                    place_of(clear),
                    sealed,
                    deleted,
                    now,
                )
            )
        with self.engine.begin() as connection:
            connection.exec_driver_sql(driver_sql(_UPSERT, connection.dialect.paramstyle), rows)

    def get(self, dataset_id: str, record_key: str) -> ProtectedRecord | None:
        with self.engine.connect() as connection:
            row = connection.execute(_BY_KEY, {"dataset": dataset_id, "key": record_key}).first()
        return None if row is None else _read(row)

    def by_subject(self, subject_index: bytes, datasets: Iterable[str] | None = None) -> list[ProtectedRecord]:
        """All live records whose subject has this blind index, optionally limited to some datasets."""
        with self.engine.connect() as connection:
            if datasets is None:
                rows = connection.execute(_BY_SUBJECT, {"subject": subject_index}).all()
            else:
                rows = [
                    row
                    for dataset in dict.fromkeys(datasets)
                    for row in connection.execute(_BY_SUBJECT_IN, {"subject": subject_index, "dataset": dataset})
                ]
        return [_read(row) for row in rows]

    def subject_groups(self, subject_index: bytes) -> list[SubjectGroup]:
        """A subject's live records counted by dataset and jurisdiction, without reading any of them."""
        return [
            tuple.__new__(SubjectGroup, (dataset, place, int(count)))
            for dataset, place, count in fetch_all(self.engine, _GROUPS, (subject_index,))
        ]

    def feed(
        self, dataset_id: str, after: tuple[datetime, int] | None, limit: int
    ) -> tuple[list[ProtectedRecord], tuple[datetime, int] | None]:
        """Records of a dataset stored after a position (stored time, row id), tombstones included, oldest first.

        Returns the page and the position of its last record (to pass back as ``after``), or None when empty.
        """
        c = _RECORD.c
        query = sa_select(*_READ, c.stored_at, c.id).where(c.dataset_id == dataset_id)
        if after is not None:
            moment, row_id = after
            query = query.where(or_(c.stored_at > moment, and_(c.stored_at == moment, c.id > row_id)))
        query = query.order_by(c.stored_at, c.id).limit(limit)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        position = (_aware(rows[-1][-2]), int(rows[-1][-1])) if rows else None
        return [_read(row[:-2]) for row in rows], position

    def count(self, dataset_id: str | None = None) -> int:
        query = select(func.count()).select_from(RecordRow)
        if dataset_id is not None:
            query = query.where(RecordRow.dataset_id == dataset_id)
        with Session(self.engine) as session:
            return int(session.exec(query).one())

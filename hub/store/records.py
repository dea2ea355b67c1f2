"""Writing and reading protected records; the store's side of the encryption boundary.

Upserts are keyed by (dataset, record key) and ordered by version inside one SQL statement, so a
redelivered or out-of-order message can never replace a newer version, whichever process sends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from hub.catalog import Catalog, DatasetDefinition
from hub.catalog.labels import PIClass
from hub.errors import HubError
from hub.store.tables import AgencyRow, DatasetRow, RecordRow


class StoreError(HubError):
    """A record does not fit the store's rules (for instance a personal field offered in clear)."""


@dataclass(frozen=True)
class Provenance:
    """Where a record version came from."""

    source_agency: str
    source_system: str
    source_position: str
    pulled_at: datetime
    source_updated_at: datetime | None = None


@dataclass(frozen=True)
class ProtectedRecord:
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


class RecordStore:
    """Catalog sync and record upserts over one SQLAlchemy engine."""

    def __init__(self, engine: Engine, catalog: Catalog) -> None:
        self.engine = engine
        self.catalog = catalog

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

    def _insert(self) -> Any:
        dialect = self.engine.dialect.name
        table = RecordRow.__table__  # type: ignore[attr-defined]
        if dialect == "postgresql":
            return postgresql.insert(table)
        if dialect == "sqlite":
            return sqlite.insert(table)
        raise StoreError(f"unsupported database dialect {dialect!r}")

    def upsert(self, records: Sequence[ProtectedRecord]) -> None:
        """Insert or replace by (dataset, record key); an equal or older version changes nothing."""
        if not records:
            return
        rows = []
        now = _now()
        for record in records:
            record.check_against(self.catalog.dataset(record.dataset_id))
            rows.append(
                {
                    "dataset_id": record.dataset_id,
                    "record_key": record.record_key,
                    "version": record.version,
                    "source_agency": record.provenance.source_agency,
                    "source_system": record.provenance.source_system,
                    "source_position": record.provenance.source_position,
                    "pulled_at": record.provenance.pulled_at,
                    "source_updated_at": record.provenance.source_updated_at,
                    "subject_index": record.subject_index,
                    "clear_fields": dict(record.clear_fields),
                    "sealed_fields": record.sealed_fields,
                    "deleted": record.deleted,
                    "stored_at": now,
                }
            )
        statement = self._insert()
        excluded = statement.excluded
        updatable = [c for c in rows[0] if c not in ("dataset_id", "record_key")]
        statement = statement.on_conflict_do_update(
            index_elements=["dataset_id", "record_key"],
            set_={name: excluded[name] for name in updatable},
            where=RecordRow.__table__.c.version < excluded.version,  # type: ignore[attr-defined]
        )
        with self.engine.begin() as connection:
            connection.execute(statement, rows)

    def get(self, dataset_id: str, record_key: str) -> ProtectedRecord | None:
        with Session(self.engine) as session:
            row = session.exec(
                select(RecordRow).where(RecordRow.dataset_id == dataset_id, RecordRow.record_key == record_key)
            ).first()
        return None if row is None else _to_record(row)

    def by_subject(self, subject_index: bytes, datasets: Iterable[str] | None = None) -> list[ProtectedRecord]:
        """All live records whose subject has this blind index, optionally limited to some datasets."""
        query = select(RecordRow).where(
            RecordRow.subject_index == subject_index,
            col(RecordRow.deleted).is_(False),
        )
        if datasets is not None:
            query = query.where(col(RecordRow.dataset_id).in_(list(datasets)))
        with Session(self.engine) as session:
            return [_to_record(row) for row in session.exec(query).all()]

    def count(self, dataset_id: str | None = None) -> int:
        query = select(func.count()).select_from(RecordRow)
        if dataset_id is not None:
            query = query.where(RecordRow.dataset_id == dataset_id)
        with Session(self.engine) as session:
            return int(session.exec(query).one())


def _to_record(row: RecordRow) -> ProtectedRecord:
    return ProtectedRecord(
        dataset_id=row.dataset_id,
        record_key=row.record_key,
        version=row.version,
        provenance=Provenance(
            source_agency=row.source_agency,
            source_system=row.source_system,
            source_position=row.source_position,
            pulled_at=row.pulled_at,
            source_updated_at=row.source_updated_at,
        ),
        subject_index=row.subject_index,
        clear_fields=row.clear_fields,
        sealed_fields=row.sealed_fields,
        deleted=row.deleted,
    )

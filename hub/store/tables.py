"""SQLModel tables of the store.

A record row keeps non-personal fields as JSON (``clear_fields``) and all personal fields as one
sealed blob (``sealed_fields``) whose format keys/ owns. The subject is reachable only through a blind
index, so a database dump alone names nobody.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Dialect, Index, LargeBinary, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every back end (SQLite keeps no zone; PostgreSQL would convert to local)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class AgencyRow(SQLModel, table=True):
    __tablename__ = "agency"

    code: str = Field(primary_key=True, max_length=64)
    name: str
    name_zh: str
    jurisdiction: str = Field(max_length=12)


class DatasetRow(SQLModel, table=True):
    """The catalog definition in force for a dataset, kept with the digest of the catalog it came from."""

    __tablename__ = "catalog_dataset"

    id: str = Field(primary_key=True, max_length=128)
    owner: str = Field(foreign_key="agency.code", index=True)
    title: str
    sharing_attribute: str = Field(max_length=32)
    retention: str = Field(max_length=32)
    subject_field: str
    definition: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    catalog_digest: str = Field(max_length=64)
    loaded_at: datetime = _utc()


class RecordRow(SQLModel, table=True):
    """The latest version of one source record, with its provenance."""

    __tablename__ = "record"
    __table_args__ = (
        UniqueConstraint("dataset_id", "record_key", name="uq_record_dataset_key"),
        # Serves every read by subject, and answers a release's count of a subject's live records by dataset
        # and jurisdiction (hub.store.records.RecordStore.subject_groups) from the index alone: no table row
        # is read for a record the release then refuses. It replaced an index on ``subject_index`` alone.
        Index("ix_record_subject_groups", "subject_index", "deleted", "dataset_id", "jurisdiction"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # No index of its own: the unique (dataset_id, record_key) index serves every lookup by dataset, and
    # each index is one more B-tree write per ingested record.
    dataset_id: str = Field(foreign_key="catalog_dataset.id", max_length=128)
    record_key: str = Field(max_length=256)
    # 64-bit: a source's update time in microseconds is a common version (PostgreSQL's INTEGER is 32-bit).
    version: int = Field(sa_column=Column(BigInteger, nullable=False))
    # Provenance: where and when the hub got this version.
    source_agency: str = Field(max_length=64)
    source_system: str = Field(max_length=128)
    source_position: str = Field(max_length=512)
    pulled_at: datetime = _utc()
    source_updated_at: datetime | None = _utc(nullable=True)
    # The subject's blind index (keyed HMAC of the normalised subject ID), never the ID itself.
    subject_index: bytes = Field(sa_column=Column(LargeBinary(64), nullable=False))
    clear_fields: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # The record's own jurisdiction, a clear field (hub.store.records.place_of) kept in a column of its own
    # so that the subject index covers what a release decides on.
    jurisdiction: str | None = Field(default=None, max_length=128)
    sealed_fields: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    deleted: bool = False
    stored_at: datetime = _utc()


class AgencyKeyRow(SQLModel, table=True):
    """A partner agency's Ed25519 request-signing key (RFC 9421 ``keyid``), with validity and revocation."""

    __tablename__ = "agency_key"

    key_id: str = Field(primary_key=True, max_length=128)
    agency: str = Field(foreign_key="agency.code", index=True, max_length=64)
    public_key: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    valid_from: int  # epoch seconds
    valid_until: int
    revoked_at: int | None = None
    revoked_reason: str = ""
    registered_by: str = Field(max_length=128)


class RequestNonceRow(SQLModel, table=True):
    """A signed request's nonce, kept past the acceptance window so a replay is refused after a restart."""

    __tablename__ = "request_nonce"

    key_id: str = Field(primary_key=True, max_length=128)
    nonce: str = Field(primary_key=True, max_length=128)
    seen_at: int = Field(index=True)


class AccessIndexRow(SQLModel, table=True):
    """Where a resident's accesses are in the audit log: one row per decision about their records.

    The audit entry (``seq``) is the evidence, and ``item`` the decision's place among that entry's
    ``decisions`` (a query's decisions share one entry; 0 for an ``access.decision`` entry of its own).
    This index only finds them by the subject's pseudonym, so a resident's "who accessed my data" does not
    scan the whole log. The rows are derived from the log's entries and brought up to date before they are
    read (see hub.store.access_index). One decision may cover several records of one dataset about the same
    subject (``records``): a person view decides them together.
    """

    __tablename__ = "access_index"

    seq: int = Field(primary_key=True)
    item: int = Field(default=0, primary_key=True)
    subject: str = Field(max_length=64, index=True)
    at: int
    agency: str = Field(max_length=64)
    purpose: str = Field(max_length=64)
    dataset: str = Field(max_length=128)
    case_id: str | None = Field(default=None, max_length=32)
    result: str = Field(max_length=8)
    break_glass: bool = False
    records: int = 1


class AccessIndexMark(SQLModel, table=True):
    """How far the access index has read the log: the ``seq`` of the next entry to index (one row, id 0).

    Written in the same transaction as the rows it counts, so an entry is indexed exactly once however
    often and from however many processes the index is brought up to date."""

    __tablename__ = "access_index_mark"

    id: int = Field(default=0, primary_key=True)
    next_seq: int = Field(sa_column=Column(BigInteger, nullable=False))

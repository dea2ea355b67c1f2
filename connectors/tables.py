"""Store tables of the connectors: source checkpoints, dead letters and run reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.store.tables import _utc


class ConnectorCheckpoint(SQLModel, table=True):
    __tablename__ = "connector_checkpoint"

    name: str = Field(primary_key=True, max_length=128)
    state: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = _utc()
    last_error: str = ""


class DeadLetter(SQLModel, table=True):
    """A source row that could not become a record. The row itself is sealed: dead letters hold personal data too."""

    __tablename__ = "dead_letter"
    __table_args__ = (UniqueConstraint("connector", "position", name="uq_dead_letter_position"),)

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=128, index=True)
    dataset: str = Field(max_length=128)
    position: str = Field(max_length=512)
    reason: str
    sealed_row: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = _utc()
    status: str = Field(default="open", max_length=16)  # open | replayed | superseded


class ConnectorRun(SQLModel, table=True):
    __tablename__ = "connector_run"

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=128, index=True)
    started_at: datetime = _utc()
    finished_at: datetime | None = _utc(nullable=True)
    rows: int = 0
    published: int = 0
    dead_letters: int = 0
    dropped: dict[str, int] = Field(sa_column=Column(JSON, nullable=False))
    error: str = ""

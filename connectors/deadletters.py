"""The dead-letter workflow: list what was rejected and why, fix the mapping, replay.

Listing shows position and reason only (the row is sealed). Replay unseals each open dead letter, runs it
through the connector's current mapping and protection, publishes what now passes and marks it replayed,
deleting the sealed row; what still fails stays open with its new reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from connectors.bus.base import records_topic
from connectors.mapping import RecordRejected
from connectors.runner import ConnectorRunner
from connectors.sources.base import Row
from connectors.tables import DeadLetter
from hub.protection import ProtectionError


@dataclass(frozen=True)
class DeadLetterView:
    id: int
    connector: str
    dataset: str
    position: str
    reason: str
    created_at: datetime
    status: str


def list_dead_letters(store: Engine, status: str | None = "open") -> list[DeadLetterView]:
    with Session(store) as session:
        query = select(DeadLetter).order_by(col(DeadLetter.id))
        if status is not None:
            query = query.where(DeadLetter.status == status)
        rows = session.exec(query).all()
    return [
        DeadLetterView(r.id or 0, r.connector, r.dataset, r.position, r.reason, r.created_at, r.status) for r in rows
    ]


def replay(runner: ConnectorRunner) -> tuple[int, int]:
    """Re-run the connector's open dead letters; returns (replayed, still failing)."""
    with Session(runner.store) as session:
        letters = session.exec(
            select(DeadLetter).where(DeadLetter.connector == runner.config.name, DeadLetter.status == "open")
        ).all()
    replayed = failing = 0
    for letter in letters:
        if not letter.sealed_row:
            continue  # an erased subject's row was never kept
        values = runner.unseal_row(letter)
        try:
            version_source = values.get(runner.config.watermark or runner.config.version_from or "")
            key, event = runner.protect_row(Row(letter.position, values, version_source), letter.created_at)
        except (RecordRejected, ProtectionError) as rejected:
            failing += 1
            with Session(runner.store) as session:
                stored = session.get(DeadLetter, letter.id)
                if stored is not None:
                    stored.reason = str(rejected)
                    session.add(stored)
                    session.commit()
            continue
        runner.bus.publish(records_topic(runner.dataset.id), [(key, event)])
        with Session(runner.store) as session:
            stored = session.get(DeadLetter, letter.id)
            if stored is not None:
                stored.status, stored.sealed_row = "replayed", b""
                session.add(stored)
                session.commit()
        replayed += 1
    return replayed, failing

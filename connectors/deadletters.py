"""The dead-letter workflow: list what was rejected and why, fix the mapping, replay.

Listing shows position and reason only (the row is sealed). Replay unseals each open dead letter, runs it
through the connector's current mapping and protection, publishes what now passes and marks it replayed,
deleting the sealed row; what still fails stays open with its new reason.

A letter whose record the store has since taken in from a later pull (the source fixed the row, or gave
a NULL watermark a time) has nothing left to give: replaying its old row would at best be a no-op. Replay
marks it superseded, deleting its sealed row, without publishing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from connectors.bus.base import records_topic
from connectors.letterbox import settle_letter
from connectors.mapping import RecordRejected
from connectors.runner import ConnectorRunner
from connectors.sources.base import Row
from connectors.tables import DeadLetter
from hub.protection import ProtectionError
from hub.store import RecordStore


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


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _taken_in_since(store: RecordStore, runner: ConnectorRunner, letter: DeadLetter, values: dict[str, Any]) -> bool:
    """Whether a later pull took the letter's record in: the store holds it, pulled after the letter was
    written. (A replay publishes with the letter's own time, so a replayed row never counts.)"""
    key = values.get(runner.config.key)
    if key is None or not str(key).strip():
        return False
    stored = store.get(runner.dataset.id, str(key).strip())
    return stored is not None and _aware(stored.provenance.pulled_at) > _aware(letter.created_at)


def replay(runner: ConnectorRunner) -> tuple[int, int, int]:
    """Re-run the connector's open dead letters; returns (replayed, still failing, superseded)."""
    with Session(runner.store) as session:
        letters = session.exec(
            select(DeadLetter).where(DeadLetter.connector == runner.config.name, DeadLetter.status == "open")
        ).all()
    store = RecordStore(runner.store, runner.catalog)
    replayed = failing = superseded = 0
    for letter in letters:
        if not letter.sealed_row:
            continue  # an erased subject's row was never kept
        values = runner.unseal_row(letter)
        if _taken_in_since(store, runner, letter, values):
            settle_letter(runner.store, letter.id, closed_as="superseded")
            superseded += 1
            continue
        try:
            version_source = values.get(runner.config.watermark or runner.config.version_from or "")
            key, event = runner.protect_row(Row(letter.position, values, version_source), letter.created_at)
        except (RecordRejected, ProtectionError) as rejected:
            failing += 1
            settle_letter(runner.store, letter.id, reason=str(rejected))
            continue
        runner.bus.publish(records_topic(runner.dataset.id), [(key, event)])
        settle_letter(runner.store, letter.id, closed_as="replayed")
        replayed += 1
    return replayed, failing, superseded

"""One connector run: read after the checkpoint, map, protect, publish, dead-letter, then checkpoint.

Order matters. A batch's records go to the bus and its dead letters to the dead-letter store; only after
the bus acknowledged does the checkpoint advance (and a finished file move to ``processed/``). A crash
anywhere re-reads at most the unacknowledged batch; the materialiser's upsert by (dataset, key, version)
absorbs the repeats. Rows of residents erased by crypto-shredding are not taken in again, and their raw
rows are not kept.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from connectors.bus.base import Bus, dead_letter_topic, records_topic
from connectors.config import ConnectorConfig
from connectors.envelope import to_event
from connectors.letterbox import store_dead_letters
from connectors.mapping import MappedRecord, Mapper, RecordRejected
from connectors.sources.base import REFUSED, Row, Source
from connectors.sources.files import FileSource
from connectors.sources.rest import RestSource
from connectors.sources.sql import SqlSource
from connectors.tables import ConnectorCheckpoint, ConnectorRun, DeadLetter
from connectors.workers import Workers
from hub.catalog import Catalog
from hub.errors import HubError
from hub.protection import ProtectionError, RecordProtector
from hub.store.records import Provenance
from keys.ciphertext import encode_context
from keys.errors import KeyShredded


class ConnectorStopped(HubError):
    """A connector's run ended early on request; everything up to its last checkpoint is delivered."""


@dataclass
class RunReport:
    connector: str
    rows: int = 0
    published: int = 0
    dead_letters: int = 0
    erased: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        return self.rows / max(time.monotonic() - self.started, 1e-9)


@dataclass
class Prepared:
    """One batch mapped, protected and encoded, ready to publish (what a worker process sends back)."""

    rows: int
    events: list[tuple[bytes, bytes]] = field(default_factory=list)
    letters: list[dict[str, Any]] = field(default_factory=list)
    shapes: Counter[tuple[str, ...]] = field(default_factory=Counter)
    erased: int = 0
    published: int = 0
    on_bus: bool = False  # published already (by the worker that prepared it)


def make_source(config: ConnectorConfig) -> Source:
    if config.kind == "push":
        raise HubError(f"connector {config.name} receives pushed records; it has no source to pull")
    if config.kind == "sql":
        return SqlSource(config)
    if config.kind == "rest":
        return RestSource(config)
    return FileSource(config)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


class ConnectorRunner:
    def __init__(
        self, config: ConnectorConfig, catalog: Catalog, protector: RecordProtector, bus: Bus, store: Engine
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.dataset = catalog.dataset(config.dataset)
        self.mapper = Mapper(config, self.dataset)
        self._dropped_by_shape: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.protector = protector
        self.bus = bus
        self.store = store

    # -- checkpoints ------------------------------------------------------------------------------------

    def last_error(self) -> str:
        with Session(self.store) as session:
            row = session.get(ConnectorCheckpoint, self.config.name)
            return row.last_error if row else ""

    def checkpoint(self) -> dict[str, Any]:
        with Session(self.store) as session:
            row = session.get(ConnectorCheckpoint, self.config.name)
            return dict(row.state) if row else {}

    def _save_checkpoint(self, state: dict[str, Any], error: str = "") -> None:
        with Session(self.store) as session:
            row = session.get(ConnectorCheckpoint, self.config.name) or ConnectorCheckpoint(
                name=self.config.name, state={}
            )
            row.state = json.loads(_json(state))
            row.updated_at = datetime.now(UTC)
            row.last_error = error
            session.add(row)
            session.commit()

    # -- dead letters -----------------------------------------------------------------------------------

    def _seal_row(self, row: Row) -> bytes:
        keys = self.protector.keys
        key = keys.key_for_subject(keys.blind_index("dead-letter", self.config.name, "text"))
        values = row.values if row.rejected is None else {**row.values, REFUSED: row.rejected}
        return keys.seal_with(
            key, _json(values).encode(), encode_context("dead-letter", self.config.name, row.position)
        )

    def unseal_row(self, letter: DeadLetter) -> dict[str, Any]:
        context = encode_context("dead-letter", letter.connector, letter.position)
        values: dict[str, Any] = json.loads(self.protector.keys.unseal_with(letter.sealed_row, context))
        return values

    # -- the run ----------------------------------------------------------------------------------------

    def protect_row(self, row: Row, pulled_at: datetime) -> tuple[bytes, bytes]:
        refused = row.rejected or row.values.get(REFUSED)  # refused by the reader, now or when first read
        if refused is not None:
            raise RecordRejected(f"{self.dataset.id}: {refused}")
        if "__malformed__" in row.values:  # a letter sealed before REFUSED was kept: a line or item not an object
            raise RecordRejected(f"{self.dataset.id}: the source's row is not a JSON object")
        return self._protect_mapped(row, self.mapper.map(row.values, row.version_source), pulled_at)

    def _protect_mapped(self, row: Row, mapped: MappedRecord, pulled_at: datetime) -> tuple[bytes, bytes]:
        provenance = tuple.__new__(  # built directly, as tuples (see hub.store.records.Provenance)
            Provenance, (self.config.agency, self.config.system, row.position, pulled_at, mapped.source_updated_at)
        )
        record = self.protector.protect(
            self.dataset.id, mapped.record_key, mapped.version, provenance, mapped.values, deleted=mapped.deleted
        )
        return to_event(record)

    def sibling(self, config: ConnectorConfig) -> ConnectorRunner:
        """A runner for another connector sharing this one's catalog, keys, bus and store."""
        return ConnectorRunner(config, self.catalog, self.protector, self.bus, self.store)

    def run(
        self,
        progress: Callable[[RunReport], None] | None = None,
        workers: Workers | None = None,
        stop: threading.Event | None = None,
    ) -> RunReport:
        """Pull everything after the checkpoint. With ``workers``, forked processes prepare batches ahead
        while this one publishes them in source order and advances the checkpoint. Once ``stop`` is set,
        the run ends after the batch it is delivering (its checkpoint stored), raising ConnectorStopped."""
        report = RunReport(self.config.name)
        with Session(self.store) as session:
            run = ConnectorRun(connector=self.config.name, dropped={}, started_at=datetime.now(UTC))
            session.add(run)
            session.commit()
            session.refresh(run)
        error = ""
        try:
            batches = make_source(self.config).batches(self.checkpoint())
            for batch, prepared in (workers or Workers(0)).prepared(self, batches):
                self.deliver(prepared, report)
                self._save_checkpoint(batch.checkpoint)
                for callback in batch.on_committed:
                    callback()
                if progress is not None:
                    progress(report)
                if stop is not None and stop.is_set():
                    raise ConnectorStopped("the run was interrupted; the next run resumes after this batch")
            if self.last_error():  # a run that found nothing new still ends the last one's error
                self._save_checkpoint(self.checkpoint())
        except Exception as failure:
            error = f"{type(failure).__name__}: {failure}"
            self._save_checkpoint(self.checkpoint(), error[:500])
            raise
        finally:
            with Session(self.store) as session:
                stored = session.get(ConnectorRun, run.id)
                if stored is not None:
                    stored.finished_at = datetime.now(UTC)
                    stored.rows, stored.published, stored.dead_letters = (
                        report.rows,
                        report.published,
                        report.dead_letters,
                    )
                    stored.dropped = dict(report.dropped)
                    stored.error = error[:500]
                    session.add(stored)
                    session.commit()
        return report

    def intake(self, rows: list[Row], report: RunReport) -> list[dict[str, Any]]:
        """Map, validate, protect and publish one batch; dead-letter what fails. Returns the dead letters.

        Shared by pulls (a source batch) and pushes (a partner's signed request): the same validation and
        the same dead-letter store either way. Returns once the bus has acknowledged the batch.
        """
        return self.deliver(self.prepare(rows), report)

    def prepare(self, rows: list[Row]) -> Prepared:
        """The CPU-bound half of intake: map, validate, protect and encode; nothing is published or stored.

        Apart from creating first-seen subjects' keys it has no effects, so worker processes can run it
        for several batches at once while :meth:`deliver` keeps source order (see connectors.workers).
        """
        pulled_at = datetime.now(UTC)
        prepared = Prepared(rows=len(rows))
        letters = prepared.letters
        mapped_rows: list[tuple[Row, MappedRecord]] = []
        shapes = prepared.shapes  # rows of one source mostly share their columns
        for row in rows:
            try:
                if row.rejected is not None:  # refused by the reader: none of its columns was read as a field
                    raise RecordRejected(f"{self.dataset.id}: {row.rejected}")
                shapes[tuple(row.values)] += 1
                mapped_rows.append((row, self.mapper.map(row.values, row.version_source)))
            except RecordRejected as rejected:
                letters.append(self._letter(row, str(rejected), self._seal_row(row)))
        # One key query per batch rather than one per first-seen resident.
        self.protector.prefetch(self.dataset.id, [mapped.values for _, mapped in mapped_rows])
        events = prepared.events
        for row, mapped in mapped_rows:
            try:
                events.append(self._protect_mapped(row, mapped, pulled_at))
            except ProtectionError as rejected:
                letters.append(self._letter(row, str(rejected), self._seal_row(row)))
            except KeyShredded:
                prepared.erased += 1
                letters.append(self._letter(row, "subject erased (crypto-shredded); row not taken in", b""))
        return prepared

    def publish(self, prepared: Prepared) -> None:
        """Put a prepared batch's records and dead-letter notices on the bus; returns once acknowledged.

        The records' bytes are dropped afterwards: a worker process publishes itself and sends back only
        the counts and dead letters, not megabytes of events for the connector's process to re-send.
        """
        if prepared.events:
            self.bus.publish(records_topic(self.dataset.id), prepared.events)
        if prepared.letters:
            self.bus.publish(
                dead_letter_topic(self.dataset.id),
                [
                    (
                        letter["position"].encode(),
                        _json({k: letter[k] for k in ("connector", "position", "reason")}).encode(),
                    )
                    for letter in prepared.letters
                ],
            )
        prepared.published, prepared.events = len(prepared.events), []
        prepared.on_bus = True

    def deliver(self, prepared: Prepared, report: RunReport) -> list[dict[str, Any]]:
        """Publish a prepared batch (unless a worker did), store its dead letters and count it."""
        if not prepared.on_bus:
            self.publish(prepared)
        letters = prepared.letters
        if letters:
            store_dead_letters(self.store, letters)
        report.rows += prepared.rows
        for shape, count in prepared.shapes.items():
            for column in self._dropped(shape):
                report.dropped[column] += count
        report.published += prepared.published
        report.erased += prepared.erased
        report.dead_letters += sum(1 for letter in letters if letter["sealed_row"])
        return letters

    def _dropped(self, columns: tuple[str, ...]) -> tuple[str, ...]:
        """The source columns no mapping uses (PIPL Art. 6: they never leave the connector)."""
        dropped = self._dropped_by_shape.get(columns)
        if dropped is None:
            used = self.mapper.used
            dropped = tuple(c for c in columns if c not in used)
            if len(self._dropped_by_shape) < 1024:
                self._dropped_by_shape[columns] = dropped
        return dropped

    def _letter(self, row: Row, reason: str, sealed: bytes) -> dict[str, Any]:
        return {
            "connector": self.config.name,
            "dataset": self.dataset.id,
            "position": row.position,
            "reason": reason,
            "sealed_row": sealed,
            "created_at": datetime.now(UTC),
            "status": "open",
        }

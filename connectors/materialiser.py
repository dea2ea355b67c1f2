"""The materialiser: from the bus into the store, exactly once in effect.

Delivery is at least once; the effect is exactly once because the store's upsert is keyed by (dataset,
record key) and ordered by version in one SQL statement: a redelivered or older version changes nothing,
a tombstone is a newer version marked deleted. Offsets are committed only after the store committed, so
a crash replays, never skips.

A message that is not a hub record event, or a record the store refuses (a personal field in clear, an
unknown dataset, no subject index), would otherwise stop the materialiser at the same offset on every
restart, and nothing after it would ever reach the store. Each becomes a dead letter of the connector
``materialiser``, named by topic, partition and offset, with the reason; its bytes are not copied (they
may hold anything) and stay on the bus at that offset. The rest of the batch is applied, and the offsets
move past it. A database that is unreachable is not such a fault: that still stops the run.

Some of those faults are the hub's, not the producer's: a materialiser still on an older catalog refuses
a dataset the connectors already publish (a rolling upgrade). :func:`replay_letters` reads each open
letter's message again from its offset and applies it with the current catalog; the upsert by version
makes that safe however late it comes (an older version than the store's changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from connectors.bus.base import Bus, Message
from connectors.envelope import EnvelopeError, from_event
from connectors.letterbox import settle_letter, store_dead_letters
from connectors.tables import DeadLetter
from hub.errors import CatalogError
from hub.store import ProtectedRecord, RecordStore
from hub.store.records import StoreError

GROUP = "materialiser"


def latest_versions(records: Sequence[ProtectedRecord]) -> list[ProtectedRecord]:
    """One row per (dataset, key) — the newest — since one SQL statement may touch a row only once."""
    newest: dict[tuple[str, str], ProtectedRecord] = {}
    for record in records:
        key = (record.dataset_id, record.record_key)
        if key not in newest or newest[key].version < record.version:
            newest[key] = record
    return list(newest.values())


Refusal = tuple[Message, str]  # a message the materialiser cannot apply, and why


def _apply(store: RecordStore, messages: Sequence[Message]) -> list[Refusal]:
    """Upsert what the messages carry; returns those refused. The usual batch takes the fast path (one
    pass, one upsert); only a batch with a fault is gone through message by message to find it. Only a
    refusal of the message or record itself is isolated so: any other error (the database) propagates."""
    refused: list[Refusal] = []
    try:
        records = [from_event(m.value) for m in messages]
        carried: Sequence[Message] = messages
    except EnvelopeError:
        records, carried = [], []
        for message in messages:
            try:
                records.append(from_event(message.value))
                carried.append(message)
            except EnvelopeError as error:
                refused.append((message, str(error)))
    try:
        store.upsert(latest_versions(records))
    except (StoreError, CatalogError):
        for record, message in zip(records, carried, strict=True):
            try:
                store.upsert([record])
            except (StoreError, CatalogError) as error:
                refused.append((message, str(error)))
    return refused


def _dead_letters(store: RecordStore, refused: Sequence[Refusal]) -> None:
    letter = {"connector": GROUP, "sealed_row": b"", "created_at": datetime.now(UTC), "status": "open"}
    # The message stays on the bus at its offset; its bytes, which may hold anything, are not copied.
    store_dead_letters(
        store.engine,
        [
            letter
            | {"dataset": m.topic, "position": f"{m.topic}/{m.partition}/{m.offset}", "reason": f"not applied: {why}"}
            for m, why in refused
        ],
    )


def materialise(
    bus: Bus,
    store: RecordStore,
    topics: Sequence[str],
    *,
    idle_seconds: float = 1.0,
    batch: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Apply everything published to ``topics`` so far; returns how many messages were applied."""
    consumer = bus.consumer(GROUP, topics)
    applied = 0
    try:
        while True:
            messages = consumer.poll(max_records=batch, timeout=idle_seconds)
            if not messages:
                # An empty poll is not the end: a fresh Kafka consumer's first fetches often come back empty.
                if consumer.caught_up():
                    return applied
                continue
            refused = _apply(store, messages)
            if refused:  # before the offsets move past them
                _dead_letters(store, refused)
            consumer.commit(messages)
            applied += len(messages) - len(refused)
            if progress is not None:
                progress(applied)
    finally:
        consumer.close()


def _where(position: str) -> tuple[str, int, int] | None:
    """(topic, partition, offset) of a materialiser letter's position ``topic/partition/offset``."""
    topic, _, rest = position.rpartition("/")
    topic, _, partition = topic.rpartition("/")
    if not (topic and partition.isdigit() and rest.isdigit()):
        return None
    return topic, int(partition), int(rest)


def replay_letters(bus: Bus, store: RecordStore) -> tuple[int, int]:
    """Apply the materialiser's open dead letters again; returns (replayed, still failing).

    Each letter's message is read again from the bus at its offset, outside the materialiser's group (its
    offsets do not move), and applied with the store's current catalog. What goes in is marked
    ``replayed``; what is still refused, or no longer on the bus, stays open with the reason now.
    """
    with Session(store.engine) as session:
        letters = session.exec(
            select(DeadLetter)
            .where(DeadLetter.connector == GROUP, DeadLetter.status == "open")
            .order_by(col(DeadLetter.id))
        ).all()
    replayed = failing = 0
    for letter in letters:
        where = _where(letter.position)
        message = None if where is None else bus.fetch(*where)
        if message is None:
            reason = "not applied: the message is no longer on the bus at this offset"
        else:
            refused = _apply(store, [message])
            reason = f"not applied: {refused[0][1]}" if refused else ""
        settle_letter(store.engine, letter.id, reason=reason, closed_as="" if reason else "replayed")
        if reason:
            failing += 1
        else:
            replayed += 1
    return replayed, failing

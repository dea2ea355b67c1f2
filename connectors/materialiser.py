"""The materialiser: from the bus into the store, exactly once in effect.

Delivery is at least once; the effect is exactly once because the store's upsert is keyed by (dataset,
record key) and ordered by version in one SQL statement: a redelivered or older version changes nothing,
a tombstone is a newer version marked deleted. Offsets are committed only after the store committed, so
a crash replays, never skips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from connectors.bus.base import Bus
from connectors.envelope import from_event
from hub.store import ProtectedRecord, RecordStore

GROUP = "materialiser"


def latest_versions(records: Sequence[ProtectedRecord]) -> list[ProtectedRecord]:
    """One row per (dataset, key) — the newest — since one SQL statement may touch a row only once."""
    newest: dict[tuple[str, str], ProtectedRecord] = {}
    for record in records:
        key = (record.dataset_id, record.record_key)
        if key not in newest or newest[key].version < record.version:
            newest[key] = record
    return list(newest.values())


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
            store.upsert(latest_versions([from_event(m.value) for m in messages]))
            consumer.commit(messages)
            applied += len(messages)
            if progress is not None:
                progress(applied)
    finally:
        consumer.close()

"""The bus interface both implementations provide."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import NamedTuple, Protocol

RECORDS_PREFIX = "hub.records."
DEAD_LETTERS_PREFIX = "hub.dlq."


def records_topic(dataset: str) -> str:
    return RECORDS_PREFIX + dataset


def dead_letter_topic(dataset: str) -> str:
    return DEAD_LETTERS_PREFIX + dataset


def partition_for(key: bytes, partitions: int) -> int:
    """Stable across processes and runs (unlike ``hash``): a key always lands in the same partition."""
    return zlib.crc32(key) % partitions


class Message(NamedTuple):
    """One record read from a partition (a named tuple: the materialiser makes one per record it applies)."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


class Consumer(Protocol):
    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        """The next messages after this group's committed (or already polled) position."""
        ...

    def commit(self, messages: Sequence[Message]) -> None:
        """Record that ``messages`` (and everything before them in their partitions) are processed."""
        ...

    def caught_up(self) -> bool:
        """Whether this consumer has read everything published so far (an empty poll does not say that)."""
        ...

    def close(self) -> None: ...


class Bus(Protocol):
    name: str

    def publish(self, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
        """Append (key, value) pairs; returns once all are durable (Kafka: acknowledged by all replicas)."""
        ...

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer: ...

    def fetch(self, topic: str, partition: int, offset: int) -> Message | None:
        """The one message at this offset, outside any group (a dead letter's replay reads it again); None
        when the partition holds no message there (never written, or gone with the topic's retention)."""
        ...

    def close(self) -> None: ...

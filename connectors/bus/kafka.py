"""The Kafka bus (kafka-python): acks=all, an idempotent producer, consumer groups with committed offsets.

Consumers take all partitions of their topics by assignment and commit offsets to the group coordinator,
rather than joining the group's rebalance protocol: offsets stay durable per group, and a consumer
starts in milliseconds instead of waiting out a rebalance (measured at over 20 s on the Tansu broker the
tests use). One consumer process per group and topic set is the deployment this assumes; production
runs Apache Kafka.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from connectors.bus.base import Message, partition_for

DEFAULT_PARTITIONS = 4
_PAST_THE_END_WAIT = 2.0  # seconds a fetch past the reported end polls before it answers None


class BusUnavailable(RuntimeError):
    """The broker did not acknowledge; nothing published may be assumed durable."""


class KafkaBus:
    name = "Kafka"

    def __init__(
        self,
        bootstrap_servers: Sequence[str],
        partitions: int = DEFAULT_PARTITIONS,
        timeout: float = 30.0,
        namespace: str = "",
    ) -> None:
        """``namespace`` prefixes every topic and group, so several hubs (or test runs) can share a cluster."""
        self.servers = list(bootstrap_servers)
        self.namespace = namespace
        self.partitions = partitions
        self.timeout = timeout
        self._producer = KafkaProducer(
            bootstrap_servers=self.servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_in_flight_requests_per_connection=5,
        )
        self._admin = KafkaAdminClient(bootstrap_servers=self.servers)
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def ensure_topic(self, topic: str) -> None:
        topic = self.namespace + topic
        if topic in self._known:
            return
        with self._lock:
            with contextlib.suppress(TopicAlreadyExistsError):
                self._admin.create_topics([NewTopic(topic, num_partitions=self.partitions, replication_factor=1)])
            self._known.add(topic)

    def publish(self, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
        self.ensure_topic(topic)
        try:
            futures = [
                self._producer.send(
                    self.namespace + topic, key=key, value=value, partition=partition_for(key, self.partitions)
                )
                for key, value in messages
            ]
            self._producer.flush(self.timeout)
            for future in futures:
                future.get(self.timeout)
        except KafkaError as error:
            raise BusUnavailable(f"Kafka did not acknowledge: {type(error).__name__}") from None

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaBusConsumer:
        for topic in topics:
            self.ensure_topic(topic)
        return KafkaBusConsumer(
            self.servers, self.namespace + group, [self.namespace + t for t in topics], self.partitions, self.namespace
        )

    def fetch(self, topic: str, partition: int, offset: int) -> Message | None:
        # A consumer of no group, for one message: a replay must not move the materialiser's offsets.
        if offset < 0 or not 0 <= partition < self.partitions:
            return None
        tp = TopicPartition(self.namespace + topic, partition)
        consumer = KafkaConsumer(bootstrap_servers=self.servers, group_id=None, enable_auto_commit=False)
        try:
            if partition not in (consumer.partitions_for_topic(tp.topic) or set()):
                return None
            consumer.assign([tp])
            if offset < consumer.beginning_offsets([tp])[tp]:
                return None  # gone with the topic's retention
            # The end offset decides only how long to wait: Tansu reports its last record batch's base offset
            # plus one, so an offset past that end may still be there. One said to exist must come back.
            there = offset < consumer.end_offsets([tp])[tp]
            consumer.seek(tp, offset)
            deadline = time.monotonic() + (self.timeout if there else _PAST_THE_END_WAIT)
            while time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500, max_records=1).values():
                    for r in batch:  # a later offset: the one asked for was compacted away
                        found = r.offset == offset
                        return Message(topic, partition, r.offset, r.key or b"", r.value or b"") if found else None
            if there:
                raise BusUnavailable(f"Kafka did not return offset {offset} of {topic}/{partition} in time")
            return None
        except KafkaError as error:
            raise BusUnavailable(f"Kafka did not answer: {type(error).__name__}") from None
        finally:
            consumer.close()

    def close(self) -> None:
        self._producer.close(self.timeout)
        self._admin.close()


class KafkaBusConsumer:
    def __init__(self, servers: list[str], group: str, topics: list[str], partitions: int, namespace: str = "") -> None:
        self.namespace = namespace
        self._consumer = KafkaConsumer(
            bootstrap_servers=servers, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self._consumer.assign([TopicPartition(t, p) for t in topics for p in range(partitions)])

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        records = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        return [
            Message(r.topic.removeprefix(self.namespace), r.partition, r.offset, r.key or b"", r.value or b"")
            for batch in records.values()
            for r in batch
        ]

    def commit(self, messages: Sequence[Message]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for m in messages:
            tp = TopicPartition(self.namespace + m.topic, m.partition)
            if tp not in offsets or offsets[tp].offset < m.offset + 1:
                offsets[tp] = OffsetAndMetadata(m.offset + 1, "", -1)
        if offsets:
            self._consumer.commit(offsets)

    def caught_up(self) -> bool:
        partitions = list(self._consumer.assignment())
        ends = self._consumer.end_offsets(partitions)
        return all(self._consumer.position(tp) >= ends[tp] for tp in partitions)

    def close(self) -> None:
        self._consumer.close()

"""The bus between connectors and the store: one interface, an embedded durable log and Kafka.

Both give the same semantics: topics split into partitions by key (one record's versions stay in order),
publishing returns only once the messages are durable, consumer groups keep committed offsets, and a
consumer that did not commit sees the messages again (at-least-once).
"""

from connectors.bus.base import Bus, Consumer, Message, partition_for

__all__ = ["Bus", "Consumer", "Message", "partition_for"]

"""The bus: the same semantics on the embedded log and on Kafka (a real Tansu broker)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.bus.base import Bus, Message
from connectors.bus.kafka import KafkaBus
from connectors.bus.local import LocalBus, _Partition
from connectors.envelope import EnvelopeError, from_event, to_event
from hub.store.records import ProtectedRecord, Provenance
from keys import sealed_record


@pytest.fixture(params=["local", "kafka"])
def bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bus]:
    if request.param == "local":
        implementation: Bus = LocalBus(tmp_path / "bus")
    else:
        implementation = KafkaBus([request.getfixturevalue("kafka_bootstrap")])
    yield implementation
    implementation.close()


def _topic() -> str:
    return f"hub.records.test-{uuid.uuid4().hex[:8]}"


def _drain(consumer: object, expected: int, timeout: float = 15.0) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        got += consumer.poll(max_records=500, timeout=0.5)  # type: ignore[attr-defined]
    return got


def test_every_message_arrives_and_one_key_keeps_its_order(bus: Bus) -> None:
    topic = _topic()
    messages = [(f"key-{n % 7}".encode(), f"value-{n}".encode()) for n in range(300)]
    bus.publish(topic, messages[:150])
    bus.publish(topic, messages[150:])
    consumer = bus.consumer("materialiser", [topic])
    got = _drain(consumer, 300)
    assert sorted(m.value for m in got) == sorted(v for _, v in messages)
    for key in {k for k, _ in messages}:
        in_order = [m.value for m in sorted(got, key=lambda m: (m.partition, m.offset)) if m.key == key]
        assert in_order == [v for k, v in messages if k == key]
    consumer.close()


def test_committed_offsets_survive_and_uncommitted_messages_come_back(bus: Bus) -> None:
    topic = _topic()
    bus.publish(topic, [(f"k{n}".encode(), f"v{n}".encode()) for n in range(100)])
    first = bus.consumer("group-a", [topic])
    got = _drain(first, 100)
    assert len(got) == 100
    done = sorted(got, key=lambda m: (m.partition, m.offset))
    by_partition: dict[int, list[Message]] = {}
    for m in done:
        by_partition.setdefault(m.partition, []).append(m)
    committed = [m for ms in by_partition.values() for m in ms[: len(ms) // 2]]
    first.commit(committed[::-1])  # in any order, each partition's highest offset is what counts
    first.close()
    second = bus.consumer("group-a", [topic])  # a restart: at-least-once redelivers the rest
    again = _drain(second, 100 - len(committed), timeout=5.0)
    assert {m.value for m in again} == {m.value for m in got} - {m.value for m in committed}
    second.commit(again)
    second.close()
    third = bus.consumer("group-a", [topic])
    assert third.poll(timeout=1.0) == []
    other_group = bus.consumer("group-b", [topic])
    assert len(_drain(other_group, 100)) == 100


def test_one_message_is_fetched_by_its_offset_without_moving_any_group(bus: Bus) -> None:
    topic = _topic()
    bus.publish(topic, [(f"k{n}".encode(), f"v{n}".encode()) for n in range(40)])
    consumer = bus.consumer("group-f", [topic])
    got = _drain(consumer, 40)
    consumer.commit(got[:10])
    consumer.close()
    for message in got[::7]:
        assert bus.fetch(topic, message.partition, message.offset) == message
    last = max(m.offset for m in got if m.partition == got[0].partition)
    assert bus.fetch(topic, got[0].partition, last + 1) is None  # never written
    assert bus.fetch(topic, got[0].partition, -1) is None
    assert bus.fetch(topic, 99, 0) is None  # no such partition
    again = bus.consumer("group-f", [topic])  # the group's offsets are where its own commit left them
    assert len(_drain(again, 30, timeout=5.0)) == 30
    again.close()


def test_envelope_round_trip_is_a_cloudevent_without_plaintext() -> None:
    record = ProtectedRecord(
        dataset_id="health.visit",
        record_key="V2611190000001",
        version=3,
        provenance=Provenance(
            "health",
            "regional-his",
            "his_visit.update_time=2026-11-19 10:00:00",
            datetime(2026, 11, 20, tzinfo=UTC),
            datetime(2026, 11, 19, 2, tzinfo=UTC),
        ),
        subject_index=b"\x01" * 32,
        clear_fields={"visit_no": "V2611190000001", "updated_at": "2026-11-19T10:00:00+08:00"},
        sealed_fields=sealed_record.pack(b"HK\x01", [("diagnosis", b"SEALED")]),  # as the protector writes it
    )
    key, body = to_event(record)
    assert key == b"health.visit\x00V2611190000001"
    import json

    event = json.loads(body)
    assert event["specversion"] == "1.0" and event["type"] == "gov.city.hub.record.v1"
    assert event["source"] == "/agencies/health/regional-his" and event["recordversion"] == "3"
    assert base64.b64decode(event["data"]["sealed"]) == record.sealed_fields  # the blob the store keeps
    assert from_event(body) == record
    # Events of earlier releases carried the JSON packing, as an object or as base64 of it: they still read,
    # and what they carry opens as the same fields.
    legacy = {"diagnosis": base64.b64encode(b"HK\x01SEALED").decode()}
    for earlier in (legacy, base64.b64encode(json.dumps(legacy, separators=(",", ":")).encode()).decode()):
        event["data"]["sealed"] = earlier
        read = from_event(json.dumps(event).encode())
        assert sealed_record.unpack(read.sealed_fields) == sealed_record.unpack(record.sealed_fields)
    # Base64 is read strictly: stray characters, missing padding or text after the padding are refused.
    for field, bad in (("sealed", "AQAB!AAA"), ("sealed", "AQA"), ("subject_index", "AQ==AQ=="), ("sealed", "ÄQ==")):
        event["data"] = {**event["data"], "sealed": base64.b64encode(record.sealed_fields).decode(), field: bad}
        with pytest.raises(EnvelopeError):
            from_event(json.dumps(event).encode())
    event["data"]["sealed"] = ["not", "sealed", "fields"]
    with pytest.raises(EnvelopeError):
        from_event(json.dumps(event).encode())


def test_a_torn_tail_is_never_read_and_is_cut_before_the_next_append(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path / "bus", partitions=1)
    bus.publish("t", [(b"k", b"one"), (b"k", b"two")])
    path = tmp_path / "bus" / "t" / "0.log"
    with path.open("ab") as handle:
        handle.write(b"\x00\x00\x01\x00garbage-of-a-half-written-record")
    assert [m.value for m in bus.consumer("g", ["t"]).poll(timeout=0.1)] == [b"one", b"two"]
    bus.publish("t", [(b"k", b"three")])
    assert [m.value for m in LocalBus(tmp_path / "bus", partitions=1).consumer("g", ["t"]).poll(timeout=0.1)] == [
        b"one",
        b"two",
        b"three",
    ]


def test_end_offsets_extend_the_index_instead_of_rereading_the_log(tmp_path: Path) -> None:
    """A caught-up check runs after every idle poll; it must cost what was appended since, not the whole log."""
    bus = LocalBus(tmp_path / "bus", partitions=2)
    bus.publish("t", [(f"k{n}".encode(), b"v" * 100) for n in range(40)])
    first = bus.end_offsets("t")
    assert sum(first.values()) == 40
    scanned = {p: bus._readers[("t", p)].scanned_to for p in range(2)}
    reads: list[int] = []
    original = _Partition.scan

    def counting_scan(self: _Partition, index: bool = True) -> None:
        reads.append(self.path.stat().st_size - self.scanned_to)  # bytes this scan has to look at
        original(self, index)

    _Partition.scan = counting_scan  # type: ignore[method-assign]
    try:
        bus.publish("t", [(b"k0", b"w" * 100)])
        second = bus.end_offsets("t")
    finally:
        _Partition.scan = original  # type: ignore[method-assign]
    assert sum(second.values()) == 41
    assert sum(reads) == sum(bus._readers[("t", p)].scanned_to - scanned[p] for p in range(2))  # only the new record


def test_writers_share_where_the_valid_data_ends(tmp_path: Path) -> None:
    """Two writers (as two processes would) append in turn; neither re-checks the other's records."""
    one, two = LocalBus(tmp_path / "bus", partitions=1), LocalBus(tmp_path / "bus", partitions=1)
    scans: list[int] = []
    original = _Partition.scan

    def counting_scan(self: _Partition, index: bool = True) -> None:
        scans.append(self.path.stat().st_size - self.scanned_to)
        original(self, index)

    _Partition.scan = counting_scan  # type: ignore[method-assign]
    try:
        for n in range(6):
            (one if n % 2 else two).publish("t", [(b"k", f"v{n}".encode() * 50)])
    finally:
        _Partition.scan = original  # type: ignore[method-assign]
    assert scans == []
    # A writer that died after its fsync but before its marker: the next one checks only those bytes.
    path, lock = tmp_path / "bus" / "t" / "0.log", tmp_path / "bus" / "t" / ".lock"
    record = 12 + 1 + 100  # header, key, value
    lock.write_bytes((path.stat().st_size - record).to_bytes(8, "big"))
    _Partition.scan = counting_scan  # type: ignore[method-assign]
    try:
        one.publish("t", [(b"k", b"last")])
        assert scans == [record]
        # A marker that is no record boundary (never written by a writer) costs a full check, not data.
        lock.write_bytes((path.stat().st_size - 2).to_bytes(8, "big"))
        scans.clear()
        two.publish("t", [(b"k", b"after")])
        assert scans == [2, path.stat().st_size - len(b"after") - 13]
    finally:
        _Partition.scan = original  # type: ignore[method-assign]
    values = [m.value for m in LocalBus(tmp_path / "bus", partitions=1).consumer("g", ["t"]).poll(timeout=0.1)]
    assert values == [f"v{n}".encode() * 50 for n in range(6)] + [b"last", b"after"]


WRITER = """
import sys
from pathlib import Path
from connectors.bus.local import LocalBus
bus = LocalBus(Path(sys.argv[1]))
n = 0
while True:
    bus.publish("t", [(f"k{n % 13}".encode(), f"{n:08d}".encode() * 64) for n in range(n, n + 50)])
    n += 50
    print(n, flush=True)
"""


def test_a_writer_killed_mid_stream_loses_no_acknowledged_message(tmp_path: Path) -> None:
    root = tmp_path / "bus"
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True)
    acknowledged = 0
    assert process.stdout is not None
    while acknowledged < 2000:
        acknowledged = int(process.stdout.readline())
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    bus = LocalBus(root)
    consumer = bus.consumer("g", ["t"])
    got = _drain(consumer, acknowledged, timeout=2.0)
    values = {int(m.value[:8]) for m in got}
    assert set(range(acknowledged)) <= values  # every acknowledged batch is there, whole
    assert all(m.value == m.value[:8] * 64 for m in got)  # and nothing torn was read
    bus.publish("t", [(b"k", b"after the crash")])
    assert any(m.value == b"after the crash" for m in _drain(consumer, 1, timeout=2.0))


def test_settings_choose_the_bus(tmp_path: Path, kafka_bootstrap: str) -> None:
    from connectors.bus.select import open_bus
    from hub.settings import load_settings

    local = open_bus(load_settings(var_dir=tmp_path))
    assert isinstance(local, LocalBus) and local.root == tmp_path / "bus"
    kafka = open_bus(load_settings(var_dir=tmp_path, bus="kafka", kafka_bootstrap_servers=[kafka_bootstrap]))
    assert isinstance(kafka, KafkaBus)
    kafka.close()


def test_the_envelope_is_cloudevents_both_ways() -> None:
    """The SDK reads what we write, and we read what the SDK writes."""
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    record = ProtectedRecord(
        dataset_id="police.incident",
        record_key="J1",
        version=7,
        provenance=Provenance(
            "police", "police-110-dispatch", "bj_alarm.alarm_no=J1", datetime(2026, 11, 20, tzinfo=UTC)
        ),
        subject_index=b"\x02" * 32,
        clear_fields={"incident_no": "J1", "incident_type": "fraud"},
        sealed_fields=b"{}",
        deleted=True,
    )
    _, body = to_event(record)
    parsed = JSONFormat().read(None, body)
    assert parsed.get_type() == "gov.city.hub.record.deleted.v1" and parsed.get_extension("recordversion") == "7"
    assert parsed.get_time() == datetime(2026, 11, 20, tzinfo=UTC)
    data = parsed.get_data()
    assert isinstance(data, dict) and data["clear"]["incident_type"] == "fraud"
    attributes = {k: v for k, v in parsed.get_attributes().items()}
    written = JSONFormat().write(CloudEvent(attributes, data))
    assert from_event(written) == record


def test_kafka_record_batches_are_checksummed_in_c() -> None:
    """kafka-python checks every record batch's CRC-32C, producing and consuming. Without the ``crc32c``
    package it falls back to a Python loop, which took 69% of the Kafka path's CPU (py-spy, 2026-12-02)."""
    import crc32c
    from kafka.record import util

    assert util.calc_crc32c.__defaults__ == (crc32c.crc32c,)
    assert util.calc_crc32c(memoryview(b"123456789")) == 0xE3069283  # the CRC-32C check value (RFC 3720)

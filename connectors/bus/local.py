"""The embedded bus: a durable, partitioned append-only log in files, for single-machine runs.

Layout: ``<root>/<topic>/<partition>.log`` holds records as ``u32 length | u32 crc32 | u32 key length |
key | value``, the CRC over key length, key and value; ``<root>/<topic>/.lock`` is the topic's write lock
and holds each partition's valid end (u64 per partition); ``<root>/_groups/<group>.json`` holds committed
offsets. ``publish`` appends under an exclusive lock and fsyncs before it returns, so an acknowledged
message survives a crash or SIGKILL. A record torn by a crash mid-write fails its length or CRC check and
is cut off the next time the partition is opened for writing; readers stop before it. Offsets are record
numbers within a partition.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from connectors.bus.base import Message, partition_for

_HEADER = struct.Struct(">III")
_END = struct.Struct(">Q")  # a partition's valid end, in its topic's lock file
_SCAN_CHUNK = 1 << 22
DEFAULT_PARTITIONS = 4


def _safe(topic: str) -> str:
    if not topic or "/" in topic or topic.startswith((".", "_")):
        raise ValueError(f"invalid topic name {topic!r}")
    return topic


class _Partition:
    """One partition file: a lazily extended index of record positions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.positions: list[int] = []  # byte position of each record
        self.scanned_to = 0

    def scan(self, index: bool = True) -> None:
        """Index whole, valid records appended since the last scan; stop at a torn or corrupt tail.

        The new bytes are read in large chunks and checked in memory (the CRC continued over the key
        length and the body, without copying them together): a consumer scans every record it reads.
        """
        if not self.path.exists():
            return
        unpack = _HEADER.unpack_from
        crc32 = zlib.crc32
        with self.path.open("rb") as handle:
            handle.seek(self.scanned_to)
            position = self.scanned_to
            buffer = b""
            while True:
                chunk = handle.read(_SCAN_CHUNK)
                if not chunk:
                    break
                buffer = buffer + chunk if buffer else chunk
                view = memoryview(buffer)
                at, size = 0, len(buffer)
                while size - at >= _HEADER.size:
                    length, crc, key_length = unpack(buffer, at)
                    end = at + _HEADER.size + length
                    if end > size:
                        break  # the rest of this record is in the next chunk (or was never written)
                    if (
                        key_length > length
                        or crc32(view[at + _HEADER.size : end], crc32(view[at + 8 : at + 12])) != crc
                    ):
                        self.scanned_to = position + at
                        return  # a corrupt record: readers stop before it
                    if index:
                        self.positions.append(position + at)
                    at = end
                view.release()
                buffer = buffer[at:]
                position += at
            self.scanned_to = position

    def read(self, topic: str, partition: int, start: int, limit: int) -> list[Message]:
        """Up to ``limit`` records from offset ``start``, as the messages the consumer hands on."""
        self.scan()
        if start >= len(self.positions):
            return []
        end = min(len(self.positions), start + limit)
        first = self.positions[start]
        last = self.positions[end] if end < len(self.positions) else self.scanned_to
        with self.path.open("rb") as handle:  # the records are contiguous: one read, then slices
            handle.seek(first)
            data = handle.read(last - first)
        out = []
        unpack, header, new = _HEADER.unpack_from, _HEADER.size, tuple.__new__
        at = 0
        for offset in range(start, end):  # once per message consumed: the named tuples are built directly
            length, _, key_length = unpack(data, at)
            body_at = at + header
            key_end = body_at + key_length
            at = body_at + length
            out.append(new(Message, (topic, partition, offset, data[body_at:key_end], data[key_end:at])))
        return out


class LocalBus:
    name = "embedded log"

    def __init__(self, root: Path, partitions: int = DEFAULT_PARTITIONS) -> None:
        self.root = root
        self.partitions = partitions
        root.mkdir(parents=True, exist_ok=True)
        (root / "_groups").mkdir(exist_ok=True)
        self._readers: dict[tuple[str, int], _Partition] = {}

    def _partition_path(self, topic: str, partition: int) -> Path:
        return self.root / _safe(topic) / f"{partition}.log"

    @staticmethod
    @contextlib.contextmanager
    def _lock(directory: Path) -> Iterator[int]:
        """An exclusive ``flock`` on ``directory/.lock``; yields the lock file's descriptor."""
        directory.mkdir(exist_ok=True)
        # Read-write, not append: the topic's lock file also holds its partitions' end markers (pwrite).
        descriptor = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                yield descriptor
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            os.close(descriptor)

    @staticmethod
    def _repair(path: Path, lock: int, partition: int) -> int:
        """Cut a torn tail left by a crashed writer, so new records follow the last whole one; returns the end.

        Called under the topic's write lock. Every writer, in any process, records where the partition's
        valid data ends in the lock file once its append is on disk (8 bytes per partition, after the
        fsync, so the marker never runs ahead of the data). When the file's size equals the marker, nobody
        crashed mid-write and there is nothing to check; otherwise only the bytes after the marker are
        scanned. Before the marker was shared, each writer re-scanned every other writer's appends.
        """
        size = path.stat().st_size if path.exists() else 0
        marker = os.pread(lock, _END.size, partition * _END.size)
        known = _END.unpack(marker)[0] if len(marker) == _END.size else 0
        if known == size:
            return size
        reader = _Partition(path)
        reader.scanned_to = known if known < size else 0  # a marker past the end is not trusted
        reader.scan(index=False)
        if size > reader.scanned_to and reader.scanned_to != 0:
            # Something after the marker does not check out. Before cutting anything, make sure the marker
            # was a record boundary of this file: check it from the start (a crash's rare, one-off cost).
            reader = _Partition(path)
            reader.scan(index=False)
        if size > reader.scanned_to:
            with path.open("r+b") as handle:
                handle.truncate(reader.scanned_to)
                os.fsync(handle.fileno())
        return reader.scanned_to

    def publish(self, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
        by_partition: dict[int, list[bytes]] = {}
        pack, crc32 = _HEADER.pack, zlib.crc32
        for key, value in messages:
            length = len(key)
            key_length = length.to_bytes(4, "big")
            crc = crc32(value, crc32(key, crc32(key_length)))
            by_partition.setdefault(partition_for(key, self.partitions), []).append(
                pack(length + len(value), crc, length) + key + value
            )
        with self._lock(self.root / _safe(topic)) as lock:
            for partition, records in by_partition.items():
                path = self._partition_path(topic, partition)
                end = self._repair(path, lock, partition)
                data = b"".join(records)
                with path.open("ab") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.pwrite(lock, _END.pack(end + len(data)), partition * _END.size)

    def _reader(self, topic: str, partition: int) -> _Partition:
        """This bus's index of a partition, extended by each later scan rather than rebuilt."""
        key = (topic, partition)
        reader = self._readers.get(key)
        if reader is None:
            reader = self._readers[key] = _Partition(self._partition_path(topic, partition))
        return reader

    def read(self, topic: str, partition: int, start: int, limit: int) -> list[Message]:
        return self._reader(topic, partition).read(topic, partition, start, limit)

    def fetch(self, topic: str, partition: int, offset: int) -> Message | None:
        if offset < 0 or not 0 <= partition < self.partitions:
            return None
        found = self.read(topic, partition, offset, 1)
        return found[0] if found else None

    def end_offsets(self, topic: str) -> dict[int, int]:
        # The cached index: a caught-up check after every idle poll used to re-read and re-check every record
        # of every partition from the start.
        ends = {}
        for partition in range(self.partitions):
            reader = self._reader(topic, partition)
            reader.scan()
            ends[partition] = len(reader.positions)
        return ends

    def committed(self, group: str) -> dict[str, int]:
        path = self.root / "_groups" / f"{group}.json"
        if not path.exists():
            return {}
        data: dict[str, int] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def commit_offsets(self, group: str, offsets: dict[str, int]) -> None:
        path = self.root / "_groups" / f"{group}.json"
        with self._lock(self.root / "_groups"):
            current = self.committed(group)
            for name, offset in offsets.items():
                current[name] = max(current.get(name, 0), offset)
            descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(current, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            Path(temporary).replace(path)

    def consumer(self, group: str, topics: Sequence[str]) -> LocalConsumer:
        return LocalConsumer(self, group, list(topics))

    def close(self) -> None:
        self._readers.clear()


class LocalConsumer:
    def __init__(self, bus: LocalBus, group: str, topics: list[str]) -> None:
        self.bus = bus
        self.group = group
        committed = bus.committed(group)
        self.positions = {
            (topic, p): committed.get(f"{topic}/{p}", 0) for topic in topics for p in range(bus.partitions)
        }

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while True:
            batch: list[Message] = []
            for (topic, partition), position in self.positions.items():
                if len(batch) >= max_records:
                    break
                messages = self.bus.read(topic, partition, position, max_records - len(batch))
                if messages:
                    self.positions[(topic, partition)] = messages[-1].offset + 1
                    batch.extend(messages)
            if batch or time.monotonic() >= deadline:
                return batch
            time.sleep(0.02)

    def commit(self, messages: Sequence[Message]) -> None:
        # Once per applied message: the last offset per partition first, the offsets' names once per partition.
        last: dict[tuple[str, int], int] = {}
        get = last.get
        for topic, partition, offset, _, _ in messages:
            where = (topic, partition)
            if get(where, -1) < offset:
                last[where] = offset
        if last:
            self.bus.commit_offsets(self.group, {f"{t}/{p}": offset + 1 for (t, p), offset in last.items()})

    def caught_up(self) -> bool:
        ends: dict[str, dict[int, int]] = {}
        for topic, _ in self.positions:
            if topic not in ends:
                ends[topic] = self.bus.end_offsets(topic)
        return all(self.positions[(t, p)] >= ends[t].get(p, 0) for t, p in self.positions)

    def close(self) -> None:
        return None

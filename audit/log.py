"""The audit log: a single-writer sequencer over append-only tables, a Merkle tree and signed checkpoints.

``append`` returns only after the entry is committed (callers that release data wait for it: no
audit entry, no data). Appends from many threads are queued to one writer thread, which commits
whatever is waiting (up to ``max_batch``) in one transaction, so throughput grows with concurrency
while a lone append pays one commit. Several processes may share one database: each writer takes an
advisory lock (PostgreSQL: ``pg_advisory_xact_lock``, then it catches up on entries written by others; a
SQLite file: ``flock`` on a lock file beside it, which also holds the next number, see ``_next_seq``), then
numbers its batch. The contiguity trigger stays as the backstop (a writer without the lock, or with a stale
number, fails and retries; it cannot fork the log). On SQLite the file lock
matters for latency, not only order: SQLite's own busy handler polls with sleeps of up to 100 ms, and two
API workers appending at once spent most of their tail latency there; a blocked ``flock`` wakes as soon
as the other writer commits.

An append may bring an ``effect`` of its own, run in the same transaction
once its entry is inserted (a release's agreement use counters, say): the effect is durable exactly when
its entry is, and costs no transaction of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from audit import storage
from audit.entries import EntryDraft, SealedEntry, prepare_entry, utc_stamp
from audit.merkle import MerkleTree, leaf_hash
from audit.note import Checkpoint, NoteSigner, split_note

MAX_BATCH = 256
SEQUENCER_LOCK = 0x6875622D61756474  # pg_advisory_xact_lock key ("hub-audt")
# How long the writer waits for more appends when the queue runs dry mid-batch. Measured here it only
# costs throughput (with 64 async appenders: 48k/s at 0 ms, 28k/s at 1 ms, 18k/s at 2 ms), because a
# commit takes long enough for the next batch to queue up by itself; kept as an option for disks
# whose commits are much slower than their CPUs.
LINGER_SECONDS = 0.0
_INSERT = "INSERT INTO audit_entry (seq, leaf_hash, body) VALUES (?, ?, ?)"
# Catching up on other processes' entries reads their leaf hashes only (bodies too when verifying): the
# writer does this before every batch, and a Core select built each time cost more than the batch's insert.
_CATCH_UP = "SELECT seq, leaf_hash FROM audit_entry WHERE seq >= ? ORDER BY seq"
_CATCH_UP_VERIFIED = "SELECT seq, leaf_hash, body FROM audit_entry WHERE seq >= ? ORDER BY seq"
_STOP = object()

Effect = Callable[[Connection], None]


class Combinable(Protocol):
    """An effect that many entries of one batch may carry and that the batch runs once, combined: its
    class's ``combine`` turns the batch's effects of that class into one (a release's use counters: one
    UPDATE a batch instead of one a release). All effects of a batch commit together or not at all, so
    running them combined changes nothing but the cost."""

    def __call__(self, connection: Connection) -> None: ...

    @classmethod
    def combine(cls, effects: Sequence[Any]) -> Effect: ...


def _batch_effects(batch: Sequence[_Pending]) -> list[Effect]:
    """The batch's effects in order, each combinable class's together at its first place (see Combinable)."""
    order: list[Effect | type] = []
    combined: dict[type, list[Effect]] = {}
    for effect in (e for pending in batch for _, e in pending.drafts):
        if effect is None:
            continue
        kind = type(effect)
        if not callable(getattr(kind, "combine", None)):
            order.append(effect)
        elif kind in combined:
            combined[kind].append(effect)
        else:
            combined[kind] = [effect]
            order.append(kind)
    return [
        item.combine(combined[item]) if isinstance(item, type) else item  # type: ignore[attr-defined]
        for item in order
    ]


@dataclass(frozen=True)
class StoredCheckpoint:
    id: int
    note: str
    timestamp_token: bytes | None


class AuditUnavailable(RuntimeError):
    """The audit log cannot record entries; callers must not release data."""


class TamperedLog(RuntimeError):
    """Stored entries do not match their stored leaf hashes."""


Sealed = list[SealedEntry]


@dataclass(frozen=True, slots=True)
class _Pending:
    """One queued append of one or more drafts that belong together (a release's decisions and itself), in
    order, each with its effect: resolved, with their sealed entries, through a thread future or an asyncio
    future on ``loop``. One item and one future a release, not one an entry: the futures, queue puts and the
    ``gather`` over them cost more than the queueing itself."""

    drafts: tuple[tuple[EntryDraft, Effect | None], ...]
    future: Future[Sealed] | None = None
    waiter: asyncio.Future[Sealed] | None = None
    loop: asyncio.AbstractEventLoop | None = None


def _resolve(waiters: list[tuple[asyncio.Future[Sealed], Sealed | None]], error: Exception | None) -> None:
    """Runs on the event loop: settle a whole batch's waiters in one wake-up."""
    for waiter, entries in waiters:
        if waiter.done():  # the awaiting task was cancelled
            continue
        if error is not None or entries is None:
            waiter.set_exception(error or AuditUnavailable("audit log: no result"))
        else:
            waiter.set_result(entries)


def _settle(batch: list[_Pending], entries: Sealed | None, error: Exception | None) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Sealed], Sealed | None]]] = {}
    start = 0
    for pending in batch:
        own = entries[start : start + len(pending.drafts)] if entries is not None else None
        start += len(pending.drafts)
        if pending.future is not None:
            if error is not None or own is None:
                pending.future.set_exception(error or AuditUnavailable("audit log: no result"))
            else:
                pending.future.set_result(own)
        elif pending.waiter is not None and pending.loop is not None:
            by_loop.setdefault(pending.loop, []).append((pending.waiter, own))
    for loop, waiters in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that event loop has closed; nobody is waiting
            loop.call_soon_threadsafe(_resolve, waiters, error)


def _sqlite_lock_file(engine: Engine) -> int | None:
    """A descriptor of ``<database>.audit-lock`` for a SQLite file database; None for other databases."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.open(f"{database}.audit-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


class AuditLog:
    def __init__(
        self,
        engine: Engine,
        signer: NoteSigner | Sequence[NoteSigner],
        origin: str,
        *,
        max_batch: int = MAX_BATCH,
        linger: float = LINGER_SECONDS,
        checkpoint_interval: float | None = None,
        timestamper: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.engine = engine
        # Every key in the list signs each checkpoint and manifest: during a key rotation both the old and
        # the new key sign, so auditors pinned to either keep verifying. The first is the current key.
        self.signers: list[NoteSigner] = [signer] if isinstance(signer, NoteSigner) else list(signer)
        if not self.signers:
            raise ValueError("an audit log needs at least one signing key")
        self.origin = origin
        # Given a checkpoint body, returns an RFC 3161 token over it (see audit.timestamp). A failing TSA
        # fails the checkpoint: the log keeps appending, and the next interval tries again.
        self.timestamper = timestamper
        self.max_batch = max_batch
        self.linger = linger

        # The driver's own placeholders (sqlite3 "?", psycopg "%s"), as keys.sql.driver_sql does for the store;
        # audit/ keeps no dependency on keys/, so it translates its three constant statements here.
        def placeholders(sql: str) -> str:
            return sql if engine.dialect.paramstyle == "qmark" else sql.replace("?", "%s")

        self._insert_sql = placeholders(_INSERT)
        self._catch_up_sql = {False: placeholders(_CATCH_UP), True: placeholders(_CATCH_UP_VERIFIED)}
        self._file_lock = _sqlite_lock_file(engine)
        self._next_is_known = True  # whether the lock file's number may be used (see _next_seq)
        # The writer thread's own connection, kept between batches (see _writer_connection).
        self._connection: Connection | None = None
        storage.install(engine)
        self.tree = MerkleTree()
        self._tree_lock = threading.Lock()
        self._catch_up(verify=True)
        self._queue: queue.Queue[object] = queue.Queue()
        self._closed = False
        self._stopping = False  # the writer took the stop signal while gathering a batch (_take_waiting)
        self._writer = threading.Thread(target=self._run, name="audit-sequencer", daemon=True)
        self._writer.start()
        self._stop_interval = threading.Event()
        if checkpoint_interval:
            threading.Thread(
                target=self._checkpoint_every, args=(checkpoint_interval,), name="audit-checkpointer", daemon=True
            ).start()

    @property
    def signer(self) -> NoteSigner:
        return self.signers[0]

    def sign(self, body: str) -> str:
        """``body`` as a signed note, one signature line per signing key."""
        return body + "\n" + "".join(s.signature_line(body) for s in self.signers)

    def _checkpoint_every(self, interval: float) -> None:
        while not self._stop_interval.wait(interval):
            with contextlib.suppress(Exception):  # a failed interval checkpoint is retried next interval
                self.checkpoint()

    # -- loading ---------------------------------------------------------------------------------------

    def _catch_up(self, verify: bool = False, connection: Connection | None = None) -> None:
        """Take entries written by other processes into the tree (all of them, verified, on open)."""
        with contextlib.ExitStack() as stack:
            conn = connection if connection is not None else stack.enter_context(self.engine.connect())
            for row in conn.exec_driver_sql(self._catch_up_sql[verify], (self.tree.size,)):
                seq, hashed = row[0], row[1]
                if seq != self.tree.size:
                    raise TamperedLog(f"audit_entry: sequence gap at {self.tree.size}")
                if verify and leaf_hash(bytes(row[2])) != bytes(hashed):
                    raise TamperedLog(f"audit_entry {seq}: body does not match its leaf hash")
                self.tree.append(bytes(hashed))

    # -- appending -------------------------------------------------------------------------------------

    def submit(self, draft: EntryDraft, effect: Effect | None = None) -> Future[SealedEntry]:
        """Queue ``draft``; the future gives its sealed entry once it is durable."""
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        queued: Future[Sealed] = Future()
        future: Future[SealedEntry] = Future()

        def settle(done: Future[Sealed]) -> None:
            error = done.exception()
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(done.result()[0])

        queued.add_done_callback(settle)
        self._queue.put(_Pending(((draft, effect),), future=queued))
        return future

    def append(self, draft: EntryDraft, timeout: float = 30.0, effect: Effect | None = None) -> SealedEntry:
        """Record ``draft`` durably and return the sealed entry; raises AuditUnavailable otherwise.

        ``effect`` runs on the batch's connection, in its transaction, after the entries are inserted: it is
        committed with the entry or not at all, and if it fails the batch fails (AuditUnavailable).
        """
        return self.submit(draft, effect).result(timeout)

    async def append_async(self, draft: EntryDraft, effect: Effect | None = None) -> SealedEntry:
        """Record ``draft`` durably from async code (``effect`` as for :meth:`append`); the whole batch wakes
        the event loop once."""
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Sealed] = loop.create_future()
        self._queue.put(_Pending(((draft, effect),), waiter=waiter, loop=loop))
        return (await waiter)[0]

    async def append_all_async(self, drafts: Sequence[tuple[EntryDraft, Effect | None]]) -> list[SealedEntry]:
        """Record several drafts durably from async code, in order and in one batch (each with its ``effect``,
        as for :meth:`append`); raises AuditUnavailable if they could not be recorded.

        One queued item and one future for them all: a release appends its decisions and itself together, and
        a future (or a task) a draft cost more than the queueing."""
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Sealed] = loop.create_future()
        # Queued on the loop's next turn, after the callbacks already ready: the appends of every request
        # that reaches this point in the same turn reach the writer together, as one batch. Queued at once,
        # each release woke the writer by itself (batches of 4 entries instead of 56 in process).
        loop.call_soon(self._queue_one, _Pending(tuple(drafts), waiter=waiter, loop=loop))
        return await waiter

    def _queue_one(self, pending: _Pending) -> None:
        if self._closed:  # closed since the call: the writer may be gone, so nobody would answer
            if pending.waiter is not None and not pending.waiter.done():
                pending.waiter.set_exception(AuditUnavailable("the audit log is closed"))
            return
        self._queue.put(pending)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            entries = len(first.drafts) if isinstance(first, _Pending) else 0
            stop = False
            deadline = time.monotonic() + self.linger
            while entries < self.max_batch and not stop:
                try:
                    item = self._queue.get_nowait()  # drain what is already there without waiting
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)  # only an empty queue is worth a wait
                    except queue.Empty:
                        break
                if item is _STOP:
                    stop = True
                else:
                    batch.append(item)
                    entries += len(item.drafts) if isinstance(item, _Pending) else 0
            self._commit([p for p in batch if isinstance(p, _Pending)])
            if stop or self._stopping:
                return

    def _take_waiting(self, batch: list[_Pending]) -> None:
        """Add to ``batch``, in place, what was queued while this writer waited for the lock the other
        processes' writers hold: one commit for all of it rather than one now and one next. With two API
        workers on one SQLite file each writer waits for the other's commit about every other batch; served
        batches held 6.7 entries on average, and a batch costs about 500 µs of CPU before its entries."""
        entries = sum(len(p.drafts) for p in batch)
        while entries < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _STOP:
                self._stopping = True  # the run loop returns once this batch is settled
                return
            if isinstance(item, _Pending):
                batch.append(item)
                entries += len(item.drafts)

    def _commit(self, batch: list[_Pending]) -> None:
        attempts = 5
        for _ in range(attempts):
            try:
                sealed = self._write(batch)
            except IntegrityError:
                # Another process appended first, or the number in the lock file was stale: take the log's
                # entries into the tree, then try again numbering from it.
                self._next_is_known = False
                with self._tree_lock:
                    self._catch_up()
                continue
            except DBAPIError as error:
                self._drop_writer_connection()  # perhaps broken; the next batch opens another
                _settle(batch, None, AuditUnavailable(f"audit log unavailable: {type(error.orig).__name__}"))
                return
            except Exception as error:  # a failing effect or a draft that will not seal: fail this batch only
                _settle(batch, None, AuditUnavailable(f"audit log could not record the batch: {type(error).__name__}"))
                return
            _settle(batch, sealed, None)
            return
        _settle(batch, None, AuditUnavailable(f"audit log: could not sequence after {attempts} attempts"))

    @contextlib.contextmanager
    def _writers_lock(self) -> Iterator[None]:
        """Exclusive among this file's audit writers in every process (SQLite files; a no-op elsewhere)."""
        if self._file_lock is None:
            yield
            return
        fcntl.flock(self._file_lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._file_lock, fcntl.LOCK_UN)

    def _writer_connection(self) -> Connection:
        """The writer thread's connection, opened once and kept. Checked out of the pool twice a batch (the
        catch-up read, then the write), each checkout with its return and rollback: measured with two served
        workers, the writer thread's CPU fell from 0.137-0.163 to 0.124-0.127 ms a person view once it kept
        its connection (batches of about 8 entries; a catch-up read alone took 111 µs through a pooled
        connection, 43 µs on a bare driver connection)."""
        if self._connection is None:
            connection = self.engine.connect()
            if self.engine.dialect.name == "sqlite":
                # "Durable" means surviving power loss, not only a crash: WAL commits fsync with FULL. Set once:
                # the setting belongs to this connection, which no other work borrows.
                connection.exec_driver_sql("PRAGMA synchronous=FULL")
                connection.commit()
            self._connection = connection
        return self._connection

    def _drop_writer_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close; it is dropped anyway
                connection.invalidate()
                connection.close()

    def _next_seq(self, connection: Connection, lock_file: int) -> int:
        """The number of the next entry, read under the writers' file lock (SQLite files only).

        The lock file holds it (8 bytes), written by whichever writer of any process committed last, so a
        writer need not read the other processes' entries before each batch: that read, and the page cache
        SQLite drops after another connection's commit, made every batch hold the lock longer for the other
        workers to wait on. The number is a hint, not the truth: if it is missing, or a batch numbered from it
        was refused (the contiguity trigger or the primary key: a writer died between its commit and the
        file, or the database was restored), the writer catches up from the database instead."""
        if self._next_is_known:
            held = os.pread(lock_file, 8, 0)
            if len(held) == 8:
                return int.from_bytes(held, "little")
        self._catch_up(connection=connection)
        return self.tree.size

    def _write(self, batch: list[_Pending]) -> list[SealedEntry]:
        # Serialized before the writers' lock is taken: under it, an entry only gets its number and time.
        prepared = [prepare_entry(d) for p in batch for d, _ in p.drafts]
        with self._tree_lock, self._writers_lock():
            connection = self._writer_connection()
            # Outside the write transaction on purpose: a SQLite transaction that reads before it writes cannot
            # take the write lock if anyone committed in between. Under the file lock no other audit writer
            # can append, so the number stays current until the commit.
            lock_file = self._file_lock
            base = self._next_seq(connection, lock_file) if lock_file is not None else None
            if connection.in_transaction():
                connection.rollback()  # ends the read, so the write below starts a transaction of its own
            with connection.begin():
                if self.engine.dialect.name == "postgresql":
                    # Serialises writers of all processes, then numbers after whatever they committed. An
                    # advisory lock needs no table privilege, so the app role can stay insert-only.
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCER_LOCK})
                    self._catch_up(connection=connection)
                taken = len(batch)
                self._take_waiting(batch)
                prepared += [prepare_entry(d) for p in batch[taken:] for d, _ in p.drafts]
                if base is None:
                    base = self.tree.size
                now = utc_stamp()  # one time stamp per batch: the entries were committed together
                sealed = [entry.seal(base + i, now) for i, entry in enumerate(prepared)]
                hashes = [leaf_hash(e.body) for e in sealed]
                # The driver's own executemany: the Core insert costs more than the rest of the batch.
                connection.exec_driver_sql(
                    self._insert_sql, [(e.seq, h, e.body) for e, h in zip(sealed, hashes, strict=True)]
                )
                for effect in _batch_effects(batch):
                    effect(connection)
            if lock_file is not None:
                os.pwrite(lock_file, (base + len(sealed)).to_bytes(8, "little"), 0)
                self._next_is_known = True
            # Committed: only now does the tree grow, so it never holds an entry the database lacks. A tree
            # behind the log (other processes appended since it last caught up) stays behind until a reader
            # needs it (size, proofs, checkpoints), and then reads the log in order.
            if self.tree.size == base:
                for hashed in hashes:
                    self.tree.append(hashed)
        return sealed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stop_interval.set()
            self._queue.put(_STOP)
            self._writer.join(30)
            if not self._writer.is_alive():  # the connection is the writer thread's; it has finished with it
                self._drop_writer_connection()
            if self._file_lock is not None:
                os.close(self._file_lock)

    # -- reading and proving ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        with self._tree_lock:
            self._catch_up()
            return self.tree.size

    def bodies(self, start: int, end: int) -> Iterator[bytes]:
        query = (
            select(storage.entries.c.body)
            .where(storage.entries.c.seq >= start, storage.entries.c.seq < end)
            .order_by(storage.entries.c.seq)
        )
        with self.engine.connect() as connection:
            for (body,) in connection.execution_options(yield_per=10_000).execute(query):
                yield bytes(body)

    def _tree_of(self, size: int) -> MerkleTree:
        """The tree, caught up with the log if it holds fewer than ``size`` leaves; call with the tree lock."""
        if size > self.tree.size:
            self._catch_up()
        return self.tree

    def inclusion_proof(self, seq: int, size: int) -> list[bytes]:
        with self._tree_lock:
            return self._tree_of(size).inclusion_proof(seq, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        with self._tree_lock:
            return self._tree_of(size2).consistency_proof(size1, size2)

    def root(self, size: int) -> bytes:
        with self._tree_lock:
            return self._tree_of(size).root(size)

    # -- checkpoints -----------------------------------------------------------------------------------

    def latest_checkpoint(self) -> tuple[int, str] | None:
        latest = self.latest_checkpoint_row()
        return None if latest is None else (latest.id, latest.note)

    def latest_checkpoint_row(self) -> StoredCheckpoint | None:
        columns = storage.checkpoints.c
        query = select(columns.id, columns.note, columns.timestamp_token).order_by(columns.id.desc()).limit(1)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        return StoredCheckpoint(int(row[0]), str(row[1]), None if row[2] is None else bytes(row[2]))

    def checkpoint(self, force: bool = False) -> str:
        """Sign and store a checkpoint of the current tree, if it grew since the last one (or if forced)."""
        with self._tree_lock:
            self._catch_up()
            size, root = self.tree.size, self.tree.root()
        latest = self.latest_checkpoint()
        if latest is not None and not force:
            body, _ = split_note(latest[1])
            if Checkpoint.parse(body).size == size:
                return latest[1]
        body = Checkpoint(self.origin, size, root).body()
        note = self.sign(body)
        # Rows are immutable, so the time-stamp is obtained before the checkpoint is stored.
        token = self.timestamper(body.encode()) if self.timestamper is not None else None
        with self.engine.begin() as connection:
            connection.execute(
                insert(storage.checkpoints).values(
                    size=size,
                    root=root,
                    note=note,
                    created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    timestamp_token=token,
                )
            )
        return note

    def checkpoint_sizes(self) -> list[int]:
        with self.engine.connect() as connection:
            return sorted({int(s) for (s,) in connection.execute(select(storage.checkpoints.c.size))})

    def cosignature_lines(self, checkpoint_id: int) -> list[str]:
        query = (
            select(storage.cosignatures.c.line)
            .where(storage.cosignatures.c.checkpoint_id == checkpoint_id)
            .order_by(storage.cosignatures.c.id)
        )
        with self.engine.connect() as connection:
            return [str(line) for (line,) in connection.execute(query)]

    def add_cosignature(self, checkpoint_id: int, witness: str, line: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(storage.cosignatures).values(
                    checkpoint_id=checkpoint_id,
                    witness=witness,
                    line=line,
                    created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                )
            )

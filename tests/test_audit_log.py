"""The audit log's storage, sequencer and checkpoints, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from audit.entries import Actor, Decision, EntryDraft, SealedEntry
from audit.log import AuditLog, AuditUnavailable, TamperedLog
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from audit.note import Checkpoint, NoteSigner, verify_note
from keys.sql import create_sql_engine

ORIGIN = "hub.test/audit"
DRAFT = EntryDraft(
    type="access.decision",
    actor=Actor(agency="police", principal="P-0042", role="investigator"),
    purpose="missing_person",
    case="CASE-2026-0001",
    dataset="civil_affairs.vulnerable_person",
    subject="ab" * 32,
    decision=Decision(result="permit", policy="need_to_know.v1", reasons=("assigned to case",)),
)


@pytest.fixture
def log(database_url: str) -> Iterator[AuditLog]:
    audit = AuditLog(create_sql_engine(database_url), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)
    yield audit
    audit.close()


def test_appends_are_durable_contiguous_and_canonical(log: AuditLog) -> None:
    entries = [log.append(DRAFT) for _ in range(5)]
    assert [e.seq for e in entries] == [0, 1, 2, 3, 4]
    bodies = list(log.bodies(0, 5))
    assert bodies[2] == entries[2].body == entries[2].entry().canonical()
    assert bodies[0].startswith(b'{"actor":{"agency":"police"')  # RFC 8785: sorted keys, no spaces
    assert b"\n" not in bodies[0]


def test_concurrent_appenders_get_unique_contiguous_numbers(log: AuditLog) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            seq = log.append(DRAFT).seq
            with lock:
                results.append(seq)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(800))
    assert log.size == 800


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entry SET body = body WHERE seq = 1",
        "DELETE FROM audit_entry WHERE seq = 2",
        "DELETE FROM audit_entry",
        "INSERT INTO audit_entry (seq, leaf_hash, body) VALUES (7, '\\x00', '\\x00')",
        "UPDATE audit_checkpoint SET size = 0",
        "DELETE FROM audit_checkpoint",
    ],
)
def test_tampering_statements_fail(log: AuditLog, statement: str) -> None:
    for _ in range(3):
        log.append(DRAFT)
    log.checkpoint()
    if log.engine.dialect.name == "sqlite":
        statement = statement.replace("'\\x00'", "x'00'")
    with pytest.raises(DBAPIError, match=r"append-only|contiguous"), log.engine.begin() as connection:
        connection.execute(text(statement))
    assert log.size == 3


def test_postgres_triggers_survive_replica_mode_and_truncate(postgres_url: str) -> None:
    audit = AuditLog(create_sql_engine(postgres_url), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)
    audit.append(DRAFT)
    for statement in ("TRUNCATE audit_entry", "TRUNCATE audit_checkpoint"):
        with pytest.raises(DBAPIError, match="append-only"), audit.engine.begin() as connection:
            connection.execute(text(statement))
    with pytest.raises(DBAPIError, match="append-only"), audit.engine.begin() as connection:
        connection.execute(text("SET session_replication_role = replica"))
        connection.execute(text("DELETE FROM audit_entry"))
    audit.close()


def test_checkpoints_are_signed_and_proofs_verify(log: AuditLog) -> None:
    for _ in range(10):
        log.append(DRAFT)
    first = Checkpoint.parse(verify_note(log.checkpoint(), log.signer.verifier))
    assert log.checkpoint() == log.checkpoint()  # no new checkpoint while the tree did not grow
    for _ in range(7):
        log.append(DRAFT)
    second = Checkpoint.parse(verify_note(log.checkpoint(), log.signer.verifier))
    assert (first.size, second.size, first.origin) == (10, 17, ORIGIN)
    verify_consistency(10, 17, log.consistency_proof(10, 17), first.root, second.root)
    body = next(iter(log.bodies(4, 5)))
    verify_inclusion(4, 17, leaf_hash(body), log.inclusion_proof(4, 17), second.root)
    assert log.checkpoint_sizes() == [10, 17]


def test_a_second_process_continues_the_same_log(log: AuditLog) -> None:
    log.append(DRAFT)
    other = AuditLog(log.engine, log.signer, ORIGIN)
    assert other.append(DRAFT).seq == 1
    assert log.append(DRAFT).seq == 2  # catches up on the other writer's entry and retries
    other.close()


def test_reopening_detects_a_body_changed_behind_the_triggers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    audit = AuditLog(create_sql_engine(url), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)
    for _ in range(3):
        audit.append(DRAFT)
    audit.close()
    engine = create_sql_engine(url)
    with engine.begin() as connection:  # an operator with file access drops the trigger first
        connection.execute(text("DROP TRIGGER audit_entry_no_update"))
        connection.execute(text("UPDATE audit_entry SET body = x'7b7d' WHERE seq = 1"))
    with pytest.raises(TamperedLog, match="audit_entry 1: body does not match"):
        AuditLog(engine, audit.signer, ORIGIN)


def test_unavailable_database_fails_the_append(tmp_path: Path) -> None:
    from audit.log import AuditUnavailable

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    audit = AuditLog(create_sql_engine(url), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)
    with audit.engine.begin() as connection:
        connection.execute(text("DROP TABLE audit_entry"))
    with pytest.raises(AuditUnavailable):
        audit.append(DRAFT)
    audit.close()


def test_a_broken_writer_connection_fails_its_batch_and_the_next_batch_reconnects(log: AuditLog) -> None:
    """The writer keeps one connection between batches; once it breaks (a restarted server, say), that batch
    fails closed and the writer does not keep failing on the dead connection."""
    first = log.append(DRAFT)
    kept = log._connection
    assert kept is not None
    kept.connection.dbapi_connection.close()  # type: ignore[union-attr]  # the driver's connection, under the writer
    with pytest.raises(AuditUnavailable):
        log.append(DRAFT)
    second = log.append(DRAFT)
    assert log._connection is not kept
    assert (first.seq, second.seq) == (0, 1)
    assert [json.loads(b)["seq"] for b in log.bodies(0, 2)] == [0, 1]


def test_entries_refuse_personal_data_shapes() -> None:
    with pytest.raises(ValueError, match="subject"):
        EntryDraft(type="admin", actor=DRAFT.actor, subject="11010519491231002X")
    with pytest.raises(ValueError, match="reserved keys"):
        EntryDraft(type="admin", actor=DRAFT.actor, detail={"seq": 1})


def test_postgres_insert_only_role_from_the_docs(postgres_url: str) -> None:
    """The GRANTs in docs/audit.md are enough to append, and refuse everything else."""
    from sqlalchemy.engine import make_url

    owner = create_sql_engine(postgres_url)
    AuditLog(owner, NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN).close()  # the owner installs
    with owner.begin() as connection:
        connection.execute(text("CREATE ROLE hub_app_test LOGIN"))
        connection.execute(
            text("GRANT SELECT, INSERT ON audit_entry, audit_checkpoint, audit_cosignature TO hub_app_test")
        )
        connection.execute(
            text("GRANT USAGE ON SEQUENCE audit_checkpoint_id_seq, audit_cosignature_id_seq TO hub_app_test")
        )
    app_url = make_url(postgres_url).set(username="hub_app_test").render_as_string(hide_password=False)
    app = AuditLog(create_sql_engine(app_url), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)
    try:
        assert [app.append(DRAFT).seq for _ in range(3)] == [0, 1, 2]
        app.checkpoint()
        for statement in ("UPDATE audit_entry SET body = body", "DELETE FROM audit_entry", "TRUNCATE audit_entry"):
            with pytest.raises(DBAPIError, match=r"permission denied|append-only"), app.engine.begin() as connection:
                connection.execute(text(statement))
    finally:
        app.close()
        app.engine.dispose()
        with owner.begin() as connection:
            connection.execute(text("DROP OWNED BY hub_app_test"))
            connection.execute(text("DROP ROLE hub_app_test"))


def test_an_appends_effect_commits_with_its_entry_or_not_at_all(database_url: str) -> None:
    engine = create_sql_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE counter (name VARCHAR(16) PRIMARY KEY, n BIGINT NOT NULL)")
        connection.exec_driver_sql("INSERT INTO counter (name, n) VALUES ('uses', 0)")

    def count(connection: Connection) -> None:
        connection.execute(text("UPDATE counter SET n = n + 1 WHERE name = 'uses'"))

    def count_then_fail(connection: Connection) -> None:
        count(connection)
        raise RuntimeError("effect failed after writing")

    def uses() -> int:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT n FROM counter")).scalar_one())

    log = AuditLog(engine, NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)
    try:
        assert log.append(DRAFT, effect=count).seq == 0
        assert log.append(DRAFT).seq == 1  # no effect: nothing counted
        assert uses() == 1
        with pytest.raises(AuditUnavailable):
            log.append(DRAFT, effect=count_then_fail)
        assert uses() == 1 and log.size == 2  # neither the entry nor the effect's write

        async def together() -> list[int]:
            sealed = await asyncio.gather(*(log.append_async(DRAFT, effect=count) for _ in range(20)))
            return [e.seq for e in sealed]

        assert sorted(asyncio.run(together())) == list(range(2, 22))
        assert uses() == 21  # one effect per append, whatever the batches were

        async def all_at_once() -> list[int]:  # a release's decisions and itself: in order, effects run
            return [e.seq for e in await log.append_all_async([(DRAFT, None), (DRAFT, None), (DRAFT, count)])]

        assert asyncio.run(all_at_once()) == [22, 23, 24]
        assert uses() == 22

        async def one_fails() -> None:
            await log.append_all_async([(DRAFT, count), (DRAFT, count_then_fail)])

        with pytest.raises(AuditUnavailable):  # the whole release is refused if any of its entries is
            asyncio.run(one_fails())

        async def closed_meanwhile() -> None:  # the log closes before the appends reach its queue
            appending = asyncio.ensure_future(log.append_all_async([(DRAFT, None)]))
            await asyncio.sleep(0)  # the call has run up to its await; the queueing waits for the next turn
            log._closed = True
            try:
                await appending
            finally:
                log._closed = False

        with pytest.raises(AuditUnavailable, match="closed"):
            asyncio.run(closed_meanwhile())
        size = log.size

        @dataclass(frozen=True)
        class Add:  # combinable: a batch's Adds run as one, adding their sum
            n: int
            runs: list[int]

            def __call__(self, connection: Connection) -> None:
                self.runs.append(self.n)
                connection.execute(text("UPDATE counter SET n = n + :n WHERE name = 'uses'"), {"n": self.n})

            @classmethod
            def combine(cls, adds: Sequence[Add]) -> Add:
                return cls(sum(a.n for a in adds), adds[0].runs)

        runs: list[int] = []

        async def combined() -> list[int]:
            sealed = await asyncio.gather(*(log.append_async(DRAFT, effect=Add(2, runs)) for _ in range(20)))
            return [e.seq for e in sealed]

        assert sorted(asyncio.run(combined())) == list(range(size, size + 20))
        assert uses() == 22 + (size - 25) + 40  # every Add counted once (and what survived one_fails)
        # One run a batch (its entries share one time stamp), adding that batch's Adds together.
        batches = Counter(json.loads(body)["time"] for body in log.bodies(size, size + 20))
        assert sorted(runs) == sorted(2 * n for n in batches.values())
    finally:
        log.close()


def _append_from_a_process(url: str, seed: bytes, count: int) -> list[int]:
    """In a separate process: append ``count`` entries from 8 threads at once, return their numbers."""
    from concurrent.futures import ThreadPoolExecutor

    audit = AuditLog(create_sql_engine(url), NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(seed)), ORIGIN)
    try:
        with ThreadPoolExecutor(8) as pool:
            return [e.seq for e in pool.map(lambda _: audit.append(DRAFT), range(count))]
    finally:
        audit.close()


def test_two_processes_appending_at_once_share_one_contiguous_log(database_url: str) -> None:
    import multiprocessing

    seed = bytes(range(32))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_append_from_a_process, [(database_url, seed, 300), (database_url, seed, 300)])
    assert sorted(results[0] + results[1]) == list(range(600))
    reopened = AuditLog(create_sql_engine(database_url), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)
    try:
        assert reopened.size == 600  # opening re-verifies every leaf hash in order
    finally:
        reopened.close()


def test_sqlite_writers_wait_on_the_lock_file_not_on_sqlites_busy_handler(tmp_path: Path) -> None:
    import fcntl
    import os

    database = tmp_path / "audit.db"
    audit = AuditLog(
        create_sql_engine(f"sqlite:///{database}"), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN
    )
    try:
        other_writer = os.open(f"{database}.audit-lock", os.O_RDWR)
        fcntl.flock(other_writer, fcntl.LOCK_EX)  # another process's writer holds the lock
        pending = audit.submit(DRAFT)
        time.sleep(0.3)
        assert not pending.done()  # it waits for the lock...
        fcntl.flock(other_writer, fcntl.LOCK_UN)
        os.close(other_writer)
        assert pending.result(timeout=5).seq == 0  # ...and goes on as soon as it is released
    finally:
        audit.close()


def test_what_queues_while_a_writer_waits_for_the_lock_joins_its_batch(tmp_path: Path) -> None:
    """While another process's writer holds the lock, this writer's batch waits; what is appended meanwhile
    is committed in the same batch (one time stamp) as soon as the lock is free, not in a batch of its own."""
    import fcntl
    import os

    database = tmp_path / "audit.db"
    audit = AuditLog(
        create_sql_engine(f"sqlite:///{database}"), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN
    )
    try:
        other_writer = os.open(f"{database}.audit-lock", os.O_RDWR)
        fcntl.flock(other_writer, fcntl.LOCK_EX)
        first = audit.submit(DRAFT)
        time.sleep(0.3)  # the writer has taken ``first`` and waits for the lock
        later = [audit.submit(DRAFT.model_copy(update={"request_id": f"r{i}"})) for i in range(5)]
        time.sleep(0.1)
        assert not first.done() and not any(f.done() for f in later)
        fcntl.flock(other_writer, fcntl.LOCK_UN)
        os.close(other_writer)
        sealed = [first.result(timeout=5), *(f.result(timeout=5) for f in later)]
        assert [e.seq for e in sealed] == [0, 1, 2, 3, 4, 5]
        assert len({e.time for e in sealed}) == 1  # one batch, one commit
        assert audit.size == 6 and list(audit.bodies(0, 6)) == [e.body for e in sealed]
    finally:
        audit.close()


def test_the_entries_of_one_append_all_are_consecutive_and_in_order_among_concurrent_ones(tmp_path: Path) -> None:
    """A release's decisions and the release itself travel as one queued item: whatever else is appended at
    the same time, they get consecutive numbers in the order given, and one batch commits them all."""
    log = AuditLog(
        create_sql_engine(f"sqlite:///{tmp_path / 'audit.db'}"),
        NoteSigner(ORIGIN, Ed25519PrivateKey.generate()),
        ORIGIN,
    )

    def drafts(release: int, count: int) -> list[tuple[EntryDraft, None]]:
        return [(DRAFT.model_copy(update={"request_id": f"r{release}-{i}"}), None) for i in range(count)]

    async def releases() -> list[list[SealedEntry]]:
        together = [asyncio.ensure_future(log.append_all_async(drafts(n, 1 + n % 4))) for n in range(30)]
        await asyncio.gather(*(log.append_async(DRAFT) for _ in range(10)))  # others, appended meanwhile
        return list(await asyncio.gather(*together))

    try:
        for n, sealed in enumerate(asyncio.run(releases())):
            seqs = [e.seq for e in sealed]
            assert seqs == list(range(seqs[0], seqs[0] + 1 + n % 4))
            assert [json.loads(e.body)["request_id"] for e in sealed] == [f"r{n}-{i}" for i in range(1 + n % 4)]
            assert len({e.time for e in sealed}) == 1  # committed in one batch
    finally:
        log.close()


@pytest.mark.parametrize("held", [b"", b"\x00" * 8, (1000).to_bytes(8, "little"), b"\xff\x01"])
def test_a_wrong_number_in_the_lock_file_costs_a_retry_never_a_gap(tmp_path: Path, held: bytes) -> None:
    """SQLite writers number a batch from the lock file, not from a read of the log: a number that is missing,
    stale (a writer died between its commit and the file), ahead or torn is refused by the database and the
    writer numbers from the log instead."""
    import os

    database = tmp_path / "audit.db"
    engine = create_sql_engine(f"sqlite:///{database}")
    audit = AuditLog(engine, NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)
    try:
        assert [audit.append(DRAFT).seq for _ in range(3)] == [0, 1, 2]
        lock = os.open(f"{database}.audit-lock", os.O_RDWR)
        try:
            assert int.from_bytes(os.pread(lock, 8, 0), "little") == 3  # the next number, for any process
            os.ftruncate(lock, 0)
            os.pwrite(lock, held, 0)
        finally:
            os.close(lock)
        assert [audit.append(DRAFT).seq for _ in range(2)] == [3, 4]
        with engine.connect() as connection:
            seqs = connection.execute(text("SELECT seq FROM audit_entry ORDER BY seq")).scalars().all()
        assert seqs == [0, 1, 2, 3, 4]
    finally:
        audit.close()


def test_a_tree_behind_the_log_catches_up_before_it_proves(tmp_path: Path) -> None:
    """Two writers on one file take turns; neither reads the other's entries before its batches, yet each
    proves inclusion and consistency over the whole log, the other's entries included."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    key = Ed25519PrivateKey.generate()
    first = AuditLog(create_sql_engine(url), NoteSigner(ORIGIN, key), ORIGIN)
    second = AuditLog(create_sql_engine(url), NoteSigner(ORIGIN, key), ORIGIN)
    try:
        written = [(first if i % 2 else second).append(DRAFT) for i in range(9)]
        assert [e.seq for e in written] == list(range(9))
        for log in (first, second):
            root = log.root(9)
            for entry in written:  # each raises ProofError unless the proof holds
                verify_inclusion(entry.seq, 9, leaf_hash(entry.body), log.inclusion_proof(entry.seq, 9), root)
            verify_consistency(4, 9, log.consistency_proof(4, 9), log.root(4), root)
        assert first.size == second.size == 9
    finally:
        first.close()
        second.close()

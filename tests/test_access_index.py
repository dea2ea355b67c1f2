"""The residents' access index: derived from the log's decisions, read on before every lookup, exactly once
from any number of processes, and older indexes brought up to date."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import inspect, text

from audit.entries import Actor, Decision, EntryDraft, QueryDecision
from audit.log import AuditLog
from audit.note import NoteSigner
from hub.store import create_store_engine, init_access_schema
from hub.store.access_index import AccessIndex, index_database_url
from hub.store.tables import AccessIndexRow

ACTOR = Actor(agency="police", principal="P-0042", role="investigator")
SUBJECT = "cd" * 32
ORIGIN = "hub.test/access-index"


@pytest.fixture
def log(database_url: str) -> Iterator[AuditLog]:
    audit = AuditLog(create_store_engine(database_url), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)
    yield audit
    audit.close()


def decision(records: int = 1, **changes: object) -> EntryDraft:
    draft = EntryDraft(
        type="access.decision",
        actor=ACTOR,
        purpose="missing_person",
        dataset="health.visit",
        subject=SUBJECT,
        decision=Decision(result="permit", policy="need_to_know.v1", obligations=("post_hoc_review",)),
        detail={"break_glass": True, "records": records},
    )
    return draft.model_copy(update=changes)


def row_of(row: AccessIndexRow) -> dict[str, object]:
    return row.model_dump()


def test_only_decisions_about_a_subject_are_indexed_with_their_record_count(log: AuditLog) -> None:
    drafts = [
        decision(records=4),
        decision(subject=None),  # a decision about no one in particular
        EntryDraft(type="data.release", actor=ACTOR, subject=SUBJECT),  # a release that holds no decision
        decision(detail={}),  # an older entry without a count covers one record
    ]
    sealed = [log.submit(d).result(10) for d in drafts]
    first = {
        "seq": 0,
        "item": 0,
        "subject": SUBJECT,
        "at": int(datetime.fromisoformat(sealed[0].time).timestamp()),
        "agency": "police",
        "purpose": "missing_person",
        "dataset": "health.visit",
        "case_id": None,
        "result": "permit",
        "break_glass": True,
        "records": 4,
    }
    last = {**first, "seq": 3, "at": int(datetime.fromisoformat(sealed[3].time).timestamp())}
    index = AccessIndex(log.engine)
    assert [row_of(r) for r in index.rows(SUBJECT)] == [first, {**last, "break_glass": False, "records": 1}]
    index.close()


def test_a_querys_decisions_are_indexed_each_as_an_item_of_its_entry(log: AuditLog) -> None:
    other = "ef" * 32

    def item(dataset: str, result: str, records: int, subject: str | None = SUBJECT, **more: object) -> QueryDecision:
        return QueryDecision.model_validate(
            {"dataset": dataset, "policy": "need_to_know.v1", "result": result, "records": records, "subject": subject}
            | more
        )

    query = EntryDraft(
        type="data.release",
        actor=ACTOR,
        purpose="missing_person",
        case="CASE-2026-0001",
        subject=SUBJECT,
        decisions=(
            item("health.visit", "deny", 3),
            item("civil_affairs.vulnerable_person", "permit", 1, obligations=("post_hoc_review",)),
            item("health.visit", "permit", 2, subject=other),  # a feed page decides about several subjects
            item("police.incident", "deny", 1, subject=None),  # about no one in particular: not indexed
        ),
    )
    log.append(decision())
    sealed = log.append(query)
    index = AccessIndex(log.engine)
    rows = [
        (r.seq, r.item, r.subject, r.dataset, r.result, r.break_glass, r.records, r.case_id, r.purpose, r.at)
        for subject in (SUBJECT, other)
        for r in index.rows(subject)
        if r.seq == sealed.seq
    ]
    at = int(datetime.fromisoformat(sealed.time).timestamp())
    assert rows == [
        (1, 0, SUBJECT, "health.visit", "deny", False, 3, "CASE-2026-0001", "missing_person", at),
        (1, 1, SUBJECT, "civil_affairs.vulnerable_person", "permit", True, 1, "CASE-2026-0001", "missing_person", at),
        (1, 2, other, "health.visit", "permit", False, 2, "CASE-2026-0001", "missing_person", at),
    ]
    index.close()


def test_an_index_keyed_by_entry_alone_is_rekeyed_by_item_keeping_its_rows(log: AuditLog) -> None:
    """Indexes from before a query's decisions shared one entry keyed access rows by ``seq``: rebuilt, each row
    becomes item 0 of its entry, and an entry's several decisions then fit. Such an index was written in its
    entries' transactions, so it reads on after its highest ``seq``."""
    engine = log.engine
    with engine.begin() as connection:  # the table as those logs have it
        connection.exec_driver_sql(
            "CREATE TABLE access_index (seq INTEGER PRIMARY KEY, subject VARCHAR(64) NOT NULL, at INTEGER NOT NULL,"
            " agency VARCHAR(64) NOT NULL, purpose VARCHAR(64) NOT NULL, dataset VARCHAR(128) NOT NULL,"
            " case_id VARCHAR(32), result VARCHAR(8) NOT NULL, break_glass BOOLEAN NOT NULL,"
            " records INTEGER NOT NULL DEFAULT 1)"
        )
        connection.exec_driver_sql("CREATE INDEX ix_access_index_subject ON access_index (subject)")
        connection.exec_driver_sql(
            f"INSERT INTO access_index VALUES (3, '{SUBJECT}', 0, 'police', 'p', 'd', NULL, 'deny', false, 2)"  # noqa: S608
        )
    for _ in range(4):  # entries 0-3, which that index held already
        log.append(decision(purpose="old"))
    index = AccessIndex(engine, engine)
    init_access_schema(engine)  # again: finds the new key and the mark, and leaves both alone
    assert inspect(engine).get_pk_constraint("access_index")["constrained_columns"] == ["seq", "item"]
    query = EntryDraft(
        type="data.release",
        actor=ACTOR,
        subject=SUBJECT,
        decisions=tuple(
            QueryDecision(dataset=d, policy="p", result="deny", records=1, subject=SUBJECT) for d in ("a", "b")
        ),
    )
    assert log.append(query).seq == 4
    assert sorted((r.seq, r.item, r.dataset, r.records) for r in index.rows(SUBJECT)) == [
        (3, 0, "d", 2),
        (4, 0, "a", 1),
        (4, 1, "b", 1),
    ]
    index.close()


def test_a_store_from_before_the_record_count_gains_the_column(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE access_index (seq INTEGER PRIMARY KEY, subject VARCHAR(64) NOT NULL, at INTEGER NOT NULL,"
            " agency VARCHAR(64) NOT NULL, purpose VARCHAR(64) NOT NULL, dataset VARCHAR(128) NOT NULL,"
            " case_id VARCHAR(32), result VARCHAR(8) NOT NULL, break_glass BOOLEAN NOT NULL)"
        )
        connection.exec_driver_sql("INSERT INTO access_index VALUES (1, 'x', 0, 'police', 'p', 'd', NULL, 'deny', 0)")
    init_access_schema(engine)
    init_access_schema(engine)  # twice: the second finds the column and leaves the table alone
    assert "records" in {c["name"] for c in inspect(engine).get_columns("access_index")}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT records FROM access_index")).scalar_one() == 1


def test_a_lookup_reads_on_to_the_logs_end_and_indexes_each_entry_once(log: AuditLog) -> None:
    index = AccessIndex(log.engine, chunk=2)  # two entries a transaction, so reading on takes several
    assert index.rows(SUBJECT) == []
    log.append(decision(records=3))
    log.append(EntryDraft(type="key.op", actor=ACTOR, detail={"operation": "rotate"}))  # no decision: no row
    log.append(decision(case="CASE-2026-0001", detail={"records": 1}))
    assert [(r.seq, r.subject, r.records, r.case_id, r.break_glass, r.result) for r in index.rows(SUBJECT)] == [
        (0, SUBJECT, 3, None, True, "permit"),
        (2, SUBJECT, 1, "CASE-2026-0001", False, "permit"),
    ]
    assert index.catch_up() == 0  # up to date: nothing read again
    other = AccessIndex(log.engine)  # another process's index of the same log: the same rows, none twice
    log.append(decision(records=2))
    assert [r.seq for r in other.rows(SUBJECT)] == [0, 2, 3]
    assert [r.seq for r in index.rows(SUBJECT)] == [0, 2, 3]
    other.close()
    index.close()


def test_processes_reading_on_at_once_index_every_entry_once(log: AuditLog) -> None:
    for i in range(60):
        log.append(decision(records=i + 1))
    indexes = [AccessIndex(log.engine, chunk=7) for _ in range(3)]
    errors: list[BaseException] = []

    def read_on(index: AccessIndex) -> None:
        try:
            index.catch_up()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=read_on, args=(index,)) for index in indexes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [(r.seq, r.records) for r in indexes[0].rows(SUBJECT)] == [(i, i + 1) for i in range(60)]
    with indexes[0].engine.connect() as connection:
        assert connection.execute(text("SELECT next_seq FROM access_index_mark")).scalar_one() == 60
    for index in indexes:
        index.close()


def test_a_sqlite_log_file_keeps_its_index_in_a_file_of_its_own(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    assert index_database_url(engine) == f"sqlite:///{tmp_path / 'audit-access.db'}"
    index = AccessIndex(engine)
    assert "access_index" in inspect(index.engine).get_table_names()
    assert "access_index" not in inspect(engine).get_table_names()  # reading on never takes the log's write lock
    index.close()
    assert index_database_url(create_store_engine("sqlite://")) is None  # an in-memory log: the same database


def test_following_reads_on_in_the_background(log: AuditLog) -> None:
    index = AccessIndex(log.engine)
    index.follow(0.05)
    log.append(decision())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with index.engine.connect() as connection:
            if connection.execute(text("SELECT next_seq FROM access_index_mark")).scalar_one() == 1:
                break
        time.sleep(0.02)  # a poll, not a spin: the follower needs the CPU this loop would take
    else:
        pytest.fail("the follower did not read on")
    index.close()

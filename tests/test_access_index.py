"""The residents' access index: derived from decision entries, and added to stores created before it counted records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import inspect, text

from audit.entries import Actor, Decision, EntryDraft, QueryDecision, seal_entry
from hub.store import create_store_engine, init_audit_schema
from hub.store.access_index import access_rows

ACTOR = Actor(agency="police", principal="P-0042", role="investigator")
SUBJECT = "cd" * 32


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


def test_only_decisions_about_a_subject_are_indexed_with_their_record_count() -> None:
    when = datetime(2026, 11, 24, 8, 30, 5, 250_000, tzinfo=UTC)
    drafts = [
        decision(records=4),
        decision(subject=None),  # a decision about no one in particular
        EntryDraft(type="data.release", actor=ACTOR, subject=SUBJECT),  # a release that holds no decision
        decision(detail={}),  # an older entry without a count covers one record
    ]
    pairs = [(d, seal_entry(d, 40 + i, when)) for i, d in enumerate(drafts)]
    rows = [row._asdict() for row in access_rows(pairs)]
    assert rows == [
        {
            "seq": 40,
            "item": 0,
            "subject": SUBJECT,
            "at": int(when.timestamp()),
            "agency": "police",
            "purpose": "missing_person",
            "dataset": "health.visit",
            "case_id": None,
            "result": "permit",
            "break_glass": True,
            "records": 4,
        },
        {**rows[0], "seq": 43, "break_glass": False, "records": 1},
    ]


def test_a_querys_decisions_are_indexed_each_as_an_item_of_its_entry() -> None:
    when = datetime(2026, 12, 6, 9, 0, 0, tzinfo=UTC)
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
    rows = [
        (r.seq, r.item, r.subject, r.dataset, r.result, r.break_glass, r.records, r.case_id)
        for r in access_rows([(query, seal_entry(query, 7, when))])
    ]
    assert rows == [
        (7, 0, SUBJECT, "health.visit", "deny", False, 3, "CASE-2026-0001"),
        (7, 1, SUBJECT, "civil_affairs.vulnerable_person", "permit", True, 1, "CASE-2026-0001"),
        (7, 2, other, "health.visit", "permit", False, 2, "CASE-2026-0001"),
    ]


def test_a_store_keyed_by_entry_alone_is_rekeyed_by_item_keeping_its_rows(database_url: str) -> None:
    """Stores from before a query's decisions shared one entry keyed access rows by ``seq``: rebuilt, each row
    becomes item 0 of its entry, and an entry's several decisions then fit."""
    from sqlmodel import Session, select

    from hub.store.access_index import index_accesses
    from hub.store.tables import AccessIndexRow

    engine = create_store_engine(database_url)
    init_audit_schema(engine)
    with engine.begin() as connection:  # the table as those stores have it
        connection.exec_driver_sql("DROP TABLE access_index")
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
    init_audit_schema(engine)
    init_audit_schema(engine)  # twice: the second finds the new key and leaves the table alone
    assert inspect(engine).get_pk_constraint("access_index")["constrained_columns"] == ["seq", "item"]
    query = EntryDraft(
        type="data.release",
        actor=ACTOR,
        subject=SUBJECT,
        decisions=tuple(
            QueryDecision(dataset=d, policy="p", result="deny", records=1, subject=SUBJECT) for d in ("a", "b")
        ),
    )
    with engine.begin() as connection:
        index_accesses(connection, [(query, seal_entry(query, 4))])
    with Session(engine) as session:
        rows = session.exec(select(AccessIndexRow).where(AccessIndexRow.subject == SUBJECT)).all()
    assert sorted((r.seq, r.item, r.dataset, r.records) for r in rows) == [
        (3, 0, "d", 2),
        (4, 0, "a", 1),
        (4, 1, "b", 1),
    ]


def test_a_store_from_before_the_record_count_gains_the_column(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE access_index (seq INTEGER PRIMARY KEY, subject VARCHAR(64) NOT NULL, at INTEGER NOT NULL,"
            " agency VARCHAR(64) NOT NULL, purpose VARCHAR(64) NOT NULL, dataset VARCHAR(128) NOT NULL,"
            " case_id VARCHAR(32), result VARCHAR(8) NOT NULL, break_glass BOOLEAN NOT NULL)"
        )
        connection.exec_driver_sql("INSERT INTO access_index VALUES (1, 'x', 0, 'police', 'p', 'd', NULL, 'deny', 0)")
    init_audit_schema(engine)
    init_audit_schema(engine)  # twice: the second finds the column and leaves the table alone
    assert "records" in {c["name"] for c in inspect(engine).get_columns("access_index")}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT records FROM access_index")).scalar_one() == 1


def test_the_indexer_writes_rows_the_resident_view_reads(database_url: str) -> None:
    from sqlmodel import Session, select

    from hub.store.access_index import index_accesses
    from hub.store.tables import AccessIndexRow

    engine = create_store_engine(database_url)
    init_audit_schema(engine)
    drafts = [decision(records=3), decision(case="CASE-2026-0001", detail={"records": 1})]
    pairs = [(d, seal_entry(d, 7 + i)) for i, d in enumerate(drafts)]
    with engine.begin() as connection:
        index_accesses(connection, pairs)
    with Session(engine) as session:
        rows = session.exec(select(AccessIndexRow).order_by(AccessIndexRow.seq)).all()  # type: ignore[arg-type]
    assert [(r.seq, r.subject, r.records, r.case_id, r.break_glass, r.result) for r in rows] == [
        (7, SUBJECT, 3, None, True, "permit"),
        (8, SUBJECT, 1, "CASE-2026-0001", False, "permit"),
    ]

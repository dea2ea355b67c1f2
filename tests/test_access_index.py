"""The residents' access index: derived from decision entries, and added to stores created before it counted records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import inspect, text

from audit.entries import Actor, Decision, EntryDraft, seal_entry
from hub.store import create_store_engine, init_schema
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
        EntryDraft(type="data.release", actor=ACTOR, subject=SUBJECT),  # not a decision
        decision(detail={}),  # an older entry without a count covers one record
    ]
    pairs = [(d, seal_entry(d, 40 + i, when)) for i, d in enumerate(drafts)]
    rows = [row._asdict() for row in access_rows(pairs)]
    assert rows == [
        {
            "seq": 40,
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


def test_a_store_from_before_the_record_count_gains_the_column(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE access_index (seq INTEGER PRIMARY KEY, subject VARCHAR(64) NOT NULL, at INTEGER NOT NULL,"
            " agency VARCHAR(64) NOT NULL, purpose VARCHAR(64) NOT NULL, dataset VARCHAR(128) NOT NULL,"
            " case_id VARCHAR(32), result VARCHAR(8) NOT NULL, break_glass BOOLEAN NOT NULL)"
        )
        connection.exec_driver_sql("INSERT INTO access_index VALUES (1, 'x', 0, 'police', 'p', 'd', NULL, 'deny', 0)")
    init_schema(engine)
    init_schema(engine)  # twice: the second finds the column and leaves the table alone
    assert "records" in {c["name"] for c in inspect(engine).get_columns("access_index")}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT records FROM access_index")).scalar_one() == 1


def test_the_indexer_writes_rows_the_resident_view_reads(database_url: str) -> None:
    from sqlmodel import Session, select

    from hub.store.access_index import index_accesses
    from hub.store.tables import AccessIndexRow

    engine = create_store_engine(database_url)
    init_schema(engine)
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

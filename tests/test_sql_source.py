"""The SQL reader: batches are planned by their last row and read where they are prepared."""

from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path

import pytest

from connectors.sources.base import Batch
from connectors.sources.sql import SqlRange, SqlSource
from tests.support import reader_config


def _database(tmp_path: Path, rows: int) -> str:
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE visit (visit_no TEXT PRIMARY KEY, name TEXT, update_time TEXT NOT NULL)")
        # Several rows share a watermark, so the key decides their order and the batches' edges.
        db.executemany(
            "INSERT INTO visit VALUES (?, ?, ?)",
            [(f"v{n:03d}", f"name {n}", f"2026-11-{1 + n // 4:02d} 08:00:00") for n in range(rows)],
        )
    return f"sqlite:///{path}"


def _source(url: str, batch_size: int) -> SqlSource:
    return SqlSource(
        reader_config(
            "t.visit", "visit_no", kind="sql", url=url, table="visit", watermark="update_time", batch_size=batch_size
        )
    )


def _keys(batches: list[Batch]) -> list[list[str]]:
    return [[row.values["visit_no"] for row in batch.rows] for batch in batches]


@pytest.mark.parametrize(("rows", "batch_size", "sizes"), [(10, 4, [4, 4, 2]), (8, 4, [4, 4]), (3, 4, [3]), (0, 4, [])])
def test_batches_cover_every_row_once_in_order(tmp_path: Path, rows: int, batch_size: int, sizes: list[int]) -> None:
    batches = list(_source(_database(tmp_path, rows), batch_size).batches({}))
    assert all(isinstance(b.source, SqlRange) for b in batches)  # planned only: nothing read yet
    keys = _keys(batches)
    assert [len(k) for k in keys] == sizes
    assert [k for batch in keys for k in batch] == [f"v{n:03d}" for n in range(rows)]
    for batch in batches:
        last = batch.rows[-1]
        assert batch.checkpoint == {"watermark": last.values["update_time"], "key": last.values["visit_no"]}
        assert last.position == f"visit.visit_no={last.values['visit_no']}"
        assert last.version_source == last.values["update_time"]


def test_a_resumed_pull_starts_strictly_after_the_checkpoint(tmp_path: Path) -> None:
    source = _source(_database(tmp_path, 10), 4)
    first = next(source.batches({}))
    rest = list(source.batches(first.checkpoint))
    assert [k for batch in _keys(rest) for k in batch] == [f"v{n:03d}" for n in range(4, 10)]


def test_rows_that_change_between_planning_and_reading_are_not_lost(tmp_path: Path) -> None:
    url = _database(tmp_path, 8)
    batches = _source(url, 4).batches({})
    first = next(batches)  # planned: v000-v003
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE visit SET update_time = '2026-12-31 00:00:00' WHERE visit_no = 'v001'")  # moves on
        db.execute("INSERT INTO visit VALUES ('v000a', 'late', '2026-11-01 08:00:00')")  # inside the range
    assert _keys([first]) == [["v000", "v000a", "v002", "v003"]]
    later = [k for batch in _keys(list(batches)) for k in batch]
    assert later == ["v004", "v005", "v006", "v007", "v001"]  # the updated row, read again at its new place


def test_a_planned_batch_is_read_the_same_in_another_process(tmp_path: Path) -> None:
    batch = next(_source(_database(tmp_path, 10), 4).batches({}))
    assert isinstance(batch.source, SqlRange)
    wire = pickle.dumps(batch.source)
    assert len(wire) < 400  # a key range, not rows
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # a forked process reads with its own engine, never the parent's pooled connection
        os.close(reader)
        os.write(writer, pickle.dumps(pickle.loads(wire).rows()))  # noqa: S301 - our own bytes
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as handle:
        read_there = pickle.loads(handle.read())  # noqa: S301 - our own bytes
    os.waitpid(child, 0)
    assert read_there == batch.rows


def test_a_postgresql_source_with_a_timestamp_watermark_resumes_from_a_json_checkpoint(postgres_url: str) -> None:
    import json

    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE visit (visit_no TEXT PRIMARY KEY, update_time TIMESTAMPTZ)"))
        connection.execute(text("CREATE INDEX visit_watermark ON visit (update_time, visit_no)"))
        connection.execute(
            text("INSERT INTO visit VALUES (:k, :t)"),
            [{"k": f"v{n:03d}", "t": f"2026-11-{1 + n // 3:02d}T08:00:00+08:00"} for n in range(10)]
            + [{"k": "u000", "t": None}],  # no watermark: out of every pull's reach, so handed on as rejected
        )
    engine.dispose()
    source = _source(postgres_url, 4)
    first = next(source.batches({}))
    # Checkpoints are stored as JSON, so a resumed pull compares the text of a time with the column.
    resumed = json.loads(json.dumps(first.checkpoint, default=str))
    assert isinstance(resumed["watermark"], str)
    rest = list(source.batches(resumed))
    assert [k for batch in _keys([first, *rest[:2]]) for k in batch] == [f"v{n:03d}" for n in range(10)]
    assert [len(b.rows) for b in rest] == [4, 2, 1]
    assert _keys(rest[2:]) == [["u000"]] and rest[2].rows[0].rejected is not None
    # One batch for the lot: PostgreSQL sorts NULL last, and that row must not end the batch.
    assert _keys(list(_source(postgres_url, 20).batches({}))) == [[f"v{n:03d}" for n in range(10)], ["u000"]]


def test_rows_whose_watermark_is_null_come_last_as_rejected_rows_every_pull(tmp_path: Path) -> None:
    url = _database(tmp_path, 0)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute("DROP TABLE visit")
        db.execute("CREATE TABLE visit (visit_no TEXT PRIMARY KEY, name TEXT, update_time TEXT)")
        db.executemany(
            "INSERT INTO visit VALUES (?, ?, ?)",
            [
                (f"v{n:03d}", f"name {n}", None if n in (1, 4, 5, 8, 9) else f"2026-11-{1 + n:02d} 08:00:00")
                for n in range(11)
            ],
        )
    source = _source(url, 2)
    batches = list(source.batches({}))
    pulled = [b for b in batches if isinstance(b.source, SqlRange)]
    rejected = [b for b in batches if not isinstance(b.source, SqlRange)]
    assert batches == pulled + rejected  # the NULL rows come after every watermarked batch
    assert _keys(pulled) == [["v000", "v002"], ["v003", "v006"], ["v007", "v010"]]
    assert _keys(rejected) == [["v001", "v004"], ["v005", "v008"], ["v009"]]  # in key order, in batches
    last = pulled[-1].checkpoint
    assert last == {"watermark": "2026-11-11 08:00:00", "key": "v010"}
    assert all(b.checkpoint == last for b in rejected)  # they move no checkpoint
    for row in (r for b in rejected for r in b.rows):
        assert row.version_source is None and row.position == f"visit.visit_no={row.values['visit_no']}"
        assert row.rejected is not None and "update_time" in row.rejected and "NULL" in row.rejected
    assert all(r.rejected is None for b in pulled for r in b.rows)
    again = list(source.batches(last))  # a later pull: nothing new, and the same rows still unreachable
    assert _keys(again) == _keys(rejected) and all(b.checkpoint == last for b in again)


def test_a_source_file_replaced_at_the_same_path_is_read_afresh(tmp_path: Path) -> None:
    url = _database(tmp_path, 3)
    assert [k for batch in _keys(list(_source(url, 4).batches({}))) for k in batch] == ["v000", "v001", "v002"]
    (tmp_path / "source.db").unlink()  # a new export replaces the file, as the demo regenerates its sources
    with sqlite3.connect(tmp_path / "source.db") as db:
        db.execute("CREATE TABLE visit (visit_no TEXT PRIMARY KEY, name TEXT, update_time TEXT NOT NULL)")
        db.execute("INSERT INTO visit VALUES ('w001', 'new', '2026-12-01 08:00:00')")
    assert _keys(list(_source(url, 4).batches({}))) == [["w001"]]


def _keyless_rows(batches: list[Batch]) -> list[tuple[str, str | None]]:
    return [(row.position, row.values["name"]) for batch in batches for row in batch.rows if row.rejected]


def test_rows_whose_key_is_null_end_no_batch_and_come_last_as_rejected_rows(tmp_path: Path) -> None:
    """SQLite lets a TEXT PRIMARY KEY hold NULL. Such a row must not end a batch: the next one, "after
    (watermark, NULL)", would pass over every row sharing its watermark."""
    url = _database(tmp_path, 12)  # four rows a watermark
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute("ALTER TABLE visit RENAME TO old")
        db.execute("CREATE TABLE visit (visit_no TEXT PRIMARY KEY, name TEXT, update_time TEXT)")
        db.execute("INSERT INTO visit SELECT * FROM old")
        db.execute("UPDATE visit SET visit_no = NULL WHERE visit_no IN ('v003', 'v004', 'v005')")
        db.execute("INSERT INTO visit VALUES (NULL, 'both', NULL)")  # no key and no watermark
    batches = list(_source(url, 3).batches({}))
    pulled = [b for b in batches if isinstance(b.source, SqlRange)]
    keyed = ["v000", "v001", "v002", *(f"v{n:03d}" for n in range(6, 12))]
    assert [k for batch in _keys(pulled) for k in batch] == keyed
    assert all(row.rejected is None for batch in pulled for row in batch.rows)
    # Named by watermark and place among the tied keyless rows, in the order of their values.
    assert _keyless_rows(batches[len(pulled) :]) == [
        ("visit.visit_no=NULL@NULL#1", "both"),
        ("visit.visit_no=NULL@2026-11-01 08:00:00#1", "name 3"),
        ("visit.visit_no=NULL@2026-11-02 08:00:00#1", "name 4"),
        ("visit.visit_no=NULL@2026-11-02 08:00:00#2", "name 5"),
    ]
    assert "key column visit_no is empty" in (batches[-1].rows[-1].rejected or "")
    assert _keyless_rows(list(_source(url, 3).batches({}))) == _keyless_rows(batches)  # the same names each pull


def test_a_postgresql_source_keeps_rows_whose_key_is_null_out_of_its_batches(postgres_url: str) -> None:
    """PostgreSQL sorts NULL last, so "the last row" of a descending query would be a keyless one."""
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS visit"))
        connection.execute(text("CREATE TABLE visit (visit_no TEXT, name TEXT, update_time TIMESTAMPTZ)"))
        connection.execute(
            text("INSERT INTO visit VALUES (:k, :n, :t)"),
            [{"k": f"v{n:03d}", "n": f"name {n}", "t": f"2026-11-{1 + n // 3:02d}T08:00:00+08:00"} for n in range(7)]
            + [{"k": None, "n": "late", "t": "2026-11-03T08:00:00+08:00"}],  # ties the last rows' watermark
        )
    engine.dispose()
    for size in (3, 20):
        batches = list(_source(postgres_url, size).batches({}))
        pulled = [b for b in batches if isinstance(b.source, SqlRange)]
        assert [k for batch in _keys(pulled) for k in batch] == [f"v{n:03d}" for n in range(7)]
        assert pulled[-1].checkpoint["key"] == "v006"
        ((position, name),) = _keyless_rows(batches)
        assert position.startswith("visit.visit_no=NULL@2026-11-03") and name == "late"

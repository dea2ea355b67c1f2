"""Opening SQLite databases (the switch to WAL mode, which SQLite may refuse at once instead of waiting), and
constant statements in each driver's placeholders."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from keys import sql
from keys.sql import _enter_wal, create_sql_engine, driver_sql


class Cursor:
    """Answers PRAGMA journal_mode like SQLite, refusing the switch while another opener holds the lock."""

    def __init__(self, refusals: int, error: str = "database is locked") -> None:
        self.refusals, self.error, self.mode, self.switches = refusals, error, "delete", 0

    def execute(self, statement: str) -> Any:
        if statement == "PRAGMA journal_mode=WAL":
            self.switches += 1
            if self.refusals:
                self.refusals -= 1
                raise sqlite3.OperationalError(self.error)
            self.mode = "wal"
        return self

    def fetchone(self) -> tuple[str]:
        return (self.mode,)


def test_a_refused_switch_to_wal_is_retried_until_it_takes() -> None:
    cursor = Cursor(refusals=3)
    _enter_wal(cursor)  # type: ignore[arg-type]
    assert cursor.mode == "wal" and cursor.switches == 4


def test_a_database_already_in_wal_is_left_alone() -> None:
    cursor = Cursor(refusals=0)
    cursor.mode = "wal"
    _enter_wal(cursor)  # type: ignore[arg-type]
    assert cursor.switches == 0


def test_other_errors_and_a_lock_that_never_goes_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        _enter_wal(Cursor(refusals=1, error="disk I/O error"))  # type: ignore[arg-type]
    monkeypatch.setattr(sql, "WAL_SWITCH_SECONDS", 0.05)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _enter_wal(Cursor(refusals=10**9))  # type: ignore[arg-type]


def test_a_new_file_opens_in_wal_with_its_pragmas(tmp_path: Path) -> None:
    with create_sql_engine(f"sqlite:///{tmp_path / 'new.db'}").connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar_one() == "wal"
        assert pragma("PRAGMA busy_timeout").scalar_one() == 10000
        assert pragma("PRAGMA foreign_keys").scalar_one() == 1
        assert pragma("PRAGMA synchronous").scalar_one() == 1  # NORMAL


def test_driver_sql_speaks_each_drivers_placeholders() -> None:
    statement = "INSERT INTO t (a, b) VALUES (?, ?)"
    assert driver_sql(statement, "qmark") == statement  # sqlite3
    assert driver_sql(statement, "pyformat") == "INSERT INTO t (a, b) VALUES (%s, %s)"  # psycopg
    assert driver_sql(statement, "format") == "INSERT INTO t (a, b) VALUES (%s, %s)"
    with pytest.raises(ValueError, match="paramstyle 'named'"):
        driver_sql(statement, "named")


def test_a_new_store_gets_large_pages_and_an_existing_one_keeps_its_own(tmp_path: Path) -> None:
    from sqlalchemy import text

    from hub.store import create_store_engine, init_schema
    from hub.store.engine import STORE_PAGE_SIZE

    def page_size(path: Path) -> int:
        with sqlite3.connect(path) as connection:
            return int(connection.execute("PRAGMA page_size").fetchone()[0])

    new = tmp_path / "new.db"
    engine = create_store_engine(f"sqlite:///{new}")
    init_schema(engine)
    engine.dispose()
    assert page_size(new) == STORE_PAGE_SIZE == 16384

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as connection:  # a store made by an earlier release, with SQLite's default pages
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x INTEGER)")
    before = page_size(old)
    engine = create_store_engine(f"sqlite:///{old}")
    with engine.begin() as store:
        store.execute(text("INSERT INTO t VALUES (1)"))
    engine.dispose()
    assert before == 4096 and page_size(old) == before


def test_blobs_booleans_and_nulls_bind_through_a_registered_adapter_as_they_are(tmp_path: Path) -> None:
    create_sql_engine(f"sqlite:///{tmp_path / 'any.db'}").dispose()
    for kind in (bytes, bool, type(None)):  # a registered adapter: a dictionary hit, not sqlite3's slow miss
        assert (kind, sqlite3.PrepareProtocol) in sqlite3.adapters
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (blob_value, true_value, false_value, null_value, int_value)")
    connection.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", (b"\x00\xffsealed", True, False, None, 7))
    stored = connection.execute(
        "SELECT typeof(blob_value), blob_value, typeof(true_value), true_value, false_value, typeof(null_value), "
        "typeof(int_value) FROM t"
    ).fetchone()
    assert stored == ("blob", b"\x00\xffsealed", "integer", 1, 0, "null", "integer")

"""Database engines for the store, on either supported back end."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import BigInteger, Connection, Engine, Table, inspect, text
from sqlalchemy.engine.reflection import Inspector
from sqlmodel import SQLModel

from connectors import tables as _connector_tables  # noqa: F401
from hub.errors import SettingsError

# Importing the table modules registers them on SQLModel.metadata (the policies' tables live in the same store).
from hub.store import tables as _tables
from hub.store.records import place_of
from keys.sql import create_sql_engine, driver_sql, json_value
from policies import tables as _policy_tables  # noqa: F401

# A new SQLite store is made with 16 KiB pages rather than 4 KiB: records are several hundred bytes and the
# materialiser inserts them by the thousand into three B-trees (the table, its unique key, the subject index);
# measured on 51k ingested records, the upsert took 20-30% less SQLite CPU.
STORE_PAGE_SIZE = 16384


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their directory created, WAL mode and (when new) 16 KiB pages."""
    try:
        return create_sql_engine(url, sqlite_page_size=STORE_PAGE_SIZE)
    except ValueError as error:
        raise SettingsError(f"HUB_DATABASE_URL: {error}") from None


# Columns added to a table after its first release: (table, column, DDL type with default). Each is added to
# an existing table that lacks it; the DDL is constant text, nothing from outside reaches it.
_ADDED_COLUMNS = (("access_index", "records", "INTEGER NOT NULL DEFAULT 1"),)


_RECORD_TABLE: Table = _tables.RecordRow.__table__  # type: ignore[attr-defined]
_ACCESS_INDEX_COLUMNS = "seq, subject, at, agency, purpose, dataset, case_id, result, break_glass, records"


def _key_access_index_by_item(connection: Connection, inspector: Inspector) -> None:
    """Stores made before a query's decisions shared one audit entry keyed access rows by ``seq`` alone; their
    table is rebuilt keyed by (``seq``, ``item``), each existing row becoming item 0 of its entry. A primary
    key cannot be altered in place on SQLite, so both back ends copy: rename, create, copy, drop."""
    if inspector.get_pk_constraint("access_index")["constrained_columns"] != ["seq"]:
        return
    old = "access_index_keyed_by_seq"
    indexes = [str(index["name"]) for index in inspector.get_indexes("access_index") if index["name"]]
    connection.exec_driver_sql(f"ALTER TABLE access_index RENAME TO {old}")
    for name in indexes:  # index names are schema-wide: the new table's indexes take the same names
        connection.exec_driver_sql(f"DROP INDEX {name}")
    _tables.AccessIndexRow.__table__.create(connection)  # type: ignore[attr-defined]
    connection.exec_driver_sql(
        f"INSERT INTO access_index (item, {_ACCESS_INDEX_COLUMNS}) SELECT 0, {_ACCESS_INDEX_COLUMNS} FROM {old}"  # noqa: S608
    )
    connection.exec_driver_sql(f"DROP TABLE {old}")


_BACKFILL_BATCH = 5000


def _index_subject_groups(connection: Connection, inspector: Inspector) -> None:
    """Stores made before the record table had a ``jurisdiction`` column counted a subject's records from
    ``clear_fields``, reading every row: the column is added and filled by the same rule new records are
    stored with (records.place_of), the covering index made, and the index on ``subject_index`` alone, which
    the new index's first column replaces, dropped."""
    if "jurisdiction" not in {c["name"] for c in inspector.get_columns("record")}:
        connection.exec_driver_sql("ALTER TABLE record ADD COLUMN jurisdiction VARCHAR(128)")
        style = connection.dialect.paramstyle
        page = driver_sql("SELECT id, clear_fields FROM record WHERE id > ? ORDER BY id LIMIT ?", style)
        update = driver_sql("UPDATE record SET jurisdiction = ? WHERE id = ?", style)
        last = 0
        while rows := connection.exec_driver_sql(page, (last, _BACKFILL_BATCH)).fetchall():
            last = rows[-1][0]
            placed = [(place, row_id) for row_id, clear in rows if (place := place_of(json_value(clear))) is not None]
            if placed:
                connection.exec_driver_sql(update, placed)
    indexes = {index["name"] for index in inspector.get_indexes("record")}
    if "ix_record_subject_groups" not in indexes:
        next(i for i in _RECORD_TABLE.indexes if i.name == "ix_record_subject_groups").create(connection)
    if "ix_record_subject_index" in indexes:
        connection.exec_driver_sql("DROP INDEX ix_record_subject_index")


SCHEMA_LOCK = 0x6875622D73636863  # pg_advisory_xact_lock key ("hub-schc")


# Tables that belong with the audit log rather than the store: the agreements' use counters, which the log
# writes in its own transactions (its entries' effects), live in the log's database
# (hub.settings.Settings.effective_audit_database_url), which may or may not be the store's; the residents'
# access index, derived from the log, lives where hub.store.access_index puts it (init_access_schema).
AUDIT_SIDE_TABLES = ("agreement_use",)
ACCESS_INDEX_TABLES = ("access_index", "access_index_mark")


@contextlib.contextmanager
def _schema_change(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the schema lock: concurrent callers (API workers starting together on a fresh
    database) are serialised, by an advisory lock on PostgreSQL and the write lock on SQLite, since
    check-then-create alone races and the loser fails."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        else:  # SQLite: take the write lock before looking, so the look and the creation are one step
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield connection


def init_audit_schema(engine: Engine) -> None:
    """Create the tables the audit log feeds (AUDIT_SIDE_TABLES) in its database."""
    with _schema_change(engine) as connection:
        tables = [SQLModel.metadata.tables[name] for name in AUDIT_SIDE_TABLES]
        SQLModel.metadata.create_all(connection, tables=tables)


def init_access_schema(engine: Engine) -> None:
    """Create the residents' access index (ACCESS_INDEX_TABLES), and bring an older index up to date.

    An index from before it kept a mark was written in its entries' own transactions, so it holds every entry
    up to its highest ``seq``: its mark starts after that, and nothing is indexed twice."""
    with _schema_change(engine) as connection:
        tables = [SQLModel.metadata.tables[name] for name in ACCESS_INDEX_TABLES]
        SQLModel.metadata.create_all(connection, tables=tables)
        inspector = inspect(connection)
        for table, column, ddl in _ADDED_COLUMNS:
            if column not in {c["name"] for c in inspector.get_columns(table)}:
                connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
        _key_access_index_by_item(connection, inspector)
        connection.exec_driver_sql(
            "INSERT INTO access_index_mark (id, next_seq)"
            " SELECT 0, (SELECT COALESCE(MAX(seq) + 1, 0) FROM access_index)"
            " WHERE NOT EXISTS (SELECT 1 FROM access_index_mark)"
        )


def init_schema(engine: Engine) -> None:
    """Create the store's missing tables (all but AUDIT_SIDE_TABLES), and add columns later versions gave them."""
    with _schema_change(engine) as connection:
        kept_apart = (*AUDIT_SIDE_TABLES, *ACCESS_INDEX_TABLES)
        tables = [t for name, t in SQLModel.metadata.tables.items() if name not in kept_apart]
        SQLModel.metadata.create_all(connection, tables=tables)
        inspector = inspect(connection)
        _index_subject_groups(connection, inspector)
        if engine.dialect.name == "postgresql":  # SQLite's INTEGER is 64-bit already
            version = next(c for c in inspector.get_columns("record") if c["name"] == "version")
            if not isinstance(version["type"], BigInteger):  # stores made before versions were 64-bit
                connection.exec_driver_sql("ALTER TABLE record ALTER COLUMN version TYPE BIGINT")

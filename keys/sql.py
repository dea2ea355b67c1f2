"""One way to open a SQLite or PostgreSQL engine, shared by the keys database and the hub's store.

It sits in ``keys`` because ``keys`` is the lowest layer (it imports nothing from ``hub``); the
settings each caller adds are passed in, since the keys database wants ``secure_delete`` and the store
does not.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

# JSON columns through orjson: the store's records keep their clear fields as JSON, and reading a resident's
# records parsed one document per row with the standard library at several times orjson's cost.
_JSON: dict[str, Any] = {
    "json_serializer": lambda value: orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode(),
    "json_deserializer": orjson.loads,
}
BUSY_TIMEOUT = "busy_timeout=10000"  # set first: the WAL switch and everything after it may wait for locks
SQLITE_PRAGMAS = ("synchronous=NORMAL", "foreign_keys=ON")  # set once WAL mode is on
WAL_SWITCH_SECONDS = 10.0


def _identity(value: Any) -> Any:
    return value


@functools.cache
def bind_common_types_directly() -> None:
    """Give sqlite3 an adapter for ``bytes``, ``bool`` and ``None`` that binds each value as it is.

    CPython 3.11's sqlite3 looks up an adapter for every parameter whose type is not exactly int, float,
    str or bytearray, so blobs (sealed fields, blind indexes, leaf hashes, wrapped keys), booleans and
    NULLs all take the lookup. With no adapter registered the lookup falls through to two attribute
    lookups that each build and then discard an ``AttributeError`` with a formatted message: about 3,200
    instructions a parameter (callgrind), 11,600 for each record the materialiser upserts, 8.5% of its
    whole cost. A registered adapter turns that into one dictionary hit. What is bound does not change:
    ``bytes(b)`` is ``b`` itself, ``int(True)`` is the 1 that sqlite3 binds for ``True`` anyway, and None
    stays None (bound as NULL). The registry is the sqlite3 module's, so this holds for every SQLite
    connection of the process; registering for bytes, bool and NoneType leaves sqlite3's fast path for
    int, float and str as it is.
    """
    sqlite3.register_adapter(bytes, bytes)
    sqlite3.register_adapter(bool, int)
    sqlite3.register_adapter(type(None), _identity)


def _enter_wal(cursor: sqlite3.Cursor) -> None:
    """Put a new database into WAL mode; a database already in it is left alone.

    The switch needs a moment's exclusive lock and SQLite answers "database is locked" at once rather
    than waiting, so two processes opening a fresh database together (two API workers) could fail; the
    loser retries briefly, and usually finds the winner has already switched it.
    """
    deadline = time.monotonic() + WAL_SWITCH_SECONDS
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@functools.cache
def driver_sql(sql: str, paramstyle: str) -> str:
    """Constant SQL written with ``?`` placeholders, in a driver's own paramstyle.

    The hot statements (record upserts, audit entries, the access index, data keys) go straight to the
    driver through ``exec_driver_sql``, because SQLAlchemy's per-row parameter processing cost more than
    the database work; so their placeholders must be the driver's: ``?`` for sqlite3, ``%s`` for psycopg.
    Written once with ``?`` and translated here, rather than kept twice at every call site. The text must
    hold no other ``?`` or ``%``.
    """
    if paramstyle == "qmark":
        return sql
    if paramstyle in ("format", "pyformat"):
        return sql.replace("?", "%s")
    raise ValueError(f"unsupported DB-API paramstyle {paramstyle!r}")


def fetch_all(engine: Engine, sql: str, parameters: Sequence[Any]) -> list[Any]:
    """The rows of one constant read statement (``?`` placeholders), run by the driver on a pooled connection.

    For the few small reads on every request's path (a person view's record counts, a subject's consents):
    SQLAlchemy's connection wrapper, execution context and result set cost about 30 µs a statement here,
    more than SQLite's own work for a handful of rows; the pooled driver connection costs 8. Rows come as the
    driver gives them (sqlite3: JSON as text; psycopg: JSON parsed, with the engine's ``json_deserializer``).
    """
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(driver_sql(sql, engine.dialect.paramstyle), parameters)
            return list(cursor.fetchall())
        finally:
            cursor.close()
    finally:
        connection.close()  # back to the pool, which rolls back the read's transaction


def json_value(value: Any) -> Any:
    """A JSON column's value as :func:`fetch_all` returns it: parsed already (psycopg) or text (sqlite3)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def create_sql_engine(
    url: str, extra_sqlite_pragmas: Sequence[str] = (), sqlite_page_size: int | None = None
) -> Engine:
    """An engine for a sqlite: or postgresql: URL; SQLite files get their folder, WAL mode and pragmas.

    ``sqlite_page_size`` applies to a SQLite database created through this engine (it must be set before the
    switch to WAL, and an existing database keeps the page size it was made with).
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        bind_common_types_directly()
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **_JSON)
        pragmas = (*SQLITE_PRAGMAS, *extra_sqlite_pragmas)

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA {BUSY_TIMEOUT}")
            if sqlite_page_size is not None:
                cursor.execute(f"PRAGMA page_size={int(sqlite_page_size)}")
            _enter_wal(cursor)
            for pragma in pragmas:
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        event.listen(engine, "connect", on_connect)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, **_JSON)
    raise ValueError(f"unsupported database {backend!r}: expected sqlite or postgresql")

"""The residents' access index, derived from the audit log and brought up to date before it is read.

A decision is either an ``access.decision`` entry of its own (a decision taken outside a query, say from
the command line) or one of the ``decisions`` of a query's ``data.release`` entry (the API's person views,
partner queries and feeds); each decision that names a subject is one row, keyed by its entry's ``seq``
and its place among that entry's decisions (``item``: 0 for an entry of its own).

The rows are read from the entries themselves, after they are durable, not written in the log's own
transactions: the log's entries are the evidence and the index only finds them, so whatever path recorded a
decision (API, CLI, partner feed), the index holds it once it has read that far. It reads on before every
lookup (:meth:`AccessIndex.rows`), so a resident sees every access the log holds at that moment, and
every quarter second in the background (:meth:`AccessIndex.follow`), so that catching up before a lookup
stays short. The rows and the mark of how far they go (``access_index_mark``) commit together: an entry is
indexed exactly once however many processes read on. Measured with two API workers on one SQLite log
(docs/api.md Performance, fifteenth session), writing the rows in the log's own transactions cost the person
view about a tenth of its throughput: every batch wrote random pages of the subject index while it held the
log's write lock, and the other worker waited for it.

On a SQLite log file the index keeps a file of its own beside it (``audit.db`` → ``audit-access.db``), so
that bringing it up to date never takes the log's write lock; elsewhere (PostgreSQL, an in-memory log) it
lives in the log's database.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, text
from sqlmodel import Session, col, select

from hub.store.engine import create_store_engine, init_access_schema
from hub.store.tables import AccessIndexRow
from keys.sql import driver_sql

ACCESS_LOCK = 0x6875622D61636378  # pg_advisory_xact_lock key ("hub-accx")
CHUNK = 2_000  # entries read and indexed a transaction: bounds the memory and the lock's hold
FOLLOW_SECONDS = 0.25
FOLLOW_NICENESS = 10


# The access_index table's columns (hub.store.tables.AccessIndexRow), in the order the statements below fill.
COLUMNS = (
    "seq",
    "item",
    "subject",
    "at",
    "agency",
    "purpose",
    "dataset",
    "case_id",
    "result",
    "break_glass",
    "records",
)


def index_database_url(log_engine: Engine) -> str | None:
    """Where a log's index lives: a SQLite file of its own beside a SQLite log file; None for the log's own
    database (PostgreSQL, or a SQLite log that is not a plain file)."""
    if log_engine.dialect.name != "sqlite":
        return None
    database = log_engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    return f"sqlite:///{path.with_name(f'{path.stem}-access{path.suffix}')}"


_COLUMNS = ", ".join(COLUMNS)
# The rows of the log's entries [?, ?), derived by the database itself: bringing the index up to date runs no
# Python per entry, and the driver hands the GIL back while the statement runs. Derived in Python (parsing
# each entry's JSON, then inserting its rows), reading on held an API worker's event loop for 20-40 ms at a
# time, and stalled both workers' audit writers with it (docs/api.md Performance, fifteenth session).
# Each decision naming a subject is a row: an ``access.decision`` entry's own (item 0), or each item of a
# query's ``decisions`` (a ``data.release`` entry). A count missing from an older entry counts one record.
# Rows already there are left alone (an index from before the mark, say).
_SQLITE_ROWS = f"""
INSERT INTO access_index ({_COLUMNS})
WITH e AS (
    SELECT seq, j, CAST(strftime('%s', json_extract(j, '$.time')) AS INTEGER) AS at
    FROM (SELECT seq, CAST(body AS TEXT) AS j FROM {{log}}audit_entry WHERE seq >= ? AND seq < ?)
)
SELECT e.seq, CAST(d.key AS INTEGER), json_extract(d.value, '$.subject'), e.at, json_extract(e.j, '$.actor.agency'),
    COALESCE(json_extract(e.j, '$.purpose'), ''), json_extract(d.value, '$.dataset'), json_extract(e.j, '$.case'),
    json_extract(d.value, '$.result'),
    EXISTS (SELECT 1 FROM json_each(d.value, '$.obligations') o WHERE o.value = 'post_hoc_review'),
    CASE WHEN json_type(d.value, '$.records') = 'integer' THEN json_extract(d.value, '$.records') ELSE 1 END
FROM e, json_each(e.j, '$.decisions') d
WHERE json_extract(e.j, '$.type') = 'data.release' AND json_extract(d.value, '$.subject') IS NOT NULL
UNION ALL
SELECT e.seq, 0, json_extract(e.j, '$.subject'), e.at, json_extract(e.j, '$.actor.agency'),
    COALESCE(json_extract(e.j, '$.purpose'), ''), COALESCE(json_extract(e.j, '$.dataset'), ''),
    json_extract(e.j, '$.case'), json_extract(e.j, '$.decision.result'),
    COALESCE(json_type(e.j, '$.detail.break_glass') = 'true', 0),
    CASE WHEN json_type(e.j, '$.detail.records') = 'integer' THEN json_extract(e.j, '$.detail.records') ELSE 1 END
FROM e
WHERE json_extract(e.j, '$.type') = 'access.decision' AND json_extract(e.j, '$.subject') IS NOT NULL
    AND json_type(e.j, '$.decision') = 'object'
ON CONFLICT DO NOTHING
"""  # noqa: S608 - constant text; only the attached log's schema name is put in
_POSTGRESQL_ROWS = f"""
INSERT INTO access_index ({_COLUMNS})
WITH e AS (
    SELECT seq, convert_from(body, 'UTF8')::jsonb AS j FROM audit_entry WHERE seq >= %s AND seq < %s
)
SELECT e.seq, (d.ord - 1)::int, d.value->>'subject', floor(extract(epoch FROM (e.j->>'time')::timestamptz))::bigint,
    e.j->'actor'->>'agency', COALESCE(e.j->>'purpose', ''), d.value->>'dataset', e.j->>'case', d.value->>'result',
    COALESCE(d.value->'obligations' @> '["post_hoc_review"]'::jsonb, false),
    CASE WHEN jsonb_typeof(d.value->'records') = 'number' THEN (d.value->>'records')::int ELSE 1 END
FROM e CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(e.j->'decisions') = 'array' THEN e.j->'decisions' ELSE '[]'::jsonb END
) WITH ORDINALITY AS d(value, ord)
WHERE e.j->>'type' = 'data.release' AND d.value->>'subject' IS NOT NULL
UNION ALL
SELECT e.seq, 0, e.j->>'subject', floor(extract(epoch FROM (e.j->>'time')::timestamptz))::bigint,
    e.j->'actor'->>'agency', COALESCE(e.j->>'purpose', ''), COALESCE(e.j->>'dataset', ''), e.j->>'case',
    e.j->'decision'->>'result', COALESCE(jsonb_typeof(e.j->'detail'->'break_glass') = 'boolean'
        AND (e.j->'detail'->>'break_glass')::boolean, false),
    CASE WHEN jsonb_typeof(e.j->'detail'->'records') = 'number' THEN (e.j->'detail'->>'records')::int ELSE 1 END
FROM e
WHERE e.j->>'type' = 'access.decision' AND e.j->>'subject' IS NOT NULL AND jsonb_typeof(e.j->'decision') = 'object'
ON CONFLICT DO NOTHING
"""  # noqa: S608 - constant text
_LAST = "SELECT MAX(seq) FROM {log}audit_entry WHERE seq >= ? AND seq < ?"
LOG_SCHEMA = "hub_log"  # the log's database, attached to a SQLite index's own connections


class AccessIndex:
    """The residents' access index of one audit log (see the module's docstring)."""

    def __init__(self, log_engine: Engine, engine: Engine | None = None, *, chunk: int = CHUNK) -> None:
        self.log_engine = log_engine
        url = index_database_url(log_engine) if engine is None else None
        self.engine = engine if engine is not None else create_store_engine(url) if url else log_engine
        self.chunk = chunk
        log_file = log_engine.url.database if self.engine is not log_engine else None
        if log_file:  # the index's own SQLite file: its connections read the log through an attached database
            attach = f"ATTACH DATABASE ? AS {LOG_SCHEMA}"

            def attach_log(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.execute(attach, (log_file,))

            event.listen(self.engine, "connect", attach_log)
        index_file = self.engine.url.database if log_file else None
        self._lock_file = f"{index_file}.lock" if index_file else None
        prefix = f"{LOG_SCHEMA}." if log_file else ""
        postgresql = self.engine.dialect.name == "postgresql"
        self._rows_sql = _POSTGRESQL_ROWS if postgresql else _SQLITE_ROWS.replace("{log}", prefix)
        self._last_sql = driver_sql(_LAST.replace("{log}", prefix), self.engine.dialect.paramstyle)
        self._mark_sql = driver_sql(
            "UPDATE access_index_mark SET next_seq = ? WHERE id = 0", self.engine.dialect.paramstyle
        )
        init_access_schema(self.engine)
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Connection]:
        """A transaction that holds the index's write lock, so one process at a time reads on: PostgreSQL's
        advisory lock; for an index file of its own, a lock file beside it (``BEGIN IMMEDIATE`` would take
        the attached log's write lock too, and the audit writers would wait on it); else SQLite's write lock."""
        with contextlib.ExitStack() as stack:
            if self._lock_file is not None:
                descriptor = os.open(self._lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                stack.callback(os.close, descriptor)
                fcntl.flock(descriptor, fcntl.LOCK_EX)  # released when the descriptor closes, after the commit
            connection = stack.enter_context(self.engine.begin())
            if self.engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ACCESS_LOCK})
            elif self._lock_file is None:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield connection

    def catch_up(self) -> int:
        """Index every entry the log holds beyond the mark; returns how many entries were read.

        Raises what the databases raise (SQLAlchemy errors): a caller that cannot bring the index up to date
        cannot say it shows every access, and must not answer as if it did."""
        read = 0
        while True:
            with self._locked() as connection:
                start = int(connection.exec_driver_sql("SELECT next_seq FROM access_index_mark").scalar_one())
                window = (start, start + self.chunk)
                last = connection.exec_driver_sql(self._last_sql, window).scalar()
                if last is None:
                    return read
                connection.exec_driver_sql(self._rows_sql, (start, int(last) + 1))
                connection.exec_driver_sql(self._mark_sql, (int(last) + 1,))
            read += int(last) + 1 - start
            if int(last) + 1 < start + self.chunk:
                return read

    def rows(self, subject: str) -> list[AccessIndexRow]:
        """Every indexed decision about ``subject`` (a pseudonym), in log order, the index first brought up to
        date with the log."""
        self.catch_up()
        with Session(self.engine) as session:
            query = select(AccessIndexRow).where(AccessIndexRow.subject == subject).order_by(col(AccessIndexRow.seq))
            return list(session.exec(query).all())

    def follow(self, interval: float = FOLLOW_SECONDS) -> None:
        """Read on every ``interval`` seconds in a thread of its own, until :meth:`close`."""
        if self._follower is not None:
            return

        def run() -> None:
            # Below the API's threads in the scheduler's eyes (Linux: a thread's own nice value): reading on
            # can wait for an idle moment, a request cannot. A lookup still reads on at once, at its own priority.
            with contextlib.suppress(AttributeError, OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), FOLLOW_NICENESS)
            while not self._stop.wait(interval):
                with contextlib.suppress(Exception):  # a failed round is retried next interval; lookups still read on
                    self.catch_up()

        self._follower = threading.Thread(target=run, name="access-index", daemon=True)
        self._follower.start()

    def close(self) -> None:
        self._stop.set()
        if self._follower is not None:
            self._follower.join(10)
        if self.engine is not self.log_engine:
            self.engine.dispose()

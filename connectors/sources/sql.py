"""Any SQLAlchemy-reachable database: incremental pulls by a watermark column, then the primary key.

Rows come in (watermark, key) order, strictly after the checkpoint, so a resumed pull neither skips nor
repeats a row. The queries are built with SQLAlchemy constructs from the configured names; no SQL text
is assembled from strings.

A batch is planned, then read. The reading process asks only where each batch ends: the (watermark,
key) of its last row, one row a query. The rows themselves are read by whoever prepares the batch, a
worker process in a parallel run (connectors.workers), through :meth:`SqlRange.rows`, the same code a
reader in one process uses. A row that changes between the two steps is not lost: an update moves its
watermark past the batch's end, so a later batch (or the next run) reads it; a row that appears inside
a planned range is read with it.

A row whose watermark is NULL is out of every pull's reach, so each pull ends by handing such rows on as
rejected: they become dead letters that say why, rather than rows nobody ever reads. So is a row whose key
is NULL (SQLite lets a TEXT PRIMARY KEY hold one; a view's key column may): it has no place in the (watermark,
key) order, and as a batch's end it would make the next batch skip every row sharing its watermark.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    and_,
    column,
    create_engine,
    literal,
    literal_column,
    or_,
    select,
    table,
    tuple_,
)
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.expression import ColumnClause
from sqlalchemy.types import NullType

from connectors.config import ConnectorConfig
from connectors.sources.base import Batch, Row

_engines: dict[str, tuple[int, Engine]] = {}  # URL -> (the process it belongs to, its engine)


def _engine(url: str) -> Engine:
    """This process's engine for a source: one per URL, never one inherited across a fork (a pooled
    connection used by two processes is corrupted, SQLite's especially).

    A SQLite source's connections are not pooled: a file replaced at the same path (a fresh export, the
    demo's regenerated sources) would still be read through a pooled connection to the old file. A fresh
    connection took 0.12 ms here against 0.06 ms from a pool: once a batch. A database server's
    connections are pooled."""
    known = _engines.get(url)
    if known is None or known[0] != os.getpid():
        pooling: dict[str, Any] = {"poolclass": NullPool} if make_url(url).get_backend_name() == "sqlite" else {}
        known = _engines[url] = (os.getpid(), create_engine(url, **pooling))
    return known[1]


# Dialects that compare row values, "(watermark, key) > (?, ?)", which a (watermark, key) index answers
# as one range: SQLite planned the equivalent OR of two terms as a union of two index searches sorted in
# a temporary B-tree, so every batch of a 1,000,000-row table sorted the rest of the table.
_ROW_VALUES = frozenset(("sqlite", "postgresql", "mysql", "mariadb"))


def _values(*values: Any) -> ColumnElement[Any]:
    # Untyped, as plain comparisons bind them: PostgreSQL then takes each value's type from its column
    # (a checkpoint's time is text) instead of a VARCHAR cast that a timestamp column would refuse.
    return tuple_(*(literal(value, NullType()) for value in values))


def _after(engine: Engine, watermark: str, key: str, mark: Any, last: Any) -> ColumnElement[bool]:
    """(watermark, key) strictly after (mark, last)."""
    if engine.dialect.name in _ROW_VALUES:
        return tuple_(column(watermark), column(key)) > _values(mark, last)
    return or_(column(watermark) > mark, and_(column(watermark) == mark, column(key) > last))


def _up_to(engine: Engine, watermark: str, key: str, mark: Any, last: Any) -> ColumnElement[bool]:
    """(watermark, key) at or before (mark, last)."""
    if engine.dialect.name in _ROW_VALUES:
        return tuple_(column(watermark), column(key)) <= _values(mark, last)
    return or_(column(watermark) < mark, and_(column(watermark) == mark, column(key) <= last))


class SqlRange(NamedTuple):
    """One planned batch of a SQL source: its rows after ``start`` (from the first row when None) up to
    and including ``end``, in (watermark, key) order. Small, so it crosses to a worker process for
    nothing; the rows are read where the batch is prepared."""

    url: str
    table: str
    watermark: str
    key: str
    start: tuple[Any, Any] | None
    end: tuple[Any, Any]

    def rows(self) -> list[Row]:
        watermark, key, engine = self.watermark, self.key, _engine(self.url)
        query: Select[Any] = select(literal_column("*")).select_from(table(self.table))
        if self.start is not None:
            query = query.where(_after(engine, watermark, key, *self.start))
        query = query.where(_up_to(engine, watermark, key, *self.end), column(key).is_not(None))
        query = query.order_by(column(watermark), column(key))
        with engine.connect() as connection:
            found = [dict(r) for r in connection.execute(query).mappings()]
        new = tuple.__new__
        return [new(Row, (f"{self.table}.{key}={r[key]}", r, r[watermark], None)) for r in found]


class SqlSource:
    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        self.url = config.require("url")
        self.table_name = config.require("table")
        self.watermark_name = config.require("watermark")

    def _end_of_batch(self, after: tuple[Any, Any] | None) -> tuple[tuple[Any, Any], bool] | None:
        """Where the next batch ends, and whether it is a full one; None when no row is left."""
        watermark: ColumnClause[Any] = column(self.watermark_name)
        key: ColumnClause[Any] = column(self.config.key)
        engine = _engine(self.url)
        # Never a row whose watermark is NULL: as a batch's end it would make the batch empty and the pull
        # stop there (databases sort NULL first or last), with every row after it unread. Nor one whose key
        # is NULL: "after (mark, NULL)" is true of no row with that mark, so the next batch would skip them.
        query: Select[Any] = (
            select(watermark, key).select_from(table(self.table_name)).where(watermark.is_not(None), key.is_not(None))
        )
        if after is not None:
            query = query.where(_after(engine, self.watermark_name, self.config.key, *after))
        with engine.connect() as connection:
            row = connection.execute(query.order_by(watermark, key).offset(self.config.batch_size - 1).limit(1)).first()
            if row is not None:
                return (row[0], row[1]), True
            row = connection.execute(query.order_by(watermark.desc(), key.desc()).limit(1)).first()
        return None if row is None else ((row[0], row[1]), False)

    def batches(self, state: dict[str, Any]) -> Iterator[Batch]:
        mark, key = state.get("watermark"), state.get("key")
        after = None if mark is None else (mark, key)
        checkpoint = dict(state)
        while True:
            planned = self._end_of_batch(after)
            if planned is None:
                break
            end, full = planned
            where = SqlRange(self.url, self.table_name, self.watermark_name, self.config.key, after, end)
            checkpoint = {"watermark": end[0], "key": end[1]}
            yield Batch(where, checkpoint)
            if not full:
                break
            after = end
        yield from self._without_watermark(checkpoint)
        yield from self._without_key(checkpoint)

    def _without_watermark(self, checkpoint: dict[str, Any]) -> Iterator[Batch]:
        """The rows whose watermark is NULL, as rejected rows, in key order, after every pull's last batch.

        No incremental pull reaches them: a comparison with NULL is never true. So that they are not
        passed over without a word, each pull hands them on, and the runner makes each a dead letter with
        the reason (one letter a row, however many pulls find it: letters are unique by position). Their
        batches change no checkpoint. Rows whose key is NULL as well are :meth:`_without_key`'s.
        """
        watermark: ColumnClause[Any] = column(self.watermark_name)
        key: ColumnClause[Any] = column(self.config.key)
        reason = (
            f"the watermark column {self.watermark_name} is empty (NULL), so no incremental pull reaches the "
            "row; once the source gives it a time, the next pull takes the row in"
        )
        engine, last = _engine(self.url), None
        while True:
            query: Select[Any] = (
                select(literal_column("*"))
                .select_from(table(self.table_name))
                .where(watermark.is_(None), key.is_not(None) if last is None else key > last)
                .order_by(key)
                .limit(self.config.batch_size)
            )
            with engine.connect() as connection:
                found = [dict(r) for r in connection.execute(query).mappings()]
            if not found:
                return
            name = self.config.key
            yield Batch([Row(f"{self.table_name}.{name}={r[name]}", r, None, reason) for r in found], checkpoint)
            if len(found) < self.config.batch_size:
                return
            last = found[-1][name]

    def _without_key(self, checkpoint: dict[str, Any]) -> Iterator[Batch]:
        """The rows whose key is NULL, as rejected rows, after every pull's last batch (as
        :meth:`_without_watermark`'s are).

        With no key to name it, a row is named by its watermark and its place among the keyless rows that
        share it, in the order of their values: ``table.key=NULL@<watermark>#<n>``. Each pull so names an
        unchanged row the same way and adds no second letter for it; a row that changes, or a new keyless row
        with the same watermark, may be named anew (a further letter, never a lost one). Neither the key
        nor the watermark is personal data, so the name can be listed. A replay cannot take such a row in
        (it still has no key); once the source gives it one, the next pull does.
        """
        watermark: ColumnClause[Any] = column(self.watermark_name)
        key: ColumnClause[Any] = column(self.config.key)
        reason = (
            f"the key column {self.config.key} is empty (NULL), so the row has no place in the pull's order and "
            "no name in the store; once the source gives it a key, the next pull takes the row in"
        )
        query: Select[Any] = select(literal_column("*")).select_from(table(self.table_name)).where(key.is_(None))
        query = query.order_by(watermark)
        prefix = f"{self.table_name}.{self.config.key}=NULL@"
        rows: list[Row] = []
        with _engine(self.url).connect() as connection:
            found = connection.execution_options(yield_per=self.config.batch_size).execute(query).mappings()
            for mark, group in itertools.groupby((dict(r) for r in found), key=lambda r: r[self.watermark_name]):
                tied = sorted(group, key=lambda r: json.dumps(r, sort_keys=True, default=str))
                for place, values in enumerate(tied, start=1):
                    rows.append(Row(f"{prefix}{'NULL' if mark is None else mark}#{place}", values, mark, reason))
                if len(rows) >= self.config.batch_size:
                    yield Batch(rows, checkpoint)
                    rows = []
        if rows:
            yield Batch(rows, checkpoint)

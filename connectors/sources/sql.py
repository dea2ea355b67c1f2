"""Any SQLAlchemy-reachable database: incremental pulls by a watermark column, then the primary key.

Rows come in (watermark, key) order, strictly after the checkpoint, so a resumed pull neither skips nor
repeats a row. The query is built with SQLAlchemy constructs from the configured names; no SQL text
is assembled from strings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select, and_, column, create_engine, literal_column, or_, select, table
from sqlalchemy.sql.expression import ColumnClause, TableClause

from connectors.config import ConnectorConfig
from connectors.sources.base import Batch, Row


class SqlSource:
    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        self.table_name = config.require("table")
        self.watermark_name = config.require("watermark")
        self.engine = create_engine(config.require("url"))
        self.table: TableClause = table(self.table_name)
        self.watermark: ColumnClause[Any] = column(self.watermark_name)
        self.key: ColumnClause[Any] = column(config.key)

    def batches(self, state: dict[str, Any]) -> Iterator[Batch]:
        mark, key = state.get("watermark"), state.get("key")
        while True:
            query: Select[Any] = select(literal_column("*")).select_from(self.table)
            if mark is not None:
                query = query.where(or_(self.watermark > mark, and_(self.watermark == mark, self.key > key)))
            query = query.order_by(self.watermark, self.key).limit(self.config.batch_size)
            with self.engine.connect() as connection:
                rows = [dict(r) for r in connection.execute(query).mappings()]
            if not rows:
                return
            mark, key = rows[-1][self.watermark_name], rows[-1][self.config.key]
            yield Batch(
                [
                    Row(f"{self.table_name}.{self.config.key}={r[self.config.key]}", r, r[self.watermark_name])
                    for r in rows
                ],
                {"watermark": mark, "key": key},
            )
            if len(rows) < self.config.batch_size:
                return

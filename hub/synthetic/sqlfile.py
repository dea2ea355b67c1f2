"""Writing a source system's table into its own SQLite file, deterministically."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path


def write_table(path: Path, schema: str, table: str, columns: Sequence[str], rows: Sequence[dict[str, object]]) -> Path:
    """Recreate ``path`` from scratch with ``schema`` and insert ``rows`` into ``table`` in order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    placeholders = ",".join("?" * len(columns))
    statement = f"INSERT INTO {table} ({','.join(columns)}) VALUES ({placeholders})"  # noqa: S608 - fixed names
    db = sqlite3.connect(path)
    try:
        db.executescript(schema)
        db.executemany(statement, [tuple(row[c] for c in columns) for row in rows])
        db.commit()
    finally:
        db.close()
    return path

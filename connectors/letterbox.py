"""Writing dead letters: one insert for a batch's letters, each kept once however often it is written.

Letters are unique by (connector, position), so a batch read or applied again after a crash writes
nothing new. The connectors' runner and the materialiser both write through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from connectors.tables import DeadLetter


def store_dead_letters(engine: Engine, letters: Sequence[dict[str, Any]]) -> None:
    if not letters:
        return
    table = DeadLetter.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert(table) if engine.dialect.name == "postgresql" else sqlite.insert(table)
    with engine.begin() as connection:
        connection.execute(insert.on_conflict_do_nothing(index_elements=["connector", "position"]), list(letters))

"""Writing dead letters: one insert for a batch's letters, each kept once however often it is written.

Letters are unique by (connector, position), so a batch read or applied again after a crash writes
nothing new. The connectors' runner and the materialiser both write through here, and both replays settle
their letters here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from connectors.tables import DeadLetter


def store_dead_letters(engine: Engine, letters: Sequence[dict[str, Any]]) -> None:
    if not letters:
        return
    table = DeadLetter.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert(table) if engine.dialect.name == "postgresql" else sqlite.insert(table)
    with engine.begin() as connection:
        connection.execute(insert.on_conflict_do_nothing(index_elements=["connector", "position"]), list(letters))


def settle_letter(engine: Engine, letter_id: int | None, *, closed_as: str = "", reason: str = "") -> None:
    """After a replay: the letter closed as ``closed_as`` (``replayed``, ``superseded``), its sealed row
    (personal data) deleted; or, still failing, kept open with ``reason``, the reason it fails now."""
    with Session(engine) as session:
        stored = session.get(DeadLetter, letter_id)
        if stored is None:
            return
        if closed_as:
            stored.status, stored.sealed_row = closed_as, b""
        if reason:
            stored.reason = reason
        session.add(stored)
        session.commit()

"""The residents' access index, derived from decision entries inside the audit log's own transaction.

Written by the audit log's ``indexer`` hook rather than by each caller after its append: the rows exist
exactly when their entries do (no crash window between the two, no second commit per request), and every
decision about a subject is indexed whichever path recorded it (API, CLI, partner feed).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection

from audit.entries import EntryDraft, SealedEntry
from keys.sql import driver_sql


class AccessRow(NamedTuple):
    """One ``access_index`` row, its fields in the table's column order (the insert takes it as it is)."""

    seq: int
    subject: str
    at: int
    agency: str
    purpose: str
    dataset: str
    case_id: str | None
    result: str
    break_glass: bool
    records: int


def access_rows(pairs: Sequence[tuple[EntryDraft, SealedEntry]]) -> list[AccessRow]:
    """One row per sequenced decision entry that names a subject; other entries index nothing."""
    rows: list[AccessRow] = []
    moment = ""
    at = 0
    for draft, sealed in pairs:
        if draft.type != "access.decision" or draft.subject is None or draft.decision is None:
            continue
        if sealed.time != moment:  # a batch shares one time stamp: convert it once
            moment = sealed.time
            at = int(datetime.fromisoformat(moment).timestamp())
        records = draft.detail.get("records", 1)
        rows.append(
            AccessRow(
                sealed.seq,
                draft.subject,
                at,
                draft.actor.agency,
                draft.purpose or "",
                draft.dataset or "",
                draft.case,
                draft.decision.result,
                draft.detail.get("break_glass") is True,
                records if isinstance(records, int) and not isinstance(records, bool) else 1,
            )
        )
    return rows


_COLUMNS = AccessRow._fields
_INSERT = f"INSERT INTO access_index ({', '.join(_COLUMNS)}) VALUES ({', '.join(['?'] * len(_COLUMNS))})"  # noqa: S608


def index_accesses(connection: Connection, pairs: Sequence[tuple[EntryDraft, SealedEntry]]) -> None:
    """The audit log's indexer: insert the batch's access rows (``AccessIndexRow``) on the batch's connection.

    A constant statement through the driver's executemany, as the audit entries themselves are inserted:
    SQLAlchemy's per-row parameter processing cost more than the insert, once per decision of every release.
    """
    rows = access_rows(pairs)
    if rows:
        statement = driver_sql(_INSERT, connection.dialect.paramstyle)
        connection.exec_driver_sql(statement, rows)

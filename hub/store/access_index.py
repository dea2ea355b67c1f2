"""The residents' access index, derived from decisions inside the audit log's own transaction.

A decision is either an ``access.decision`` entry of its own (a decision taken outside a query, say from
the command line) or one of the ``decisions`` of a query's ``data.release`` entry (the API's person views,
partner queries and feeds); each decision that names a subject is one row, keyed by its entry's ``seq``
and its place among that entry's decisions (``item``: 0 for an entry of its own).

Written by the audit log's ``indexer`` hook rather than by each caller after its append: the rows exist
exactly when their entries do (no crash window between the two, no second commit per request), and every
decision about a subject is indexed whichever path recorded it (API, CLI, partner feed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection

from audit.entries import EntryDraft, SealedEntry
from keys.sql import driver_sql


class AccessRow(NamedTuple):
    """One ``access_index`` row, its fields in the table's column order (the insert takes it as it is)."""

    seq: int
    item: int
    subject: str
    at: int
    agency: str
    purpose: str
    dataset: str
    case_id: str | None
    result: str
    break_glass: bool
    records: int


def _decisions(draft: EntryDraft) -> Iterator[tuple[int, str, str, str, bool, int]]:
    """(item, subject, dataset, result, break glass, records) of each decision in ``draft`` naming a subject."""
    if draft.type == "access.decision":
        if draft.subject is not None and draft.decision is not None:
            records = draft.detail.get("records", 1)
            counted = records if isinstance(records, int) and not isinstance(records, bool) else 1
            glass = draft.detail.get("break_glass") is True
            yield 0, draft.subject, draft.dataset or "", draft.decision.result, glass, counted
    elif draft.type == "data.release":
        for item, decided in enumerate(draft.decisions or ()):
            if decided.subject is not None:
                glass = "post_hoc_review" in decided.obligations
                yield item, decided.subject, decided.dataset, decided.result, glass, decided.records


def access_rows(pairs: Sequence[tuple[EntryDraft, SealedEntry]]) -> list[AccessRow]:
    """One row per sequenced decision that names a subject; entries that hold no decision index nothing."""
    rows: list[AccessRow] = []
    moment = ""
    at = 0
    for draft, sealed in pairs:
        for item, subject, dataset, result, glass, records in _decisions(draft):
            if sealed.time != moment:  # a batch shares one time stamp: convert it once
                moment = sealed.time
                at = int(datetime.fromisoformat(moment).timestamp())
            agency, purpose = draft.actor.agency, draft.purpose or ""
            rows.append(
                AccessRow(sealed.seq, item, subject, at, agency, purpose, dataset, draft.case, result, glass, records)
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

"""Investigation cases: the hub, not the caller, decides whether an officer is assigned to a case.

An investigative purpose needs a case assigned to the principal (the Rego rule reads
``input.case.assigned``); the API sets it from this registry, so an officer cannot claim an assignment.
A covert case hides its accesses from the residents' "who accessed my data" view until the case
closes or its disclosure date passes (the Estonian Data Tracker's rule for covert police queries).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, bindparam, literal
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from audit.entries import Actor, EntryDraft
from policies.errors import PolicyInputError
from policies.purposes import check_case_id
from policies.tables import CaseAssignment, CaseFile

AuditSink = Callable[[EntryDraft], object]
_CASE: Any = CaseFile.__table__  # type: ignore[attr-defined]
_ASSIGNMENT: Any = CaseAssignment.__table__  # type: ignore[attr-defined]
# Asked on every investigative query: one compiled statement, not two ORM lookups through a session (the
# same change as for consents and use counters, see policies.consents): 34 us a call here against 255.
_ASSIGNED = (
    sa_select(literal(1))
    .select_from(_CASE.join(_ASSIGNMENT, _ASSIGNMENT.c.case_id == _CASE.c.id))
    .where(
        _CASE.c.id == bindparam("case"),
        _CASE.c.agency == bindparam("agency"),
        _CASE.c.closed_at.is_(None),
        _ASSIGNMENT.c.principal == bindparam("principal"),
    )
)


class CaseRegistry:
    def __init__(self, engine: Engine, audit: AuditSink | None, clock: Callable[[], int] = lambda: int(time.time())):
        self.engine = engine
        self.audit = audit
        self.clock = clock

    def _record(self, operation: str, actor: Actor, case: str, **detail: str | int | bool) -> None:
        if self.audit is not None:
            self.audit(EntryDraft(type="admin", actor=actor, case=case, detail={"operation": operation, **detail}))

    def open(
        self, case_id: str, agency: str, actor: Actor, *, covert: bool = False, disclose_after: int | None = None
    ) -> CaseFile:
        check_case_id(case_id)
        if covert and disclose_after is None:
            raise PolicyInputError(f"covert case {case_id} needs a disclosure date")
        with Session(self.engine) as session:
            if session.get(CaseFile, case_id) is not None:
                raise PolicyInputError(f"case {case_id} already exists")
            row = CaseFile(
                id=case_id,
                agency=agency,
                covert=covert,
                disclose_after=disclose_after,
                opened_by=actor.principal,
                opened_at=self.clock(),
            )
            session.add(row)
            session.commit()
            session.refresh(row)
        self._record("case.open", actor, case_id, agency=agency, covert=covert)
        return row

    def get(self, case_id: str) -> CaseFile:
        with Session(self.engine) as session:
            row = session.get(CaseFile, case_id)
        if row is None:
            raise PolicyInputError(f"unknown case {case_id}")
        return row

    def assign(self, case_id: str, principal: str, actor: Actor) -> None:
        case = self.get(case_id)
        if case.closed_at is not None:
            raise PolicyInputError(f"case {case_id} is closed")
        with Session(self.engine) as session:
            if session.get(CaseAssignment, (case_id, principal)) is None:
                session.add(
                    CaseAssignment(
                        case_id=case_id, principal=principal, assigned_by=actor.principal, assigned_at=self.clock()
                    )
                )
                session.commit()
        self._record("case.assign", actor, case_id, principal=principal)

    def close(self, case_id: str, actor: Actor) -> None:
        with Session(self.engine) as session:
            row = session.get(CaseFile, case_id)
            if row is None:
                raise PolicyInputError(f"unknown case {case_id}")
            if row.closed_at is None:
                row.closed_at = self.clock()
                row.closed_by = actor.principal
                session.add(row)
                session.commit()
        self._record("case.close", actor, case_id)

    def is_assigned(self, case_id: str, principal: str, agency: str) -> bool:
        """Assigned means: the case exists in the principal's agency, is open, and lists the principal."""
        with self.engine.connect() as connection:
            found = connection.execute(_ASSIGNED, {"case": case_id, "principal": principal, "agency": agency})
            return found.first() is not None

    def hidden_cases(self, case_ids: set[str], now: int | None = None) -> set[str]:
        """Of ``case_ids``, the covert ones whose accesses residents may not see yet."""
        if not case_ids:
            return set()
        moment = self.clock() if now is None else now
        with Session(self.engine) as session:
            rows = session.exec(select(CaseFile).where(col(CaseFile.id).in_(sorted(case_ids)))).all()
        return {
            r.id
            for r in rows
            if r.covert and r.closed_at is None and (r.disclose_after is None or moment < r.disclose_after)
        }

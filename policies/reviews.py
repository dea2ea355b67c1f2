"""Post-hoc review of break-glass access: every emergency release opens a task a second person closes.

The requester can never close their own task, and only a principal of the same agency with the
``emergency review`` permission (the data-protection officer) can; the task stays open until then,
and the open tasks are part of the auditors' evidence pack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from audit.entries import Actor, EntryDraft
from policies.errors import PolicyInputError, SeparationOfDuties
from policies.roles import RoleService
from policies.tables import ReviewTask

AuditSink = Callable[[EntryDraft], object]
Outcome = Literal["justified", "unjustified"]


class ReviewQueue:
    def __init__(
        self,
        engine: Engine,
        roles: RoleService,
        audit: AuditSink | None,
        clock: Callable[[], int] = lambda: int(time.time()),
    ) -> None:
        self.engine = engine
        self.roles = roles
        self.audit = audit
        self.clock = clock

    def open(
        self, agency: str, requester: str, purpose: str, reason: str, decision_seq: int | None, request_id: str = ""
    ) -> ReviewTask:
        task = ReviewTask(
            agency=agency,
            requester=requester,
            purpose=purpose,
            reason=reason,
            decision_seq=decision_seq,
            request_id=request_id,
            opened_at=self.clock(),
        )
        with Session(self.engine) as session:
            session.add(task)
            session.commit()
            session.refresh(task)
        return task

    def close(self, task_id: int, reviewer: Actor, outcome: Outcome, note: str) -> ReviewTask:
        if not note.strip():
            raise PolicyInputError("closing a review needs a written note")
        with Session(self.engine) as session:
            task = session.get(ReviewTask, task_id)
            if task is None:
                raise PolicyInputError(f"unknown review task {task_id}")
            if task.closed_at is not None:
                raise PolicyInputError(f"review task {task_id} is already closed")
            if reviewer.principal == task.requester:
                raise SeparationOfDuties("a break-glass access must be reviewed by a second person")
            if reviewer.agency != task.agency or not self.roles.check(
                reviewer.principal, task.agency, "emergency", "review"
            ):
                raise SeparationOfDuties(f"{reviewer.principal} may not review emergencies in {task.agency}")
            task.closed_at = self.clock()
            task.closed_by = reviewer.principal
            task.outcome = outcome
            task.note = note
            session.add(task)
            session.commit()
            session.refresh(task)
        if self.audit is not None:
            self.audit(
                EntryDraft(
                    type="admin",
                    actor=reviewer,
                    detail={"operation": "review.close", "task": task_id, "outcome": outcome},
                )
            )
        return task

    def list(self, agency: str | None = None, open_only: bool = False) -> list[ReviewTask]:
        query = select(ReviewTask)
        if agency is not None:
            query = query.where(ReviewTask.agency == agency)
        if open_only:
            query = query.where(col(ReviewTask.closed_at).is_(None))
        with Session(self.engine) as session:
            return list(session.exec(query.order_by(col(ReviewTask.id))).all())

"""Sharing agreements: the Regulation on Government Data Sharing's request-and-approve flow.

    requested --approve--> approved --activate--> active --pause--> paused --resume--> active
        |                                           |---revoke--> revoked
        +--reject (written reason)--> rejected      +---(valid_until passes)--> expired

Only an agency admin of the *provider* approves, rejects or activates. Changing an agreement's fields or
purposes raises its scope version and sends it back to ``requested``: consents given for the old
scope no longer count (the policy compares scope versions). Every transition is kept in
``agreement_event`` and reported to the audit sink; each agreement counts the decisions and records
released under it, for the per-agreement use report.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import orjson
from sqlalchemy import Connection, Engine
from sqlmodel import Session, col, select

from audit.entries import Actor, EntryDraft
from keys.sql import driver_sql
from policies.errors import AgreementError, PolicyInputError
from policies.purposes import purpose
from policies.roles import RoleService
from policies.tables import AgreementEvent, AgreementRow, AgreementUseRow, PolicyVersion

# Every release counts its agreements' uses, in the audit log's transaction: one constant statement through
# the driver's executemany. Built per call, with the agreement ids and increments inlined, the counting was 12%
# of a releasing person view's CPU (py-spy; statement building and its cache key, in the audit writer's thread).
# An upsert (SQLite 3.24+, PostgreSQL 9.5+): an agreement's first use makes its row.
_COUNT_USES = (
    "INSERT INTO agreement_use (agreement, decisions, records_released) VALUES (?, ?, ?) "
    "ON CONFLICT (agreement) DO UPDATE SET decisions = agreement_use.decisions + excluded.decisions, "
    "records_released = agreement_use.records_released + excluded.records_released"
)

LawfulBasis = Literal["consent", "statutory_duty", "emergency"]
AuditSink = Callable[[EntryDraft], object]
TRANSITIONS: dict[str, set[str]] = {
    "requested": {"approved", "rejected"},
    "approved": {"active", "revoked"},
    "active": {"paused", "revoked", "expired"},
    "paused": {"active", "revoked", "expired"},
    "rejected": set(),
    "revoked": set(),
    "expired": set(),
}


@dataclass(frozen=True)
class Principal:
    id: str
    agency: str
    role: str


INDEX_CHECK_SECONDS = 2.0


def _now() -> int:
    return int(time.time())


def _version(engine: Engine) -> int:
    with Session(engine) as session:
        row = session.get(PolicyVersion, "agreements")
        return row.version if row else 0


def _bump(engine: Engine) -> None:
    with Session(engine) as session:
        row = session.get(PolicyVersion, "agreements") or PolicyVersion(name="agreements", version=0)
        row.version += 1
        session.add(row)
        session.commit()


class AgreementService:
    def __init__(
        self,
        engine: Engine,
        roles: RoleService,
        dataset_fields: Mapping[str, tuple[str, set[str]]],
        audit: AuditSink | None = None,
        clock: Callable[[], int] = _now,
        uses_engine: Engine | None = None,
    ) -> None:
        """``dataset_fields`` maps a dataset id to (owner agency, field names), from the catalog; ``uses_engine``
        is the audit log's database, which holds the use counters (``agreement_use``), if not ``engine``'s."""
        self.engine = engine
        self.uses_engine = uses_engine or engine
        self.roles = roles
        self.dataset_fields = dataset_fields
        self.audit = audit
        self.clock = clock
        self._index: dict[tuple[str, str, str], tuple[PolicyAgreement, ...]] = {}
        self._index_version: int | None = None
        self._index_checked = 0.0

    def _record(self, row: AgreementRow, before: str, actor: Principal, reason: str = "", **detail: Any) -> None:
        self._changed()
        with Session(self.engine) as session:
            session.add(
                AgreementEvent(
                    agreement_id=row.id,
                    from_status=before,
                    to_status=row.status,
                    actor=actor.id,
                    reason=reason,
                    at=self.clock(),
                    detail=detail,
                )
            )
            session.commit()
        if self.audit is not None:
            self.audit(
                EntryDraft(
                    type="agreement.change",
                    actor=Actor(agency=actor.agency, principal=actor.id, role=actor.role),
                    dataset=row.dataset,
                    detail={"agreement": row.id, "from": before, "to": row.status, "scope_version": row.scope_version},
                )
            )

    def _validate(self, dataset: str, provider: str, fields: Sequence[str], purposes: Sequence[str]) -> None:
        if dataset not in self.dataset_fields:
            raise PolicyInputError(f"unknown dataset {dataset!r}")
        owner, known = self.dataset_fields[dataset]
        if owner != provider:
            raise PolicyInputError(f"dataset {dataset} is owned by {owner}, not {provider}")
        unknown = [f for f in fields if f not in known]
        if unknown:
            raise PolicyInputError(f"agreement names fields not in the catalog of {dataset}: {', '.join(unknown)}")
        if not fields or not purposes:
            raise PolicyInputError("an agreement needs at least one field and one purpose")
        for code in purposes:
            purpose(code)

    def request(
        self,
        requester: Principal,
        *,
        provider: str,
        dataset: str,
        fields: Sequence[str],
        purposes: Sequence[str],
        lawful_basis: LawfulBasis,
        valid_from: int,
        valid_until: int,
        legal_citation: str = "",
        necessity: str = "",
        conditions: str = "",
    ) -> AgreementRow:
        if not self.roles.check(requester.id, requester.agency, "agreements", "request"):
            raise AgreementError(f"{requester.id} may not request agreements for {requester.agency}")
        self._validate(dataset, provider, fields, purposes)
        if lawful_basis == "statutory_duty" and not legal_citation.strip():
            raise PolicyInputError("a statutory-duty agreement needs its legal citation (PIPL 13(3))")
        if valid_until <= valid_from:
            raise PolicyInputError("valid_until must be after valid_from")
        row = AgreementRow(
            id=f"AGR-{secrets.token_hex(6)}",
            provider=provider,
            consumer=requester.agency,
            dataset=dataset,
            fields=sorted(set(fields)),
            purposes=sorted(set(purposes)),
            lawful_basis=lawful_basis,
            legal_citation=legal_citation,
            necessity=necessity,
            conditions=conditions,
            valid_from=valid_from,
            valid_until=valid_until,
            status="requested",
            requester=requester.id,
            approvers=[],
        )
        with Session(self.engine) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
        self._record(row, "", requester)
        return row

    def get(self, agreement_id: str) -> AgreementRow:
        with Session(self.engine) as session:
            row = session.get(AgreementRow, agreement_id)
        if row is None:
            raise PolicyInputError(f"unknown agreement {agreement_id!r}")
        return row

    def _move(
        self, agreement_id: str, actor: Principal, target: str, reason: str = "", provider_admin: bool = True
    ) -> AgreementRow:
        row = self.get(agreement_id)
        if target not in TRANSITIONS[row.status]:
            raise AgreementError(f"agreement {agreement_id} is {row.status}; it cannot become {target}")
        if provider_admin and not (
            actor.agency == row.provider and self.roles.check(actor.id, row.provider, "agreements", "approve")
        ):
            raise AgreementError(f"only an agency admin of the provider ({row.provider}) may do that")
        before = row.status
        row.status = target
        if target == "rejected":
            row.rejection_reason = reason
        if target == "approved":
            row.approvers = [*row.approvers, actor.id]
        with Session(self.engine) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
        self._record(row, before, actor, reason)
        return row

    def approve(self, agreement_id: str, approver: Principal) -> AgreementRow:
        return self._move(agreement_id, approver, "approved")

    def reject(self, agreement_id: str, approver: Principal, reason: str) -> AgreementRow:
        if not reason.strip():
            raise AgreementError("a rejection needs a written reason")
        return self._move(agreement_id, approver, "rejected", reason)

    def activate(self, agreement_id: str, actor: Principal) -> AgreementRow:
        return self._move(agreement_id, actor, "active")

    def pause(self, agreement_id: str, actor: Principal, reason: str) -> AgreementRow:
        return self._move(agreement_id, actor, "paused", reason)

    def resume(self, agreement_id: str, actor: Principal) -> AgreementRow:
        return self._move(agreement_id, actor, "active")

    def revoke(self, agreement_id: str, actor: Principal, reason: str) -> AgreementRow:
        return self._move(agreement_id, actor, "revoked", reason)

    def expire_due(self, system: Principal) -> list[str]:
        """Mark agreements whose validity ended as expired; returns their ids."""
        now = self.clock()
        with Session(self.engine) as session:
            due = session.exec(
                select(AgreementRow).where(
                    col(AgreementRow.status).in_(["active", "paused"]), AgreementRow.valid_until <= now
                )
            ).all()
        return [self._move(row.id, system, "expired", "validity period ended", provider_admin=False).id for row in due]

    def change_scope(
        self,
        agreement_id: str,
        actor: Principal,
        *,
        fields: Sequence[str] | None = None,
        purposes: Sequence[str] | None = None,
    ) -> AgreementRow:
        """New fields or purposes: a new scope version, back to ``requested``; old consents stop counting."""
        row = self.get(agreement_id)
        if actor.agency != row.consumer:
            raise AgreementError("only the consuming agency may change what it asks for")
        new_fields = sorted(set(fields)) if fields is not None else row.fields
        new_purposes = sorted(set(purposes)) if purposes is not None else row.purposes
        self._validate(row.dataset, row.provider, new_fields, new_purposes)
        before = row.status
        row.fields, row.purposes = new_fields, new_purposes
        row.scope_version += 1
        row.status = "requested"
        row.approvers = []
        with Session(self.engine) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
        self._record(row, before, actor, "scope changed", fields=len(new_fields), purposes=len(new_purposes))
        return row

    def relevant(self, consumer: str, provider: str, dataset: str) -> tuple[PolicyAgreement, ...]:
        """Agreements between two agencies for one dataset, in any state (the policy reads their status), in
        the policy's input form.

        Served from an in-memory index, rebuilt when the ``agreements`` policy version moves: at once for
        changes made through this service, within ``INDEX_CHECK_SECONDS`` for other processes'. The input
        forms are built with the index, once, and shared: read them, never change them.
        """
        self._maybe_rebuild()
        return self._index.get((consumer, provider, dataset), ())

    def _maybe_rebuild(self) -> None:
        now = time.monotonic()
        if self._index_version is not None and now - self._index_checked < INDEX_CHECK_SECONDS:
            return
        self._index_checked = now
        version = _version(self.engine)
        if version == self._index_version:
            return
        found: dict[tuple[str, str, str], list[PolicyAgreement]] = {}
        with Session(self.engine) as session:
            for row in session.exec(select(AgreementRow)).all():
                policy_input = as_policy_input(row)
                agreement = PolicyAgreement(policy_input, orjson.dumps(policy_input, option=orjson.OPT_SORT_KEYS))
                found.setdefault((row.consumer, row.provider, row.dataset), []).append(agreement)
        self._index = {parties: tuple(agreements) for parties, agreements in found.items()}
        self._index_version = version

    def _changed(self) -> None:
        _bump(self.engine)
        self._index_version = None  # rebuild on next use

    def count_use(self, agreement_ids: Sequence[str], records: int, decisions: int = 1) -> None:
        self.count_uses({agreement: (decisions, records) for agreement in agreement_ids})

    def count_uses(self, uses: Mapping[str, tuple[int, int]], connection: Connection | None = None) -> None:
        """Add (decisions, records released) to each agreement, in one transaction: one compiled UPDATE,
        executed once per agreement (the driver's executemany).

        With ``connection``, inside that connection's transaction: a release counts its uses in the audit
        log's own transaction (an effect of its ``data.release`` entry), so the counters move exactly when the
        evidence of the release is durable, and a release costs no second commit.
        """
        if not uses:
            return
        if connection is None:
            with self.uses_engine.begin() as own:
                self.count_uses(uses, own)
            return
        # In agreement order, so concurrent releases lock the rows in one order.
        connection.exec_driver_sql(
            driver_sql(_COUNT_USES, connection.dialect.paramstyle), [(a, d, r) for a, (d, r) in sorted(uses.items())]
        )

    def uses(self, uses: Mapping[str, tuple[int, int]]) -> UseCount:
        """(decisions, records released) per agreement, to count as an audit entry's effect."""
        return UseCount(self, dict(uses))

    def use_counts(self, agreement_ids: Sequence[str] | None = None) -> dict[str, tuple[int, int]]:
        """(decisions, records released) of the agreements named (all by default): the counts in
        ``agreement_use`` plus those an agreement row kept from before that table (see AgreementRow)."""
        rows = select(AgreementRow.id, AgreementRow.decisions, AgreementRow.records_released)
        uses = select(AgreementUseRow.agreement, AgreementUseRow.decisions, AgreementUseRow.records_released)
        if agreement_ids is not None:
            rows = rows.where(col(AgreementRow.id).in_(agreement_ids))
            uses = uses.where(col(AgreementUseRow.agreement).in_(agreement_ids))
        with Session(self.engine) as session:
            counts = {agreement: (decisions, records) for agreement, decisions, records in session.exec(rows)}
        with Session(self.uses_engine) as session:
            for agreement, decisions, records in session.exec(uses):
                if agreement in counts:
                    kept = counts[agreement]
                    counts[agreement] = (kept[0] + decisions, kept[1] + records)
        return counts

    def usage_report(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.exec(select(AgreementRow).order_by(AgreementRow.id)).all()
        counts = self.use_counts()
        return [
            {
                "agreement": r.id,
                "provider": r.provider,
                "consumer": r.consumer,
                "dataset": r.dataset,
                "status": r.status,
                "decisions": counts[r.id][0],
                "records_released": counts[r.id][1],
            }
            for r in rows
        ]


class PolicyAgreement(NamedTuple):
    """An agreement as the policy reads it (``input``), and those exact contents as bytes (``content``): a
    decision remembered for an input names its agreements by their contents (policies.decide)."""

    input: dict[str, Any]
    content: bytes


def as_policy_input(row: AgreementRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "provider": row.provider,
        "consumer": row.consumer,
        "dataset": row.dataset,
        "fields": list(row.fields),
        "purposes": list(row.purposes),
        "status": row.status,
        "valid_from": row.valid_from,
        "valid_until": row.valid_until,
        "lawful_basis": row.lawful_basis,
        "legal_citation": row.legal_citation,
        "necessity": row.necessity,
        "scope_version": row.scope_version,
    }


@dataclass(frozen=True)
class UseCount:
    """A release's agreement uses, counted as the effect of its ``data.release`` audit entry (in the audit
    log's transaction). Combinable (audit.log.Combinable): the releases of one batch count in one UPDATE
    an agreement, not one a release."""

    agreements: AgreementService
    uses: dict[str, tuple[int, int]]

    def __call__(self, connection: Connection) -> None:
        self.agreements.count_uses(self.uses, connection)

    @classmethod
    def combine(cls, counts: Sequence[UseCount]) -> UseCount:
        total: dict[str, tuple[int, int]] = {}
        for count in counts:
            for agreement, (decisions, records) in count.uses.items():
                known = total.get(agreement, (0, 0))
                total[agreement] = (known[0] + decisions, known[1] + records)
        return cls(counts[0].agreements, total)

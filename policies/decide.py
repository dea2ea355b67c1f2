"""The policy decision point: one request about one record -> allow, per-field outcome, obligations, reasons.

Steps: validate the request (purpose code, case id, dataset); check the principal's role with Casbin
(the coarse gate); gather only what this decision needs — the agreements between the two agencies for
this dataset and the subject's consents for them — so the Rego input stays small however many
agreements exist; evaluate the Rego policy (the fine-grained source of truth); record the decision in
the audit log whatever it is. If the engine or the audit log fails, the answer is a deny: no audit
entry, no data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from audit.entries import Actor, Decision, EntryDraft, QueryDecision
from policies.agreements import AgreementService, PolicyAgreement
from policies.consents import ConsentLedger, ConsentState
from policies.engines import RegoEngine
from policies.errors import PolicyInputError, PolicyUnavailable
from policies.memo import Remembered
from policies.purposes import check_case_id, purpose
from policies.roles import RoleService

AuditSink = Callable[[EntryDraft], object]


def narrow(agreements: Sequence[PolicyAgreement], purpose: str, now: int) -> Sequence[PolicyAgreement]:
    """The agreements the policy needs to see: those that could be usable, or, if none could, all of them.

    Every rule that reads an agreement which is not usable (status, validity or purpose reasons) fires only
    when no agreement is usable, so dropping the unusable ones whenever a usable one exists cannot change a
    decision (a property test checks this); it keeps the input small where agreements pile up.
    """
    usable = [
        a
        for a in agreements
        if (i := a.input)["status"] == "active"
        and i["valid_from"] <= now < i["valid_until"]
        and purpose in i["purposes"]
    ]
    return usable or agreements


@dataclass(frozen=True)
class PrincipalContext:
    id: str
    agency: str
    role: str
    jurisdiction: str
    training_valid: bool = True
    mfa: bool = False


@dataclass(frozen=True)
class RecordContext:
    dataset: str
    owner: str
    subject_jurisdiction: str
    subject_minor_under_14: bool
    subject_pseudonym: str | None = None


@dataclass(frozen=True)
class Emergency:
    reason: str
    declared_at: int
    expires_at: int


@dataclass(frozen=True)
class DecisionRequest:
    principal: PrincipalContext
    record: RecordContext
    purpose: str
    action: str = "read"
    case_id: str | None = None
    case_assigned: bool = False
    emergency: Emergency | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class PolicyDecision:
    allow: bool
    fields: dict[str, str]
    obligations: tuple[str, ...]
    reasons: tuple[str, ...]
    policy: str
    agreements: tuple[str, ...] = field(default=())

    def revealed(self) -> list[str]:
        return sorted(name for name, outcome in self.fields.items() if outcome == "reveal")


class _Facts(NamedTuple):
    labels: Mapping[str, Any]
    now: int
    candidates: Sequence[PolicyAgreement]
    consents: list[ConsentState]


class DecisionService:
    def __init__(
        self,
        engine: RegoEngine,
        roles: RoleService,
        agreements: AgreementService,
        consents: ConsentLedger,
        datasets: Mapping[str, Mapping[str, Any]],
        audit: AuditSink | None,
        clock: Callable[[], int] = lambda: int(time.time()),
    ) -> None:
        """``datasets``: per dataset id, ``{"owner", "sharing", "fields": {name: {"pi", ...}}}`` from the catalog."""
        self.engine = engine
        self.roles = roles
        self.agreements = agreements
        self.consents = consents
        self.datasets = datasets
        self.audit = audit
        self.clock = clock

    @property
    def engine(self) -> RegoEngine:
        return self._engine

    @engine.setter
    def engine(self, engine: RegoEngine) -> None:
        """Another engine may answer differently: what was remembered from the last one is forgotten."""
        self._engine = engine
        self._remembered: Remembered[tuple[Any, ...], PolicyDecision] | None = (
            Remembered() if getattr(engine, "deterministic", False) else None
        )

    def _facts(self, request: DecisionRequest) -> _Facts:
        """What a decision reads besides the request itself: the dataset's labels, the time, the candidate
        agreements and the subject's consents for them."""
        purpose(request.purpose)
        check_case_id(request.case_id)
        labels = self.datasets.get(request.record.dataset)
        if labels is None:
            raise PolicyInputError(f"unknown dataset {request.record.dataset!r}")
        now = self.clock()
        relevant = self.agreements.relevant(request.principal.agency, request.record.owner, request.record.dataset)
        candidates = narrow(relevant, request.purpose, now)
        consents = (
            self.consents.latest(request.record.subject_pseudonym, [a.input["id"] for a in candidates])
            if request.record.subject_pseudonym
            else []
        )
        return _Facts(labels, now, candidates, consents)

    @staticmethod
    def _document(request: DecisionRequest, facts: _Facts) -> dict[str, Any]:
        """The policy's input. Everything in it comes from the request and the facts, and each of them is in
        :meth:`_remembered_as`: change one and the other together."""
        p = request.principal
        return {
            "principal": {
                "id": p.id,
                "agency": p.agency,
                "roles": [p.role],
                "jurisdiction": p.jurisdiction,
                "training_valid": p.training_valid,
                "auth": {"mfa": p.mfa},
            },
            "action": request.action,
            "purpose": request.purpose,
            "case": {"id": request.case_id, "assigned": request.case_assigned} if request.case_id else None,
            "dataset": {"id": request.record.dataset, **facts.labels},
            "record": {
                "owner": request.record.owner,
                "subject_jurisdiction": request.record.subject_jurisdiction,
                "subject_minor_under_14": request.record.subject_minor_under_14,
            },
            "agreements": [a.input for a in facts.candidates],
            "consents": [c.policy_input() for c in facts.consents],
            "emergency": (
                {
                    "reason": request.emergency.reason,
                    "declared_at": request.emergency.declared_at,
                    "expires_at": request.emergency.expires_at,
                }
                if request.emergency
                else None
            ),
            "now": facts.now,
        }

    @staticmethod
    def _remembered_as(request: DecisionRequest, facts: _Facts) -> tuple[Any, ...]:
        """The policy input of :meth:`_document`, by its parts: equal parts make equal documents (the labels
        are the dataset's, fixed for the service's life). The subject's pseudonym is not in the document, so
        the same facts about another subject get the same decision, as they would from the engine."""
        p = request.principal
        r = request.record
        return (
            p.id,
            p.agency,
            p.role,
            p.jurisdiction,
            p.training_valid,
            p.mfa,
            request.action,
            request.purpose,
            request.case_id,
            request.case_assigned if request.case_id else None,
            r.dataset,
            r.owner,
            r.subject_jurisdiction,
            r.subject_minor_under_14,
            request.emergency,
            facts.now,
            tuple(a.content for a in facts.candidates),
            tuple(facts.consents),
        )

    def build_input(self, request: DecisionRequest) -> dict[str, Any]:
        return self._document(request, self._facts(request))

    def decide(self, request: DecisionRequest) -> PolicyDecision:
        """Evaluate and record the decision (synchronously), then count the agreements' use."""
        decision = self.evaluate(request)
        if self.audit is not None:
            self.audit(self.entry(request, decision))
        if decision.allow and decision.agreements:
            self.agreements.count_use(decision.agreements, 0)
        return decision

    def evaluate(self, request: DecisionRequest) -> PolicyDecision:
        """The decision alone, unrecorded: for callers that record it themselves (the API does, asynchronously,
        and releases nothing until the entry is durable)."""
        p = request.principal
        if not self.roles.check(p.id, p.agency, "records", request.action):
            decision = PolicyDecision(
                allow=False,
                fields={},
                obligations=("audit",),
                reasons=(f"RBAC: {p.id} holds no role in {p.agency} that may {request.action} records",),
                policy="casbin/rbac-with-domains",
            )
        else:
            facts = self._facts(request)
            remembered = self._remembered
            key = self._remembered_as(request, facts) if remembered is not None else ()
            if remembered is not None and (known := remembered.get(key)) is not None:
                return known
            document = self._document(request, facts)
            try:
                raw = self.engine.evaluate(document)
                decision = PolicyDecision(
                    allow=bool(raw["allow"]),
                    fields={str(k): str(v) for k, v in raw["fields"].items()},
                    obligations=tuple(raw["obligations"]),
                    reasons=tuple(raw["reasons"]),
                    policy=str(raw["policy"]),
                    agreements=tuple(
                        a["id"]
                        for a in document["agreements"]
                        if raw["allow"] and a["status"] == "active" and request.purpose in a["purposes"]
                    ),
                )
                if remembered is not None:
                    remembered.put(key, decision)
            except PolicyUnavailable:
                decision = PolicyDecision(
                    False, {}, ("audit",), ("policy engine unavailable: fail closed",), "fail-closed"
                )
            except (KeyError, TypeError, ValueError):
                decision = PolicyDecision(
                    False, {}, ("audit",), ("policy engine answered malformed: fail closed",), "fail-closed"
                )
        return decision

    @staticmethod
    def entry(request: DecisionRequest, decision: PolicyDecision, records: int = 1) -> EntryDraft:
        """The ``access.decision`` entry; ``records`` counts the records this one decision covers."""
        p = request.principal
        return EntryDraft(
            type="access.decision",
            actor=Actor(agency=p.agency, principal=p.id, role=p.role),
            purpose=request.purpose,
            case=request.case_id,
            dataset=request.record.dataset,
            subject=request.record.subject_pseudonym,
            request_id=request.request_id,
            decision=Decision(
                result="permit" if decision.allow else "deny",
                policy=decision.policy,
                reasons=decision.reasons,
                obligations=decision.obligations,
            ),
            fields_released=tuple(decision.revealed()),
            detail={"break_glass": "post_hoc_review" in decision.obligations, "records": records},
        )

    @staticmethod
    def query_item(request: DecisionRequest, decision: PolicyDecision, records: int) -> QueryDecision:
        """The decision as one of a query's ``decisions`` in its ``data.release`` entry (the API's path): the
        same facts as :meth:`entry`, less what the release entry states once for the whole query."""
        return QueryDecision(
            dataset=request.record.dataset,
            fields_released=tuple(decision.revealed()),
            obligations=decision.obligations,
            policy=decision.policy,
            reasons=decision.reasons,
            records=records,
            result="permit" if decision.allow else "deny",
            subject=request.record.subject_pseudonym,
        )

"""Policy-gated release of records: decide per record, decrypt or mask per field, audit, then hand over.

The order is the guarantee. Every decision is taken first (nothing decrypted yet); the fields policy
reveals are decrypted and the masked ones masked, in memory; then the decision entries and one
``data.release`` entry (with the digest of exactly what is released) are appended and awaited until
durable; only then does the caller get the result. If the policy engine, the key store or the audit
log cannot do its part, :class:`ServiceUnavailable` is raised and nothing leaves: no audit entry, no data.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, NamedTuple, TypeVar

from audit.entries import Actor, EntryDraft, canonical_json
from audit.log import AuditUnavailable
from hub.catalog import Catalog
from hub.errors import HubError
from hub.evidence import Evidence
from hub.identifiers import age_on, normalise_id_number
from hub.protection import Erased, RecordProtector
from hub.store import RecordStore
from hub.store.records import ProtectedRecord
from keys.errors import KeystoreUnavailable
from keys.masking import MaskType
from policies.cases import CaseRegistry
from policies.decide import DecisionRequest, DecisionService, Emergency, PolicyDecision, PrincipalContext, RecordContext
from policies.reviews import ReviewQueue

Component = Literal["audit", "keys", "policy", "identity"]
T = TypeVar("T")
EMERGENCY_SECONDS = 4 * 3600
MINOR_AGE = 14


class ServiceUnavailable(HubError):
    """A component the release depends on is down; nothing was released."""

    def __init__(self, component: Component) -> None:
        super().__init__(f"the {component} service is unavailable; nothing was released (fail closed)")
        self.component = component


class FieldView(NamedTuple):
    """One field as released. Named tuples rather than frozen dataclasses, as for the store's records (see
    hub.store.records.Provenance), built with ``tuple.__new__``: a person view makes one RecordView a
    record (about 30 a resident here) and one FieldView a field shown; a frozen RecordView took 2.2 µs to
    make (one ``object.__setattr__`` a field) against 0.33 µs, about 5% of a request in all."""

    outcome: Literal["reveal", "mask", "deny"]
    value: Any = None
    reason: str | None = None


class RecordView(NamedTuple):
    dataset: str
    record_key: str
    owner: str
    version: int
    allow: bool
    policy: str
    reasons: tuple[str, ...]
    obligations: tuple[str, ...]
    fields: dict[str, FieldView]


@dataclass
class Release:
    """What a query releases, and the evidence of it."""

    subject: str  # the subject's audit pseudonym
    records: list[RecordView]
    release_seq: int = -1
    decision_seqs: list[int] = field(default_factory=list)
    payload_digest: str = ""
    review_task: int | None = None

    @property
    def step_up_required(self) -> bool:
        return any("step_up_required" in r.obligations for r in self.records)


@dataclass(frozen=True)
class Query:
    principal: PrincipalContext
    id_number: str
    purpose: str
    case_id: str | None = None
    emergency_reason: str | None = None
    datasets: tuple[str, ...] | None = None
    request_id: str | None = None
    channel: str = "officer"


@dataclass(frozen=True)
class Decided:
    """One policy decision and how many of the query's records it covers (released or refused).

    Records whose decision inputs are identical (same dataset, owner, subject, jurisdiction and age
    bracket, within one query) get the same decision, so they are decided once and recorded in one
    ``access.decision`` entry that counts them: the log holds every decision, not copies of it.
    """

    request: DecisionRequest
    decision: PolicyDecision
    records: int


def _field_reasons(decision: PolicyDecision) -> dict[str, str]:
    found: dict[str, str] = {}
    for reason in decision.reasons:
        name, sep, rest = reason.partition(": ")
        if sep and name.isidentifier():
            found[name] = rest
    return found


def _agreement_uses(decided: Sequence[Decided]) -> dict[str, tuple[int, int]]:
    """Per agreement that allowed a decision: (decisions, records released under it)."""
    used: dict[str, tuple[int, int]] = {}
    for d in decided:
        if d.decision.allow:
            for agreement in d.decision.agreements:
                decisions, records = used.get(agreement, (0, 0))
                used[agreement] = (decisions + 1, records + d.records)
    return used


def _plain(value: Any) -> Any:
    return None if isinstance(value, Erased) else value


class ReleaseService:
    def __init__(
        self,
        catalog: Catalog,
        store: RecordStore,
        protector: RecordProtector,
        decisions: DecisionService,
        cases: CaseRegistry,
        reviews: ReviewQueue,
        evidence: Evidence,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.protector = protector
        self.decisions = decisions
        self.cases = cases
        self.reviews = reviews
        self.evidence = evidence

    @property
    def on_loop(self) -> bool:
        """Whether the synchronous part runs on the event loop rather than in a worker thread.

        When everything it calls lives in this process or in a local file (SQLite databases, an in-process
        policy engine) it is CPU work, and handing CPU work to a thread gains nothing under the GIL while
        the hand-offs cost: measured with bench/person_view.py, 16 concurrent person views took 4.5 ms of
        CPU each through a worker thread and 2.0 ms on the event loop. A component that waits on the network
        (PostgreSQL, an OPA server) keeps the thread, so its waits do not stall the loop. Asked on every
        release: the policy engine can be swapped while the hub runs.
        """
        return (
            self.store.engine.dialect.name == "sqlite"
            and self.protector.keys.engine.dialect.name == "sqlite"
            and bool(getattr(self.decisions.engine, "in_process", False))
        )

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` on the event loop or in a worker thread, as :attr:`on_loop` says."""
        if self.on_loop:
            return work(*args)
        return await asyncio.to_thread(work, *args)

    # -- the synchronous part: lookup, decisions, decryption (see ``on_loop`` for where it runs) ---------

    def _decide(
        self, query: Query, items: list[tuple[ProtectedRecord, str, str]], now: int | None = None
    ) -> tuple[list[RecordView], list[Decided]]:
        """Decide every (record, subject ID, pseudonym), then decrypt or mask what policy lets through.

        A record's decision inputs are its dataset (and so its owner), its subject and the subject's
        jurisdiction; everything else comes from the query. Records that share those three share one decision,
        found by a plain tuple key before any request object is built (a resident may have dozens of records).
        """
        moment = int(time.time()) if now is None else now
        p = query.principal
        assigned = query.case_id is not None and self.cases.is_assigned(query.case_id, p.id, p.agency)
        emergency = (
            Emergency(query.emergency_reason, moment, moment + EMERGENCY_SECONDS) if query.emergency_reason else None
        )
        taken: dict[tuple[str, str, str], tuple[DecisionRequest, PolicyDecision]] = {}
        counts: dict[tuple[str, str, str], int] = {}
        chosen: list[PolicyDecision] = []
        today = date.today()
        for record, id_number, pseudonym in items:
            district = record.clear_fields.get("district")
            key = (record.dataset_id, str(district) if district else id_number[:6], pseudonym)
            known = taken.get(key)
            if known is None:
                dataset = self.catalog.dataset(record.dataset_id)
                minor = age_on(id_number, today) < MINOR_AGE
                request = DecisionRequest(
                    principal=p,
                    record=RecordContext(dataset.id, dataset.owner, key[1], minor, pseudonym),
                    purpose=query.purpose,
                    case_id=query.case_id,
                    case_assigned=assigned,
                    emergency=emergency,
                    request_id=query.request_id,
                )
                decision = self.decisions.evaluate(request)
                if decision.policy == "fail-closed":
                    raise ServiceUnavailable("policy")
                known = taken[key] = (request, decision)
                counts[key] = 0
            counts[key] += 1
            chosen.append(known[1])
        try:
            views = [self._view(item[0], d) for item, d in zip(items, chosen, strict=True)]
        except KeystoreUnavailable:
            raise ServiceUnavailable("keys") from None
        return views, [Decided(r, d, counts[k]) for k, (r, d) in taken.items()]

    def prepare(self, query: Query) -> tuple[Release, list[Decided]]:
        """The person view, decided and decrypted in memory; nothing is handed out before :meth:`commit`."""
        id_number = normalise_id_number(query.id_number)
        try:
            pseudonym = self.evidence.pseudonym(id_number)
            records = self.store.by_subject(self.protector.subject_index(id_number), query.datasets)
        except KeystoreUnavailable:
            raise ServiceUnavailable("keys") from None
        records.sort(key=lambda r: (r.dataset_id, r.record_key))
        views, decided = self._decide(query, [(r, id_number, pseudonym) for r in records])
        return Release(pseudonym, views), decided

    def prepare_feed(self, query: Query, records: list[ProtectedRecord]) -> tuple[Release, list[Decided]]:
        """A page of a dataset's feed: each live record decided for its own subject."""
        items = []
        try:
            for record in records:
                if record.deleted:
                    continue
                subject_field = self.catalog.dataset(record.dataset_id).subject_field
                raw = self.protector.reveal(record, {subject_field}).get(subject_field)
                if not isinstance(raw, str):
                    continue  # an erased subject: nothing to decide about, nothing to release
                id_number = normalise_id_number(raw)
                items.append((record, id_number, self.evidence.pseudonym(id_number)))
        except KeystoreUnavailable:
            raise ServiceUnavailable("keys") from None
        views, decided = self._decide(query, items)
        return Release("", views), decided

    def _view(self, record: ProtectedRecord, decision: PolicyDecision) -> RecordView:
        dataset = self.catalog.dataset(record.dataset_id)
        shown: dict[str, FieldView] = {}  # a refused record shows no field at all
        new = tuple.__new__
        if decision.allow:
            wanted = {n for n, o in decision.fields.items() if o in ("reveal", "mask")}
            values = self.protector.reveal(record, wanted)
            reasons = _field_reasons(decision)
            for definition in dataset.fields:
                name = definition.name
                outcome = decision.fields.get(name, "deny")
                if outcome == "reveal":
                    value = values.get(name)
                    shown[name] = new(
                        FieldView,
                        ("reveal", _plain(value), "erased (crypto-shredded)" if isinstance(value, Erased) else None),
                    )
                elif outcome == "mask":
                    value = values.get(name)
                    masked = (
                        None
                        if value is None or isinstance(value, Erased)
                        else value
                        if definition.mask is MaskType.NONE
                        else self.protector.masker.mask(definition.mask, value)
                    )
                    shown[name] = new(FieldView, ("mask", masked, reasons.get(name, "masked by policy")))
                else:
                    shown[name] = new(FieldView, ("deny", None, reasons.get(name, "not revealed by policy")))
        return new(  # every field, in order (see FieldView)
            RecordView,
            (
                record.dataset_id,
                record.record_key,
                dataset.owner,
                record.version,
                decision.allow,
                decision.policy,
                decision.reasons,
                decision.obligations,
                shown,
            ),
        )

    # -- the asynchronous part: durable evidence before anything is handed over -----------------------

    @staticmethod
    def payload(views: Sequence[RecordView]) -> list[dict[str, Any]]:
        return [
            {
                "dataset": v.dataset,
                "record_key": v.record_key,
                "version": v.version,
                "fields": {n: {"outcome": f.outcome, "value": f.value} for n, f in v.fields.items()},
            }
            for v in views
            if v.allow
        ]

    async def commit(self, release: Release, query: Query, decided: list[Decided]) -> Release:
        p = query.principal
        released = [v for v in release.records if v.allow]
        digest = "sha256:" + hashlib.sha256(canonical_json(self.payload(released))).hexdigest()
        release_entry = EntryDraft(
            type="data.release",
            actor=Actor(agency=p.agency, principal=p.id, role=p.role),
            purpose=query.purpose,
            case=query.case_id,
            subject=release.subject or None,
            request_id=query.request_id,
            payload_digest=digest,
            fields_released=tuple(
                sorted({f"{v.dataset}.{n}" for v in released for n, f in v.fields.items() if f.outcome == "reveal"})
            ),
            detail={
                "channel": query.channel,
                "records_considered": len(release.records),
                "records_released": len(released),
                "break_glass": any("post_hoc_review" in v.obligations for v in released),
            },
        )
        # The decision entries also feed the residents' access index, in the same transaction (see
        # hub.store.access_index), and the release entry carries the agreements' use counters as its effect:
        # once these appends return, the evidence, the index and the counters are all durable, together.
        drafts = [self.decisions.entry(d.request, d.decision, d.records) for d in decided]
        used = _agreement_uses(decided)
        counter = self.decisions.agreements.uses(used) if used else None
        try:
            sealed = await self.evidence.log.append_all_async([*((d, None) for d in drafts), (release_entry, counter)])
        except AuditUnavailable:
            raise ServiceUnavailable("audit") from None
        release.decision_seqs = [s.seq for s in sealed[:-1]]
        release.release_seq = sealed[-1].seq
        release.payload_digest = digest
        if query.emergency_reason and any(
            d.decision.allow and "post_hoc_review" in d.decision.obligations for d in decided
        ):
            await self.run(self._open_review, release, query, sealed[-1].seq)
        return release

    def _open_review(self, release: Release, query: Query, release_seq: int) -> None:
        """Break-glass: the post-hoc review of an emergency release, opened once its evidence is durable."""
        p = query.principal
        reason = query.emergency_reason or ""
        task = self.reviews.open(p.agency, p.id, query.purpose, reason, release_seq, query.request_id or "")
        release.review_task = task.id

    async def release(self, query: Query) -> Release:
        release, decided = await self.run(self.prepare, query)
        return await self.commit(release, query, decided)

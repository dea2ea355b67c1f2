"""Policy-gated release of records: decide per record, decrypt or mask per field, audit, then hand over.

The order is the guarantee. Every decision is taken first (nothing decrypted yet); the fields policy
reveals are decrypted and the masked ones masked, in memory; then one ``data.release`` entry, holding the
query's decisions and the digest of exactly what is released, is appended and awaited until durable; only
then does the caller get the result. If the policy engine, the key store or the audit
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
from hub.store import RecordStore, jurisdiction_of
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


class Refusal(NamedTuple):
    """Records of one dataset refused for the same reasons: how many, never which (no record data)."""

    dataset: str
    reasons: tuple[str, ...]
    records: int


@dataclass
class Release:
    """What a query releases, and the evidence of it.

    ``records`` are the released records only. Refused ones are counted in ``refusals`` by dataset and
    reasons: a person view decides before it reads, so a refused record is never loaded at all.
    """

    subject: str  # the subject's audit pseudonym
    records: list[RecordView]
    refusals: list[Refusal] = field(default_factory=list)
    step_up_required: bool = False  # some decision of the query asks for a multi-factor token
    release_seq: int = -1  # the query's one audit entry: its decisions and its release
    payload_digest: str = ""
    review_task: int | None = None

    @property
    def refused(self) -> int:
        return sum(r.records for r in self.refusals)

    @property
    def considered(self) -> int:
        return len(self.records) + self.refused


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


@dataclass(slots=True)
class Decided:
    """One policy decision and how many of the query's records it covers (released or refused).

    Records whose decision inputs are identical (same dataset, owner, subject, jurisdiction and age
    bracket, within one query) get the same decision, so they are decided once and recorded once, as one
    of the ``decisions`` of the query's entry, counting them: the log holds every decision, not copies of it.
    ``records`` grows while the query counts them (see :class:`_Tally`).
    """

    request: DecisionRequest
    decision: PolicyDecision
    records: int = 0


class _Tally:
    """One query's decisions, by their inputs: (dataset, jurisdiction) of a subject, for one principal,
    purpose, case and emergency. Each is taken once, however many records it covers."""

    def __init__(self, service: ReleaseService, query: Query, assigned: bool, emergency: Emergency | None) -> None:
        self.service = service
        self.query = query
        self.assigned = assigned
        self.emergency = emergency
        self.today = date.today()
        self.taken: dict[tuple[str, str, str], Decided] = {}

    def decide(self, key: tuple[str, str, str], id_number: str) -> Decided:
        """The decision for records of dataset ``key[0]`` in jurisdiction ``key[1]`` about the subject whose
        pseudonym is ``key[2]`` and whose ID number is ``id_number``."""
        known = self.taken.get(key)
        if known is not None:
            return known
        q = self.query
        pseudonym = key[2]
        dataset = self.service.catalog.dataset(key[0])
        minor = age_on(id_number, self.today) < MINOR_AGE
        request = DecisionRequest(
            principal=q.principal,
            record=RecordContext(dataset.id, dataset.owner, key[1], minor, pseudonym),
            purpose=q.purpose,
            case_id=q.case_id,
            case_assigned=self.assigned,
            emergency=self.emergency,
            request_id=q.request_id,
        )
        decision = self.service.decisions.evaluate(request)
        if decision.policy == "fail-closed":
            raise ServiceUnavailable("policy")
        known = self.taken[key] = Decided(request, decision)
        return known

    def release(self, subject: str, views: list[RecordView]) -> tuple[Release, list[Decided]]:
        """The release of ``views`` with the refusals and decisions counted; a decision that came to cover no
        record (its records went between the count and the read) is no decision about any record."""
        decided = [d for d in self.taken.values() if d.records]
        refused: dict[tuple[str, tuple[str, ...]], int] = {}
        for d in decided:
            if not d.decision.allow:
                group = (d.request.record.dataset, d.decision.reasons)
                refused[group] = refused.get(group, 0) + d.records
        refusals = [tuple.__new__(Refusal, (dataset, reasons, n)) for (dataset, reasons), n in refused.items()]
        step_up = any("step_up_required" in d.decision.obligations for d in decided)
        return Release(subject, views, refusals, step_up), decided


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

    def _tally(self, query: Query, now: int | None = None) -> _Tally:
        moment = int(time.time()) if now is None else now
        p = query.principal
        assigned = query.case_id is not None and self.cases.is_assigned(query.case_id, p.id, p.agency)
        emergency = (
            Emergency(query.emergency_reason, moment, moment + EMERGENCY_SECONDS) if query.emergency_reason else None
        )
        return _Tally(self, query, assigned, emergency)

    def prepare(self, query: Query) -> tuple[Release, list[Decided]]:
        """The person view, decided and decrypted in memory; nothing is handed out before :meth:`commit`.

        Decided before anything is read: the subject's records are counted by dataset and jurisdiction (the
        only record facts a decision depends on), each group is decided, and only the datasets with an
        allowed group are read and decrypted. A refused record's row, blob and clear fields never leave the
        database. A record stored between the count and the read is decided on its own when it is read.
        """
        id_number = normalise_id_number(query.id_number)
        try:
            pseudonym = self.evidence.pseudonym(id_number)
            index = self.protector.subject_index(id_number)
        except KeystoreUnavailable:
            raise ServiceUnavailable("keys") from None
        wanted = None if query.datasets is None else set(query.datasets)
        tally = self._tally(query)
        counted: set[tuple[str, str, str]] = set()  # refused groups, counted by the database's own count
        for group in self.store.subject_groups(index):
            if wanted is not None and group.dataset_id not in wanted:
                continue
            key = (group.dataset_id, group.jurisdiction or id_number[:6], pseudonym)
            decided = tally.decide(key, id_number)
            if not decided.decision.allow:
                decided.records += group.records
                counted.add(key)
        shown = sorted({key[0] for key, d in tally.taken.items() if d.decision.allow})
        records = self.store.by_subject(index, shown) if shown else []
        records.sort(key=lambda r: (r.dataset_id, r.record_key))
        views: list[RecordView] = []
        try:
            for record in records:
                key = (record.dataset_id, jurisdiction_of(record) or id_number[:6], pseudonym)
                decided = tally.decide(key, id_number)
                if decided.decision.allow:
                    decided.records += 1
                    views.append(self._view(record, decided.decision))
                elif key not in counted:
                    decided.records += 1
        except KeystoreUnavailable:
            raise ServiceUnavailable("keys") from None
        return tally.release(pseudonym, views)

    def prepare_feed(self, query: Query, records: list[ProtectedRecord]) -> tuple[Release, list[Decided]]:
        """A page of a dataset's feed: each live record decided for its own subject."""
        tally = self._tally(query)
        views: list[RecordView] = []
        try:
            for record in records:
                if record.deleted:
                    continue
                subject_field = self.catalog.dataset(record.dataset_id).subject_field
                raw = self.protector.reveal(record, {subject_field}).get(subject_field)
                if not isinstance(raw, str):
                    continue  # an erased subject: nothing to decide about, nothing to release
                id_number = normalise_id_number(raw)
                key = (record.dataset_id, jurisdiction_of(record) or id_number[:6], self.evidence.pseudonym(id_number))
                decided = tally.decide(key, id_number)
                decided.records += 1
                if decided.decision.allow:
                    views.append(self._view(record, decided.decision))
        except KeystoreUnavailable:
            raise ServiceUnavailable("keys") from None
        return tally.release("", views)

    def _view(self, record: ProtectedRecord, decision: PolicyDecision) -> RecordView:
        """A released record, field by field: decrypted, masked or withheld with the reason."""
        dataset = self.catalog.dataset(record.dataset_id)
        shown: dict[str, FieldView] = {}
        new = tuple.__new__
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
        ]

    async def commit(self, release: Release, query: Query, decided: list[Decided]) -> Release:
        p = query.principal
        released = release.records
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
            decisions=tuple(self.decisions.query_item(d.request, d.decision, d.records) for d in decided),
            detail={
                "channel": query.channel,
                "records_considered": release.considered,
                "records_released": len(released),
                "break_glass": any("post_hoc_review" in v.obligations for v in released),
            },
        )
        # One entry for the query: its decisions and its release are taken together and recorded together
        # (see audit.entries.QueryDecision). The entry's decisions feed the residents' access index in the
        # same transaction (see hub.store.access_index), and the entry carries the agreements' use counters as
        # its effect: once the append returns, the evidence, the index and the counters are durable together.
        used = _agreement_uses(decided)
        counter = self.decisions.agreements.uses(used) if used else None
        try:
            (sealed,) = await self.evidence.log.append_all_async([(release_entry, counter)])
        except AuditUnavailable:
            raise ServiceUnavailable("audit") from None
        release.release_seq = sealed.seq
        release.payload_digest = digest
        if query.emergency_reason and any(
            d.decision.allow and "post_hoc_review" in d.decision.obligations for d in decided
        ):
            await self.run(self._open_review, release, query, sealed.seq)
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

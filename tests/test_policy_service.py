"""Agreements, consents, roles and audited decisions through the hub's policy runtime, on both databases."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from audit.entries import Actor
from hub.catalog import load_catalog
from hub.evidence import Evidence, open_audit_log
from hub.policy import PolicyRuntime
from hub.protection import open_key_service
from hub.settings import load_settings
from policies.agreements import Principal
from policies.decide import DecisionRequest, Emergency, PrincipalContext, RecordContext
from policies.engines import OpaServerEngine
from policies.errors import AgreementError, PolicyInputError, PolicyUnavailable, SeparationOfDuties
from policies.roles import RoleService

NOW = 1795000000
SUBJECT = "ab" * 32
OFFICER = PrincipalContext("P-0042", "police", "investigator", "110105", mfa=True)
POLICE_ADMIN = Principal("PA-1", "police", "agency_admin")
HEALTH_ADMIN = Principal("HA-1", "health", "agency_admin")
RECORD = RecordContext("health.visit", "health", "110105", False, SUBJECT)


@pytest.fixture
def runtime(tmp_path: Path, database_url: str) -> Iterator[tuple[PolicyRuntime, Evidence]]:
    settings = load_settings(var_dir=tmp_path, database_url=database_url, master_key=os.urandom(32).hex())
    keys = open_key_service(settings, create=True)
    log = open_audit_log(settings, keys, interval=False)
    evidence = Evidence(log, keys)
    runtime = PolicyRuntime.open(settings, load_catalog(), evidence)
    runtime.agreements.clock = runtime.decisions.clock = runtime.consents.clock = lambda: NOW
    runtime.roles.assign("P-0042", "investigator", "police")
    runtime.roles.assign("PA-1", "agency_admin", "police")
    runtime.roles.assign("HA-1", "agency_admin", "health")
    yield runtime, evidence
    log.close()


def _agreement(
    runtime: PolicyRuntime, basis: str = "statutory_duty", purposes: tuple[str, ...] = ("missing_person",)
) -> str:
    row = runtime.agreements.request(
        POLICE_ADMIN,
        provider="health",
        dataset="health.visit",
        fields=["visit_no", "patient_name", "hospital", "visit_time", "diagnosis"],
        purposes=list(purposes),
        lawful_basis=basis,  # type: ignore[arg-type]
        legal_citation="PIPL 13(3); People's Police Law 6" if basis == "statutory_duty" else "",
        necessity="locate missing elderly residents",
        valid_from=NOW - 100,
        valid_until=NOW + 86400,
    )
    runtime.agreements.approve(row.id, HEALTH_ADMIN)
    runtime.agreements.activate(row.id, HEALTH_ADMIN)
    return row.id


def _entries(evidence: Evidence) -> list[dict[str, Any]]:
    return [json.loads(b) for b in evidence.log.bodies(0, evidence.log.size)]


def test_lifecycle_and_who_may_move_it(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    rt, evidence = runtime
    row = rt.agreements.request(
        POLICE_ADMIN,
        provider="health",
        dataset="health.visit",
        fields=["visit_no"],
        purposes=["missing_person"],
        lawful_basis="statutory_duty",
        legal_citation="PIPL 13(3)",
        valid_from=NOW,
        valid_until=NOW + 10,
    )
    assert row.status == "requested"
    with pytest.raises(AgreementError, match="only an agency admin of the provider"):
        rt.agreements.approve(row.id, POLICE_ADMIN)
    with pytest.raises(AgreementError, match="written reason"):
        rt.agreements.reject(row.id, HEALTH_ADMIN, "  ")
    with pytest.raises(AgreementError, match="cannot become active"):
        rt.agreements.activate(row.id, HEALTH_ADMIN)
    rt.agreements.approve(row.id, HEALTH_ADMIN)
    rt.agreements.activate(row.id, HEALTH_ADMIN)
    rt.agreements.pause(row.id, HEALTH_ADMIN, "audit of use")
    assert rt.agreements.resume(row.id, HEALTH_ADMIN).status == "active"
    rt.agreements.clock = lambda: NOW + 10
    assert rt.agreements.expire_due(Principal("system", "hub", "operator")) == [row.id]
    with pytest.raises(AgreementError, match="is expired"):
        rt.agreements.resume(row.id, HEALTH_ADMIN)
    changes = [e for e in _entries(evidence) if e["type"] == "agreement.change"]
    assert [c["detail"]["to"] for c in changes] == ["requested", "approved", "active", "paused", "active", "expired"]


def test_use_counters_add_each_agreements_own_increments(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    """One constant upsert, run once an agreement: different increments in one call land on their own rows."""
    rt, _ = runtime
    first, second = _agreement(rt), _agreement(rt, purposes=("fraud_warning",))
    rt.agreements.count_uses({second: (1, 5), first: (2, 3)})
    rt.agreements.count_uses({first: (1, 1)})
    with rt.agreements.uses_engine.begin() as connection:  # in a caller's (the audit log's) transaction
        rt.agreements.count_uses({second: (4, 0)}, connection)
    used = {r["agreement"]: (r["decisions"], r["records_released"]) for r in rt.agreements.usage_report()}
    assert used == {first: (3, 4), second: (5, 5)}


def test_a_case_is_assigned_only_while_open_in_the_principals_agency(database_url: str) -> None:
    from hub.store import create_store_engine, init_schema
    from policies.cases import CaseRegistry

    engine = create_store_engine(database_url)
    init_schema(engine)
    cases = CaseRegistry(engine, None)
    admin = Actor(agency="police", principal="PA-1", role="agency_admin")
    cases.open("CASE-2026-0001", "police", admin)
    cases.assign("CASE-2026-0001", "P-0042", admin)
    assert cases.is_assigned("CASE-2026-0001", "P-0042", "police")
    assert not cases.is_assigned("CASE-2026-0001", "P-0043", "police")  # not listed
    assert not cases.is_assigned("CASE-2026-0001", "P-0042", "health")  # another agency's officer
    assert not cases.is_assigned("CASE-2026-0002", "P-0042", "police")  # no such case
    cases.close("CASE-2026-0001", admin)
    assert not cases.is_assigned("CASE-2026-0001", "P-0042", "police")  # closed
    engine.dispose()


def test_bad_input_names_the_offending_value(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    rt, _ = runtime
    with pytest.raises(PolicyInputError, match=r"fields not in the catalog of health\.visit: insurance_card_no"):
        rt.agreements.request(
            POLICE_ADMIN,
            provider="health",
            dataset="health.visit",
            fields=["insurance_card_no"],
            purposes=["missing_person"],
            lawful_basis="statutory_duty",
            legal_citation="x",
            valid_from=NOW,
            valid_until=NOW + 1,
        )
    with pytest.raises(PolicyInputError, match="unknown purpose code 'curiosity'"):
        rt.decisions.decide(DecisionRequest(OFFICER, RECORD, "curiosity"))
    with pytest.raises(PolicyInputError, match="malformed case id 'case 7'"):
        rt.decisions.decide(DecisionRequest(OFFICER, RECORD, "fraud_investigation", case_id="case 7"))
    with pytest.raises(PolicyInputError, match="needs its legal citation"):
        rt.agreements.request(
            POLICE_ADMIN,
            provider="health",
            dataset="health.visit",
            fields=["visit_no"],
            purposes=["missing_person"],
            lawful_basis="statutory_duty",
            valid_from=NOW,
            valid_until=NOW + 1,
        )


def test_decisions_are_audited_permit_and_deny(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    rt, evidence = runtime
    agreement = _agreement(rt)
    permit = rt.decisions.decide(DecisionRequest(OFFICER, RECORD, "missing_person", request_id="req-1"))
    assert permit.allow and permit.fields["diagnosis"] == "reveal" and permit.fields["patient_id_number"] == "deny"
    deny = rt.decisions.decide(DecisionRequest(OFFICER, RECORD, "fraud_warning", request_id="req-2"))
    assert not deny.allow
    decisions = [e for e in _entries(evidence) if e["type"] == "access.decision"]
    assert [d["decision"]["result"] for d in decisions] == ["permit", "deny"]
    assert decisions[0]["fields_released"] == ["diagnosis", "hospital", "patient_name", "visit_no", "visit_time"]
    assert decisions[0]["subject"] == SUBJECT and decisions[1]["request_id"] == "req-2"
    assert decisions[1]["decision"]["reasons"] == [
        f"PIPL-6-purpose: purpose fraud_warning is not among the purposes of agreement {agreement}"
    ]
    assert rt.agreements.use_counts([agreement])[agreement][0] == 1


def test_roles_gate_and_separation_of_duties(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    rt, _ = runtime
    stranger = PrincipalContext("X-9", "police", "officer", "110105")
    decision = rt.decisions.decide(DecisionRequest(stranger, RECORD, "missing_person"))
    assert not decision.allow and decision.reasons[0].startswith("RBAC: X-9 holds no role in police")
    with pytest.raises(SeparationOfDuties):
        rt.roles.assign("HA-1", "auditor", "civil_affairs")
    with pytest.raises(PolicyInputError, match="unknown role 'superuser'"):
        rt.roles.assign("X-9", "superuser", "police")


def test_the_roles_a_principal_holds_follow_assignments_here_and_in_other_processes(
    runtime: tuple[PolicyRuntime, Evidence], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, _ = runtime
    assert ("officer", "health") not in rt.roles.roles_of("X-7")
    rt.roles.assign("X-7", "officer", "health")
    assert ("officer", "health") in rt.roles.roles_of("X-7")  # remembered, and forgotten on a change
    other = RoleService(rt.roles.engine)  # another API worker on the same store
    assert ("officer", "health") in other.roles_of("X-7")
    rt.roles.revoke("X-7", "officer", "health")
    assert ("officer", "health") not in rt.roles.roles_of("X-7")
    monkeypatch.setattr("policies.roles.RELOAD_CHECK_SECONDS", 0.0)  # the other worker's next check is due
    assert ("officer", "health") not in other.roles_of("X-7")


def test_separation_of_duties_holds_against_another_workers_assignment_a_moment_ago(
    runtime: tuple[PolicyRuntime, Evidence],
) -> None:
    rt, _ = runtime
    other = RoleService(rt.roles.engine)  # another API worker on the same store
    assert rt.roles.roles_of("X-8") == frozenset()  # this worker's copy, not due for a reload check yet
    other.assign("X-8", "auditor", "civil_affairs")
    with pytest.raises(SeparationOfDuties):
        rt.roles.assign("X-8", "agency_admin", "police")
    assert ("agency_admin", "police") not in other.roles_of("X-8")


def test_two_workers_giving_conflicting_roles_at_once_leave_one_of_them(
    runtime: tuple[PolicyRuntime, Evidence],
) -> None:
    rt, _ = runtime
    workers = [RoleService(rt.roles.engine), RoleService(rt.roles.engine)]
    for n in range(5):
        principal = f"X-2{n}"
        start = threading.Barrier(2)
        refused: list[Any] = []

        def give(worker: RoleService, principal: str, role: str, start: threading.Barrier, refused: list[Any]) -> None:
            start.wait()
            try:
                worker.assign(principal, role, "police")
            except SeparationOfDuties as error:
                refused.append(error)

        threads = [
            threading.Thread(target=give, args=(workers[0], principal, "auditor", start, refused)),
            threading.Thread(target=give, args=(workers[1], principal, "agency_admin", start, refused)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        held = {role for role, _ in RoleService(rt.roles.engine).roles_of(principal)}
        assert len(refused) == 1 and len(held) == 1 and held <= {"auditor", "agency_admin"}


def test_a_change_here_does_not_hide_a_change_made_elsewhere(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    rt, _ = runtime
    other = RoleService(rt.roles.engine)
    assert not rt.roles.check("X-10", "health", "records", "read")
    other.assign("X-10", "officer", "health")  # this worker has not seen it yet
    rt.roles.assign("X-11", "officer", "health")  # its own change moves the version past the other's
    assert rt.roles.check("X-10", "health", "records", "read")
    assert rt.roles.check("X-11", "health", "records", "read")


def test_assignments_refused_together_leave_nothing_behind(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    rt, _ = runtime
    with pytest.raises(SeparationOfDuties):
        rt.roles.assign_all(
            [("X-12", "officer", "police"), ("X-12", "agency_admin", "police"), ("X-12", "auditor", "police")]
        )
    assert rt.roles.roles_of("X-12") == frozenset()
    assert RoleService(rt.roles.engine).roles_of("X-12") == frozenset()


def test_installing_an_installed_agency_again_changes_nothing(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    rt, _ = runtime
    version = rt.roles._stored_version()
    rt.roles.install_agency("police")  # every start does this for every agency
    assert rt.roles._stored_version() == version  # so other workers have nothing to reload
    rt.roles.install_agency("new_agency")
    assert rt.roles._stored_version() == version + 1
    assert RoleService(rt.roles.engine).enforcer.has_policy("officer", "new_agency", "records", "read")


def test_consent_withdrawal_and_scope_change(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    rt, evidence = runtime
    rt.roles.assign("C-1", "community_officer", "civil_affairs")
    rt.roles.assign("CA-1", "agency_admin", "civil_affairs")
    requester = Principal("CA-1", "civil_affairs", "agency_admin")
    row = rt.agreements.request(
        requester,
        provider="health",
        dataset="health.visit",
        fields=["visit_no", "patient_name", "diagnosis"],
        purposes=["welfare_check"],
        lawful_basis="consent",
        valid_from=NOW - 10,
        valid_until=NOW + 1000,
    )
    rt.agreements.approve(row.id, HEALTH_ADMIN)
    rt.agreements.activate(row.id, HEALTH_ADMIN)
    counter = Actor(agency="civil_affairs", principal="counter-7", role="agency_admin")
    for kind in ("separate_provision", "separate_sensitive"):
        rt.consents.grant(SUBJECT, row.id, kind, ["welfare_check"], 1, "notice v3 text", "counter", counter)
    officer = PrincipalContext("C-1", "civil_affairs", "community_officer", "110105", mfa=True)
    assert rt.decisions.decide(DecisionRequest(officer, RECORD, "welfare_check")).fields["diagnosis"] == "reveal"
    rt.consents.withdraw(SUBJECT, row.id, "separate_sensitive", "app", counter)
    after = rt.decisions.decide(DecisionRequest(officer, RECORD, "welfare_check"))
    assert after.fields["diagnosis"] == "deny" and after.fields["patient_name"] == "reveal"
    rt.agreements.change_scope(row.id, requester, fields=["visit_no", "patient_name", "diagnosis", "visit_time"])
    assert rt.agreements.get(row.id).scope_version == 2 and rt.agreements.get(row.id).status == "requested"
    history = rt.consents.history(SUBJECT)
    assert [h.action for h in history] == ["grant", "grant", "withdraw"]
    assert history[0].notice_hash.startswith("sha256:") and history[0].channel == "counter"
    assert sum(1 for e in _entries(evidence) if e["type"] == "consent.change") == 3


def test_a_remembered_decision_is_the_one_the_engine_gives(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    """Within one second (the clock is fixed here) a repeat is answered from memory, but a changed consent
    or agreement is a different input, never a stale answer; another engine starts with nothing."""
    rt, _ = runtime
    agreement = _agreement(rt)
    request = DecisionRequest(OFFICER, RECORD, "missing_person")
    first = rt.decisions.evaluate(request)
    assert first.allow and rt.decisions.evaluate(request) is first
    assert rt.decisions.evaluate(replace(request, request_id="another")) is first  # not an input of the policy
    rt.agreements.pause(agreement, HEALTH_ADMIN, "audit of use")
    paused = rt.decisions.evaluate(request)
    assert not paused.allow
    rt.agreements.resume(agreement, HEALTH_ADMIN)
    assert rt.decisions.evaluate(request) == first
    counter = Actor(agency="health", principal="counter-1", role="agency_admin")
    rt.consents.grant(SUBJECT, agreement, "general", ["missing_person"], 1, "notice", "counter", counter)
    with_consent = rt.decisions.evaluate(request)
    assert with_consent is not first  # the consent is part of the input, so it is decided again
    engine = rt.decisions.engine
    rt.decisions.engine = OpaServerEngine("http://127.0.0.1:9")
    assert rt.decisions.evaluate(request).policy == "fail-closed"
    rt.decisions.engine = engine
    assert rt.decisions.evaluate(request) == with_consent


def test_what_a_decision_is_remembered_by_covers_its_whole_policy_input(
    runtime: tuple[PolicyRuntime, Evidence],
) -> None:
    """Change any part of the request or of what the decision reads: the key changes exactly when the
    policy's input does, so a remembered decision is always the engine's answer to the same input."""
    rt, _ = runtime
    agreement = _agreement(rt)
    decisions = rt.decisions
    base = DecisionRequest(OFFICER, RECORD, "missing_person", case_id="CASE-2026-0001", case_assigned=True)

    def facts_and_input(request: DecisionRequest) -> tuple[Any, Any]:
        facts = decisions._facts(request)
        return decisions._remembered_as(request, facts), json.dumps(decisions._document(request, facts))

    variants = [
        replace(base, principal=replace(OFFICER, id="P-0043")),
        replace(base, principal=replace(OFFICER, agency="health")),
        replace(base, principal=replace(OFFICER, role="analyst")),
        replace(base, principal=replace(OFFICER, jurisdiction="110108")),
        replace(base, principal=replace(OFFICER, training_valid=False)),
        replace(base, principal=replace(OFFICER, mfa=False)),
        replace(base, action="export"),
        replace(base, purpose="fraud_warning"),
        replace(base, case_id="CASE-2026-0002"),
        replace(base, case_assigned=False),
        replace(base, case_id=None),
        replace(base, record=replace(RECORD, dataset="police.incident")),
        replace(base, record=replace(RECORD, owner="police")),
        replace(base, record=replace(RECORD, subject_jurisdiction="110108")),
        replace(base, record=replace(RECORD, subject_minor_under_14=True)),
        replace(base, emergency=Emergency("elderly missing", NOW - 60, NOW + 3600)),
        replace(base, record=replace(RECORD, subject_pseudonym="cd" * 32)),  # not in the input: same key
        replace(base, request_id="r-2"),  # not in the input either
    ]
    key, document = facts_and_input(base)
    for variant in variants:
        other_key, other_document = facts_and_input(variant)
        assert (other_key != key) == (other_document != document), variant
    unchanged = [facts_and_input(base)]
    decisions.clock = lambda: NOW + 1
    unchanged.append(facts_and_input(base))
    decisions.clock = lambda: NOW
    rt.agreements.pause(agreement, HEALTH_ADMIN, "audit of use")
    unchanged.append(facts_and_input(base))
    counter = Actor(agency="health", principal="counter-1", role="agency_admin")
    rt.agreements.resume(agreement, HEALTH_ADMIN)
    rt.consents.grant(SUBJECT, agreement, "general", ["missing_person"], 1, "notice", "counter", counter)
    unchanged.append(facts_and_input(base))
    assert unchanged[0] == (key, document)
    for other_key, other_document in unchanged[1:]:
        assert other_key != key and other_document != document


def test_break_glass_is_audited_for_post_hoc_review(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    rt, evidence = runtime
    request = DecisionRequest(
        OFFICER, RECORD, "missing_person", emergency=Emergency("elderly missing", NOW - 60, NOW + 3600)
    )
    decision = rt.decisions.decide(request)
    assert decision.allow and "post_hoc_review" in decision.obligations
    entry = [e for e in _entries(evidence) if e["type"] == "access.decision"][-1]
    assert entry["detail"]["break_glass"] is True


def test_an_unreachable_policy_engine_fails_closed(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    rt, evidence = runtime
    _agreement(rt)
    with pytest.raises(PolicyUnavailable):
        OpaServerEngine("http://127.0.0.1:9", upload={"x.rego": "package x"})
    rt.decisions.engine = OpaServerEngine("http://127.0.0.1:9")
    decision = rt.decisions.decide(DecisionRequest(OFFICER, RECORD, "missing_person"))
    assert (
        not decision.allow and decision.fields == {} and decision.reasons == ("policy engine unavailable: fail closed",)
    )
    assert _entries(evidence)[-1]["decision"]["result"] == "deny"


def test_uses_counted_before_the_counters_moved_still_count(runtime: tuple[PolicyRuntime, Evidence]) -> None:
    """An agreement row's own counters (from before ``agreement_use``) add to the ones kept with the log."""
    rt, _ = runtime
    agreement = _agreement(rt)
    with rt.agreements.engine.begin() as connection:
        connection.exec_driver_sql(
            f"UPDATE sharing_agreement SET decisions = 2, records_released = 7 WHERE id = '{agreement}'"  # noqa: S608
        )
    rt.agreements.count_uses({agreement: (1, 3)})
    assert rt.agreements.use_counts([agreement]) == {agreement: (3, 10)}

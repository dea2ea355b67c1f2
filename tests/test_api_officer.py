"""Officers over OIDC tokens: the person view, need-to-know refusals, step-up, break-glass, fail-closed release."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from hub.api.models import ReleaseOut
from tests.api_world import World

VIEW = "/v1/officer/person-view"
CASE = "CASE-2026-0417"


def entries(world: World, since: int) -> list[dict[str, Any]]:
    log = world.hub.evidence.log
    return [json.loads(b) for b in log.bodies(since, log.size)]


def view(world: World, headers: dict[str, str], **body: Any) -> Any:
    return world.client.post(VIEW, json={"id_number": world.resident, **body}, headers=headers)


def investigator(world: World, **kw: Any) -> dict[str, str]:
    return world.bearer("P-0042", "police", ["investigator"], **kw)


def test_with_a_case_fields_are_revealed_masked_or_absent_with_reasons(world: World) -> None:
    answer = view(world, investigator(world, mfa=True), purpose="fraud_investigation", case_id=CASE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    registry = next(r for r in body["records"] if r["dataset"] == "civil_affairs.vulnerable_person")
    assert registry["fields"]["name"]["outcome"] == "reveal"
    assert registry["fields"]["id_number"]["value"] == world.resident  # sensitive, revealed with MFA
    assert registry["fields"]["guardian_name"] == {
        "outcome": "deny",
        "value": None,
        "reason": "not revealed: outside the agreement's fields or without a lawful basis (PIPL 13, 23, 29, 31)",
    }
    assert body["step_up"]["required"] is False


@pytest.mark.parametrize("mfa", [True, False])
def test_the_answer_is_exactly_the_documented_release_model(world: World, mfa: bool) -> None:
    """The answer is written by orjson, not through the model: it must be ReleaseOut to the letter (a dump of the
    parsed model gives back the same JSON, so no key is extra, missing or of another type), as OpenAPI says."""
    answer = view(world, investigator(world, mfa=mfa), purpose="fraud_investigation", case_id=CASE)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["records"] and body["refusals"] and body["step_up"]["required"] is not mfa
    assert ReleaseOut.model_validate(body).model_dump(mode="json") == body
    documented = world.client.get("/openapi.json").json()["paths"][VIEW]["post"]["responses"]["200"]
    assert documented["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ReleaseOut"}


def test_sensitive_fields_need_step_up(world: World) -> None:
    start = world.hub.evidence.log.size
    body = view(world, investigator(world), purpose="fraud_investigation", case_id=CASE).json()
    registry = next(r for r in body["records"] if r["dataset"] == "civil_affairs.vulnerable_person")
    assert registry["fields"]["id_number"]["outcome"] == "mask"
    assert registry["fields"]["id_number"]["value"] != world.resident
    assert registry["fields"]["category"]["outcome"] == "mask"
    assert body["step_up"] == {"required": True, "acr_values": ["urn:hub:acr:mfa"]}
    (release,) = entries(world, start)
    assert any("step_up_required" in d["obligations"] for d in release["decisions"])


def test_a_view_is_one_entry_holding_its_decisions_each_counting_its_records_and_indexed(world: World) -> None:
    start = world.hub.evidence.log.size
    body = view(world, investigator(world, mfa=True), purpose="fraud_investigation", case_id=CASE).json()
    (release,) = entries(world, start)  # the decisions and the release: one entry, one leaf
    assert release["type"] == "data.release" and release["seq"] == body["audit"]["release_seq"]
    decisions = release["decisions"]
    considered = release["detail"]["records_considered"]
    assert considered == len(body["records"]) + body["refused"]
    assert sum(d["records"] for d in decisions) == considered
    # Identical decision inputs are decided once: no two decisions of one view decide the same dataset alike.
    assert len({json.dumps(d, sort_keys=True) for d in decisions}) == len(decisions)
    subject = world.hub.evidence.pseudonym(world.resident)
    assert all(d["subject"] == subject == release["subject"] for d in decisions)
    released = {r["dataset"] for r in body["records"]}
    assert {d["dataset"] for d in decisions if d["result"] == "permit"} == released
    rows = [r for r in world.hub.accesses.rows(subject) if r.seq == release["seq"]]
    assert sorted((r.item, r.dataset, r.records, r.result) for r in rows) == [
        (i, d["dataset"], d["records"], d["result"]) for i, d in enumerate(decisions)
    ]
    assert all(r.subject == subject and r.agency == "police" and r.case_id == CASE for r in rows)


def _uses(world: World) -> tuple[int, int]:
    report = {r["agreement"]: r for r in world.hub.policy.agreements.usage_report()}
    return report[world.agreement]["decisions"], report[world.agreement]["records_released"]


def test_a_release_counts_its_agreements_uses_with_its_evidence(world: World) -> None:
    """The counters move in the audit log's own transaction, as the release entry's effect: by exactly the
    decisions the agreement allowed and the records released under them, and not at all for a refusal."""
    before = _uses(world)
    start = world.hub.evidence.log.size
    body = view(world, investigator(world, mfa=True), purpose="fraud_investigation", case_id=CASE).json()
    shared = [r for r in body["records"] if r["owner"] != "police"]  # released across agencies: under the agreement
    assert shared
    (release,) = entries(world, start)
    allowed = [d for d in release["decisions"] if d["result"] == "permit" and d["dataset"].startswith("civil")]
    after = _uses(world)
    assert after == (before[0] + len(allowed), before[1] + len(shared))
    view(world, investigator(world, mfa=True), purpose="fraud_investigation")  # no case: refused, nothing used
    assert _uses(world) == after


def test_without_a_case_the_officer_is_refused_and_it_is_audited(world: World) -> None:
    start = world.hub.evidence.log.size
    body = view(world, investigator(world, mfa=True), purpose="fraud_investigation").json()
    assert body["records"] == [] and body["refused"] > 0
    assert all(any("PIPL-13-case" in r for r in refusal["reasons"]) for refusal in body["refusals"])
    # Refusals come grouped by dataset and reasons, each with how many records it covers.
    assert sum(refusal["records"] for refusal in body["refusals"]) == body["refused"]
    assert len({(r["dataset"], tuple(r["reasons"])) for r in body["refusals"]}) == len(body["refusals"])
    (release,) = entries(world, start)  # a refusal is recorded as a release of nothing, with its decisions
    assert release["type"] == "data.release" and release["decisions"]
    assert all(d["result"] == "deny" for d in release["decisions"])
    assert sum(d["records"] for d in release["decisions"]) == body["refused"]
    assert release["detail"]["records_released"] == 0 and release["fields_released"] == []


def test_a_view_reads_only_the_records_it_releases(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decided before read: a refused record's row never leaves the database (data minimisation, PIPL 6), yet it
    is still counted, per dataset and reasons, in the answer and in the audit log."""
    store = world.hub.store
    read: list[list[str] | None] = []
    original = store.by_subject

    def recording(subject: bytes, datasets: Any = None) -> Any:
        read.append(None if datasets is None else list(datasets))
        return original(subject, datasets)

    monkeypatch.setattr(store, "by_subject", recording)
    index = world.hub.protector.subject_index(world.resident)
    held = {g.dataset_id for g in store.subject_groups(index)}

    refused = view(world, investigator(world, mfa=True), purpose="fraud_investigation").json()  # no case
    assert refused["records"] == [] and refused["refused"] == len(original(index))
    assert read == []  # nothing was released, so nothing was read

    start = world.hub.evidence.log.size
    body = view(world, investigator(world, mfa=True), purpose="fraud_investigation", case_id=CASE).json()
    released = {r["dataset"] for r in body["records"]}
    assert released and len(read) == 1 and set(read[0] or ()) == released < held
    (release,) = entries(world, start)
    considered = release["detail"]["records_considered"]
    assert considered == len(original(index)) == len(body["records"]) + body["refused"]
    assert {d["dataset"] for d in release["decisions"]} == held


def test_a_case_of_someone_else_does_not_count(world: World) -> None:
    headers = world.bearer("P-0043", "police", ["officer"], mfa=True)
    world.hub.policy.roles.assign("P-0043", "investigator", "police")
    body = view(world, headers, purpose="fraud_investigation", case_id=CASE).json()
    assert body["records"] == []


def test_an_officer_of_another_jurisdiction_is_refused(world: World) -> None:
    elsewhere = "110228" if world.district != "110228" else "110229"
    headers = investigator(world, mfa=True, jurisdiction=elsewhere)
    body = view(world, headers, purpose="fraud_investigation", case_id=CASE).json()
    assert body["records"] == []
    assert any("PIPL-6-jurisdiction" in r for refusal in body["refusals"] for r in refusal["reasons"])


@pytest.mark.parametrize(
    ("problem", "token_args"),
    [
        ("wrong-audience", {"audience": "someone-else"}),
        ("expired", {"now": int(time.time()) - 7200, "lifetime": 600}),
    ],
)
def test_bad_tokens_are_refused_and_audited(world: World, problem: str, token_args: dict[str, Any]) -> None:
    start = world.hub.evidence.log.size
    token = world.token("P-0042", "police", ["investigator"], **token_args)
    answer = world.client.post(
        VIEW,
        json={"id_number": world.resident, "purpose": "fraud_warning"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
    assert [e["type"] for e in entries(world, start)] == ["auth.failure"]


def test_a_token_from_another_issuer_key_is_refused(world: World) -> None:
    from joserfc import jwt
    from joserfc.jwk import ECKey

    forged = ECKey.generate_key("P-256", parameters={"kid": "dev-idp-1"})
    claims = {
        "iss": world.hub.tokens.issuer,
        "aud": "hub",
        "sub": "P-0042",
        "exp": int(time.time()) + 600,
        "agency": "police",
        "roles": ["investigator"],
        "jurisdiction": "110100",
    }
    token = jwt.encode({"alg": "ES256", "kid": "dev-idp-1"}, claims, forged)
    answer = world.client.post(
        VIEW,
        json={"id_number": world.resident, "purpose": "fraud_warning"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 401


def test_bad_input_names_the_offending_value_without_personal_data(world: World) -> None:
    answer = view(world, investigator(world), purpose="curiosity")
    assert answer.status_code == 400 and "curiosity" in answer.json()["detail"]
    wrong = world.resident[:-1] + ("0" if world.resident[-1] != "0" else "1")
    answer = world.client.post(VIEW, json={"id_number": wrong, "purpose": "fraud_warning"}, headers=investigator(world))
    assert answer.status_code == 400 and wrong not in answer.text


def test_break_glass_opens_a_review_a_second_person_must_close(world: World) -> None:
    headers = world.bearer("H-7", "health", ["officer"], mfa=True)
    body = view(
        world, headers, purpose="missing_person", emergency={"reason": "resident with dementia missing since 06:00"}
    ).json()
    assert body["records"] and body["review_task"] is not None
    task = body["review_task"]
    world.hub.policy.roles.assign("H-DPO", "dpo", "health")
    own = world.client.post(
        f"/v1/admin/reviews/{task}/close",
        json={"outcome": "justified", "note": "ok"},
        headers=world.bearer("H-7", "health", ["officer"]),
    )
    assert own.status_code == 403
    closed = world.client.post(
        f"/v1/admin/reviews/{task}/close",
        json={"outcome": "justified", "note": "family confirmed the search"},
        headers=world.bearer("H-DPO", "health", ["dpo"]),
    )
    assert closed.status_code == 200, closed.text


def _released_nothing(world: World, answer: Any, component: str, start: int) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json()["component"] == component
    assert world.resident not in answer.text
    assert not [e for e in entries(world, start) if e["type"] == "data.release"]


def test_fail_closed_when_the_policy_engine_is_down(world: World) -> None:
    """Decisions go to a real OPA-REST server (the OPA engine behind it); the server is then stopped."""
    from hub.synthetic.serve import serve_in_thread
    from policies.engines import OpaServerEngine, rego_sources
    from policies.opa_rest import create_app

    decisions = world.hub.policy.decisions
    embedded = decisions.engine
    try:
        with serve_in_thread(create_app()) as url:
            decisions.engine = OpaServerEngine(url, upload=rego_sources())
            answer = view(world, investigator(world, mfa=True), purpose="fraud_investigation", case_id=CASE)
            assert answer.status_code == 200 and answer.json()["records"]
        start = world.hub.evidence.log.size  # the server is stopped now
        answer = view(world, investigator(world, mfa=True), purpose="fraud_investigation", case_id=CASE)
        _released_nothing(world, answer, "policy", start)
    finally:
        decisions.engine = embedded


def test_the_release_runs_on_the_loop_only_when_nothing_it_calls_waits_on_the_network(
    world: World, postgres_url: str
) -> None:
    """SQLite and the embedded engine: CPU work, done on the event loop. An OPA server or a PostgreSQL store:
    a worker thread, and the answers are the same either way."""
    import threading

    from hub.synthetic.serve import serve_in_thread
    from policies.engines import OpaServerEngine, rego_sources
    from policies.opa_rest import create_app

    release = world.hub.release
    threads: list[str] = []
    prepare = release.prepare

    def recording(query: Any) -> Any:
        threads.append(threading.current_thread().name)
        return prepare(query)

    decisions = release.decisions
    embedded = decisions.engine
    release.prepare = recording  # type: ignore[method-assign]
    try:
        assert release.on_loop
        first = view(world, investigator(world, mfa=True), purpose="fraud_investigation", case_id=CASE).json()
        with serve_in_thread(create_app()) as url:
            decisions.engine = OpaServerEngine(url, upload=rego_sources())
            assert not release.on_loop
            second = view(world, investigator(world, mfa=True), purpose="fraud_investigation", case_id=CASE).json()
    finally:
        decisions.engine = embedded
        del release.prepare
    assert first["records"] == second["records"] and first["refused"] == second["refused"]
    loop_thread, worker_thread = threads
    assert loop_thread != worker_thread and worker_thread.startswith("asyncio_")

    from hub.store import RecordStore, create_store_engine

    sqlite_store = release.store
    release.store = RecordStore(create_store_engine(postgres_url), world.hub.catalog)
    try:
        assert not release.on_loop
    finally:
        release.store.engine.dispose()
        release.store = sqlite_store


def test_fail_closed_when_the_key_store_is_locked(tmp_path: Any) -> None:
    from tests.api_world import populate, setup_world

    for world in setup_world(populate(tmp_path, residents=40)):
        world.hub.evidence.keys.lock()
        start = world.hub.evidence.log.size
        answer = view(world, investigator(world, mfa=True), purpose="fraud_investigation", case_id=CASE)
        _released_nothing(world, answer, "keys", start)


def test_fail_closed_when_the_audit_log_is_stopped(tmp_path: Any) -> None:
    from tests.api_world import populate, setup_world

    for world in setup_world(populate(tmp_path, residents=40)):
        start = world.hub.evidence.log.size
        world.hub.evidence.log.close()
        answer = view(world, investigator(world, mfa=True), purpose="fraud_investigation", case_id=CASE)
        assert answer.status_code == 503 and answer.json()["component"] == "audit"
        assert world.resident not in answer.text
        assert world.hub.evidence.log.size == start
        assert _uses(world) == (0, 0)  # nothing released, nothing counted

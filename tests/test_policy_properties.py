"""Property tests: whatever the principals, purposes, agreements and consents, two things never happen.

1. A field of a ``not_shared`` dataset reaches another agency (revealed or masked).
2. A sensitive field is revealed without a valid lawful basis — checked by an oracle written here in
   Python, independently of the Rego — or without multi-factor authentication.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.engines import EmbeddedEngine

ENGINE = EmbeddedEngine()
NOW = 1795000000
AGENCIES = ["police", "health", "education", "civil_affairs"]
PURPOSES = [
    "missing_person",
    "emergency_rescue",
    "welfare_check",
    "fraud_warning",
    "fraud_investigation",
    "campus_safety",
]
DATASETS = {
    "health.visit": (
        "health",
        "conditional",
        {"visit_no": "none", "patient_name": "personal", "diagnosis": "sensitive"},
    ),
    "civil_affairs.access_event": (
        "civil_affairs",
        "not_shared",
        {"event_id": "none", "gate": "sensitive", "occurred_at": "sensitive"},
    ),
    "police.incident": (
        "police",
        "unconditional",
        {"incident_no": "none", "caller_name": "personal", "caller_id_number": "sensitive"},
    ),
}
EMERGENCY_PURPOSES = {"missing_person", "emergency_rescue"}


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    dataset_id = draw(st.sampled_from(sorted(DATASETS)))
    owner, sharing, fields = DATASETS[dataset_id]
    agency = draw(st.sampled_from(AGENCIES))
    agreements = [
        {
            "id": f"AGR-{i}",
            "provider": draw(st.sampled_from([owner, *AGENCIES])),
            "consumer": draw(st.sampled_from([agency, *AGENCIES])),
            "dataset": draw(st.sampled_from([dataset_id, *DATASETS])),
            "fields": draw(st.lists(st.sampled_from(sorted(fields)), unique=True)),
            "purposes": draw(st.lists(st.sampled_from(PURPOSES), unique=True)),
            "status": draw(st.sampled_from(["active", "active", "paused", "revoked", "expired", "requested"])),
            "valid_from": draw(st.sampled_from([0, NOW + 10])),
            "valid_until": draw(st.sampled_from([NOW - 10, 2_000_000_000])),
            "lawful_basis": draw(st.sampled_from(["consent", "statutory_duty", "emergency"])),
            "legal_citation": draw(st.sampled_from(["", "PIPL 13(3)"])),
            "necessity": draw(st.sampled_from(["", "needed"])),
            "scope_version": draw(st.integers(1, 2)),
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    consents = [
        {
            "type": draw(st.sampled_from(["general", "separate_sensitive", "separate_provision", "guardian"])),
            "status": draw(st.sampled_from(["granted", "withdrawn"])),
            "agreement": f"AGR-{draw(st.integers(0, 3))}",
            "purposes": draw(st.lists(st.sampled_from(PURPOSES), unique=True)),
            "scope_version": draw(st.integers(1, 2)),
            "granted_at": draw(st.sampled_from([NOW - 100, NOW + 100])),
        }
        for _ in range(draw(st.integers(0, 4)))
    ]
    declared = draw(st.sampled_from([NOW - 100, NOW + 100]))
    emergency = draw(
        st.none()
        | st.fixed_dictionaries(
            {
                "reason": st.sampled_from(["", "missing elderly"]),
                "declared_at": st.just(declared),
                "expires_at": st.sampled_from([declared + 3600, declared + 20000, NOW - 1]),
            }
        )
    )
    return {
        "principal": {
            "id": "P",
            "agency": agency,
            "roles": ["officer"],
            "jurisdiction": draw(st.sampled_from(["110105", "110100", "110101"])),
            "training_valid": draw(st.booleans()),
            "auth": {"mfa": draw(st.booleans())},
        },
        "action": "read",
        "purpose": draw(st.sampled_from(PURPOSES)),
        "case": draw(st.none() | st.fixed_dictionaries({"id": st.just("CASE-2026-0001"), "assigned": st.booleans()})),
        "dataset": {
            "id": dataset_id,
            "owner": owner,
            "sharing": sharing,
            "fields": {k: {"pi": v} for k, v in fields.items()},
        },
        "record": {"owner": owner, "subject_jurisdiction": "110105", "subject_minor_under_14": draw(st.booleans())},
        "agreements": agreements,
        "consents": consents,
        "emergency": emergency,
        "now": NOW,
    }


def emergency_valid(doc: dict[str, Any]) -> bool:
    e = doc["emergency"]
    return bool(
        e
        and doc["purpose"] in EMERGENCY_PURPOSES
        and e["reason"].strip()
        and e["declared_at"] <= doc["now"] < e["expires_at"]
        and e["expires_at"] - e["declared_at"] <= 14400
    )


def usable(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        a
        for a in doc["agreements"]
        if a["consumer"] == doc["principal"]["agency"]
        and a["provider"] == doc["record"]["owner"]
        and a["dataset"] == doc["dataset"]["id"]
        and a["status"] == "active"
        and a["valid_from"] <= doc["now"] < a["valid_until"]
        and doc["purpose"] in a["purposes"]
    ]


def consent(doc: dict[str, Any], agreement: dict[str, Any], kind: str) -> bool:
    return any(
        c["type"] == kind
        and c["status"] == "granted"
        and c["agreement"] == agreement["id"]
        and c["scope_version"] == agreement["scope_version"]
        and doc["purpose"] in c["purposes"]
        and c["granted_at"] <= doc["now"]
        for c in doc["consents"]
    )


def sensitive_basis(doc: dict[str, Any], field: str) -> bool:
    """The oracle: may this sensitive field go to another agency at all?"""
    agreements = usable(doc)
    if not agreements:
        return emergency_valid(doc)
    for a in agreements:
        if field not in a["fields"]:
            continue
        if a["lawful_basis"] == "statutory_duty" and a["legal_citation"].strip() and a["necessity"].strip():
            return True
        if a["lawful_basis"] == "emergency" and emergency_valid(doc):
            return True
        if a["lawful_basis"] == "consent":
            if doc["record"]["subject_minor_under_14"]:
                if consent(doc, a, "guardian"):
                    return True
            elif consent(doc, a, "separate_provision") and consent(doc, a, "separate_sensitive"):
                return True
    return False


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_no_not_shared_field_and_no_unfounded_sensitive_field_leaves(doc: dict[str, Any]) -> None:
    decision = ENGINE.evaluate(doc)
    cross = doc["principal"]["agency"] != doc["record"]["owner"]
    for field, outcome in decision["fields"].items():
        if cross and doc["dataset"]["sharing"] == "not_shared":
            assert outcome == "deny", (field, decision)
        if doc["dataset"]["fields"][field]["pi"] == "sensitive" and outcome == "reveal":
            assert doc["principal"]["auth"]["mfa"], (field, decision)
            if cross:
                assert sensitive_basis(doc, field), (field, decision)
    if not decision["allow"]:
        assert set(decision["fields"].values()) <= {"deny"}
        assert decision["reasons"], "a denial always says why"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_narrowing_the_agreements_never_changes_a_decision(doc: dict[str, Any]) -> None:
    from policies.agreements import PolicyAgreement
    from policies.decide import narrow

    # What the decision point does: the agreements between the two agencies for this dataset, then narrow.
    relevant = [
        a
        for a in doc["agreements"]
        if a["consumer"] == doc["principal"]["agency"]
        and a["provider"] == doc["record"]["owner"]
        and a["dataset"] == doc["dataset"]["id"]
    ]
    full = ENGINE.evaluate({**doc, "agreements": relevant})
    inputs = [PolicyAgreement(a, b"") for a in relevant]
    narrowed = ENGINE.evaluate({**doc, "agreements": [a.input for a in narrow(inputs, doc["purpose"], doc["now"])]})
    assert narrowed == full

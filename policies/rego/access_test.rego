# Unit tests of the access policy, in Rego. tests/test_policy_rego.py runs every test_ rule on the embedded
# engine and on the OPA engine; `opa test policies/rego` runs them on an OPA binary.
package hub.access_test

import data.hub.access
import rego.v1

base := {
	"principal": {"id": "P-1", "agency": "police", "roles": ["investigator"], "jurisdiction": "110105", "training_valid": true, "auth": {"mfa": true}},
	"action": "read",
	"purpose": "fraud_warning",
	"case": null,
	"dataset": {"id": "health.visit", "owner": "health", "sharing": "conditional", "fields": {
		"visit_no": {"pi": "none"},
		"patient_name": {"pi": "personal"},
		"diagnosis": {"pi": "sensitive"},
	}},
	"record": {"owner": "health", "subject_jurisdiction": "110105", "subject_minor_under_14": false},
	"agreements": [{
		"id": "AGR-1", "provider": "health", "consumer": "police", "dataset": "health.visit",
		"fields": ["visit_no", "patient_name", "diagnosis"], "purposes": ["fraud_warning"], "status": "active",
		"valid_from": 0, "valid_until": 2000000000, "lawful_basis": "statutory_duty",
		"legal_citation": "PIPL 13(3)", "necessity": "warn fraud targets", "scope_version": 1,
	}],
	"consents": [],
	"emergency": null,
	"now": 1795000000,
}

test_active_agreement_allows if {
	access.decision.allow with input as base
}

test_default_is_deny if {
	not access.allow with input as {}
}

test_not_shared_denies_other_agencies if {
	d := access.decision with input as object.union(base, {"dataset": object.union(base.dataset, {"sharing": "not_shared"})})
	not d.allow
	every _, outcome in d.fields { outcome == "deny" }
}

test_paused_agreement_denies if {
	paused := [object.union(base.agreements[0], {"status": "paused"})]
	not access.allow with input as object.union(base, {"agreements": paused})
}

test_sensitive_field_masked_without_mfa if {
	no_mfa := object.union(base.principal, {"auth": {"mfa": false}})
	d := access.decision with input as object.union(base, {"principal": no_mfa})
	d.fields.diagnosis == "mask"
	"step_up_required" in d.obligations
}

test_break_glass_always_carries_post_hoc_review if {
	emergency := {"reason": "missing elderly", "declared_at": 1794999000, "expires_at": 1795009000}
	d := access.decision with input as object.union(base, {"agreements": [], "purpose": "missing_person", "emergency": emergency})
	d.allow
	"post_hoc_review" in d.obligations
}

test_deny_overrides_allow if {
	untrained := object.union(base.principal, {"training_valid": false})
	not access.allow with input as object.union(base, {"principal": untrained})
}

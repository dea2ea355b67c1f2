# Need-to-know decisions for one request on one record: the single source of truth for field-level
# access. Deny overrides allow; every answer carries reasons. Times are epoch seconds in the input, so
# the policy needs no time built-ins and runs unchanged on the embedded engine and on an OPA server.
package hub.access

import rego.v1

policy_id := "hub.access/v1"

investigative_purposes := {"criminal_investigation", "fraud_investigation"}

emergency_purposes := {"missing_person", "emergency_rescue"}

max_emergency_seconds := 14400 # break-glass is time-boxed: at most 4 hours

principal := input.principal

record := input.record

dataset := input.dataset

cross_agency if record.owner != principal.agency

investigative if input.purpose in investigative_purposes

# ---------------------------------------------------------------- agreements (Government Data Sharing Regulation)

candidates contains a if {
	some a in input.agreements
	a.consumer == principal.agency
	a.provider == record.owner
	a.dataset == dataset.id
}

in_force(a) if {
	a.status == "active"
	a.valid_from <= input.now
	input.now < a.valid_until
}

usable contains a if {
	some a in candidates
	in_force(a)
	input.purpose in a.purposes
}

# ---------------------------------------------------------------- break-glass (PIPL 13(4))

emergency_valid if {
	e := input.emergency
	input.purpose in emergency_purposes
	count(trim_space(e.reason)) > 0
	e.declared_at <= input.now
	input.now < e.expires_at
	e.expires_at - e.declared_at <= max_emergency_seconds
}

break_glass if {
	cross_agency
	count(usable) == 0
	dataset.sharing != "not_shared"
	emergency_valid
}

# ---------------------------------------------------------------- jurisdiction

covers(p, s) if p == s

covers(p, s) if {
	endswith(p, "0000")
	startswith(s, substring(p, 0, 2))
}

covers(p, s) if {
	endswith(p, "00")
	startswith(s, substring(p, 0, 4))
}

# ---------------------------------------------------------------- deny reasons

deny contains "PIPL-51: the principal's data-protection training is not valid" if not principal.training_valid

deny contains "DSR-not-shared: the dataset is not shared with other agencies" if {
	cross_agency
	dataset.sharing == "not_shared"
}

deny contains "DSR-agreement: no sharing agreement covers this dataset for the requesting agency" if {
	cross_agency
	dataset.sharing != "not_shared"
	count(candidates) == 0
	not emergency_valid
}

deny contains msg if {
	cross_agency
	dataset.sharing != "not_shared"
	count(usable) == 0
	not emergency_valid
	some a in candidates
	not in_force(a)
	msg := sprintf("DSR-agreement-status: agreement %s is not in force (%s)", [a.id, status_text(a)])
}

deny contains msg if {
	cross_agency
	dataset.sharing != "not_shared"
	count(usable) == 0
	not emergency_valid
	some a in candidates
	in_force(a)
	msg := sprintf("PIPL-6-purpose: purpose %s is not among the purposes of agreement %s", [input.purpose, a.id])
}

deny contains "PIPL-13-case: an investigative purpose needs a case assigned to the principal" if {
	investigative
	not input.case.assigned
}

deny contains "PIPL-6-jurisdiction: the subject lives outside the principal's jurisdiction" if {
	not covers(principal.jurisdiction, record.subject_jurisdiction)
}

deny contains "PIPL-13(4)-break-glass: the emergency declaration is expired, too long or without a reason" if {
	cross_agency
	count(usable) == 0
	dataset.sharing != "not_shared"
	input.emergency
	input.purpose in emergency_purposes
	not emergency_valid
}

status_text(a) := a.status if a.status != "active"

status_text(a) := "outside its validity period" if a.status == "active"

basis := "own-agency" if not cross_agency

basis := "agreement" if {
	cross_agency
	count(usable) > 0
}

basis := "break-glass" if break_glass

default allow := false

allow if {
	count(deny) == 0
	basis
}

# ---------------------------------------------------------------- consent (PIPL 14, 15, 23, 29, 31)

consent_valid(a, kind) if {
	some c in input.consents
	c.type == kind
	c.status == "granted"
	c.agreement == a.id
	c.scope_version == a.scope_version
	input.purpose in c.purposes
	c.granted_at <= input.now
}

# Under a consent basis, provision to another agency needs separate consent (PIPL 23) and sensitive fields
# separate consent (PIPL 29); for a subject under 14 a guardian's consent stands for both (PIPL 31).
consent_covers(a, field) if {
	not record.subject_minor_under_14
	consent_valid(a, "separate_provision")
	not dataset.fields[field].pi == "sensitive"
}

consent_covers(a, field) if {
	not record.subject_minor_under_14
	consent_valid(a, "separate_provision")
	dataset.fields[field].pi == "sensitive"
	consent_valid(a, "separate_sensitive")
}

consent_covers(a, _) if {
	record.subject_minor_under_14
	consent_valid(a, "guardian")
}

# A lawful basis for one field under one agreement.
field_basis(a, field) if {
	a.lawful_basis == "consent"
	consent_covers(a, field)
}

field_basis(a, field) if {
	a.lawful_basis == "statutory_duty"
	count(trim_space(a.legal_citation)) > 0
	count(trim_space(a.necessity)) > 0
	not dataset.fields[field].pi == "none"
}

field_basis(a, field) if {
	a.lawful_basis == "emergency"
	emergency_valid
	not dataset.fields[field].pi == "none"
}

field_basis(_, field) if dataset.fields[field].pi == "none"

agreed(field) := [a | some a in usable; field in a.fields; field_basis(a, field)]

# ---------------------------------------------------------------- per-field outcome

sensitive(field) if dataset.fields[field].pi == "sensitive"

mfa if principal.auth.mfa

field_outcome(field) := "deny" if not allow

field_outcome(field) := "reveal" if {
	allow
	basis == "own-agency"
	not sensitive(field)
}

field_outcome(field) := "reveal" if {
	allow
	basis == "own-agency"
	sensitive(field)
	mfa
}

field_outcome(field) := "reveal" if {
	allow
	basis == "agreement"
	count(agreed(field)) > 0
	not sensitive(field)
}

field_outcome(field) := "reveal" if {
	allow
	basis == "agreement"
	count(agreed(field)) > 0
	sensitive(field)
	mfa
}

field_outcome(field) := "reveal" if {
	allow
	basis == "break-glass"
	not sensitive(field)
}

field_outcome(field) := "reveal" if {
	allow
	basis == "break-glass"
	sensitive(field)
	mfa
}

field_outcome(field) := "mask" if {
	allow
	sensitive(field)
	not mfa
	stepped_up_candidate(field)
}

field_outcome(field) := "deny" if {
	allow
	basis == "agreement"
	count(agreed(field)) == 0
}

stepped_up_candidate(_) if basis in {"own-agency", "break-glass"}

stepped_up_candidate(field) if {
	basis == "agreement"
	count(agreed(field)) > 0
}

fields := {name: field_outcome(name) | some name, _ in dataset.fields}

field_reasons contains msg if {
	allow
	basis == "agreement"
	some name, _ in dataset.fields
	count(agreed(name)) == 0
	msg := sprintf("%s: not revealed: outside the agreement's fields or without a lawful basis (PIPL 13, 23, 29, 31)", [name])
}

field_reasons contains msg if {
	allow
	some name, outcome in fields
	outcome == "mask"
	msg := sprintf("%s: masked: sensitive field needs multi-factor authentication", [name])
}

# ---------------------------------------------------------------- obligations

obligations contains "audit"

obligations contains "post_hoc_review" if {
	allow
	basis == "break-glass"
}

obligations contains "step_up_required" if {
	some _, outcome in fields
	outcome == "mask"
}

obligations contains "notify_subject" if {
	allow
	cross_agency
	not investigative
}

basis_reasons contains msg if {
	basis == "agreement"
	some a in usable
	msg := sprintf("allowed under agreement %s (%s)", [a.id, a.lawful_basis])
}

basis_reasons contains "allowed to the owning agency" if basis == "own-agency"

basis_reasons contains "break-glass: emergency declaration (PIPL 13(4)); post-hoc review required" if basis == "break-glass"

reasons := sort(deny) if not allow

reasons := sort(basis_reasons | field_reasons) if allow

decision := {
	"policy": policy_id,
	"allow": allow,
	"fields": fields,
	"obligations": sort(obligations),
	"reasons": reasons,
}

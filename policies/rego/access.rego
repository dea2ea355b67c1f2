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

# Agreements are keyed by id: sets of whole objects would make the engine hash every agreement.
candidate_by_id[a.id] := a if {
	some a in input.agreements
	a.consumer == principal.agency
	a.provider == record.owner
	a.dataset == dataset.id
}

candidates := [a | some _, a in candidate_by_id]

in_force(a) if {
	a.status == "active"
	a.valid_from <= input.now
	input.now < a.valid_until
}

usable_ids contains id if {
	some id, a in candidate_by_id
	in_force(a)
	input.purpose in a.purposes
}

usable := [candidate_by_id[id] | some id in usable_ids]

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

# Lawful bases, decided once per agreement (as sets of agreement ids) rather than once per field: a
# field's basis depends on the field only through its personal-information class.
#
# Under a consent basis, provision to another agency needs separate consent (PIPL 23) and sensitive fields
# separate consent too (PIPL 29); for a subject under 14 a guardian's consent stands for both (PIPL 31).
# A statutory duty (PIPL 13(3)) needs its legal citation and a necessity justification; an emergency
# agreement (PIPL 13(4)) needs a valid emergency declaration.

covers_all contains a.id if {
	some a in usable
	a.lawful_basis == "statutory_duty"
	count(trim_space(a.legal_citation)) > 0
	count(trim_space(a.necessity)) > 0
}

covers_all contains a.id if {
	some a in usable
	a.lawful_basis == "emergency"
	emergency_valid
}

covers_all contains a.id if {
	some a in usable
	a.lawful_basis == "consent"
	record.subject_minor_under_14
	consent_valid(a, "guardian")
}

covers_all contains a.id if {
	some a in usable
	a.lawful_basis == "consent"
	not record.subject_minor_under_14
	consent_valid(a, "separate_provision")
	consent_valid(a, "separate_sensitive")
}

covers_non_sensitive contains a.id if {
	some a in usable
	a.lawful_basis == "consent"
	not record.subject_minor_under_14
	consent_valid(a, "separate_provision")
}

# The fields some usable agreement covers with a lawful basis: the union of each class's agreement fields
# first, then one look at each distinct field's class. Rules, not functions: engines evaluate them once per
# decision.
fields_of(ids) := {field | some a in usable; a.id in ids; some field in a.fields}

covered_fields := fields_of(covers_all)

consented_fields := fields_of(covers_non_sensitive - covers_all)

usable_fields := {field | some a in usable; some field in a.fields}

agreed_fields contains field if some field in covered_fields

agreed_fields contains field if {
	some field in consented_fields
	not dataset.fields[field].pi == "sensitive"
}

agreed_fields contains field if {
	some field in usable_fields
	dataset.fields[field].pi == "none"
}

# ---------------------------------------------------------------- per-field outcome
# Computed as sets, once per decision: the fields the basis lets through, and those of them masked for
# want of multi-factor authentication. Everything else is denied.

mfa if principal.auth.mfa

permitted contains name if {
	allow
	basis in {"own-agency", "break-glass"}
	some name, _ in dataset.fields
}

permitted contains name if {
	allow
	basis == "agreement"
	some name in agreed_fields
	dataset.fields[name]
}

masked contains name if {
	some name in permitted
	dataset.fields[name].pi == "sensitive"
	not mfa
}

fields := object.union_n([
	{name: "deny" | some name, _ in dataset.fields; not name in permitted},
	{name: "reveal" | some name in permitted; not name in masked},
	{name: "mask" | some name in masked},
])

field_reasons contains msg if {
	allow
	basis == "agreement"
	some name, _ in dataset.fields
	not name in permitted
	msg := sprintf("%s: not revealed: outside the agreement's fields or without a lawful basis (PIPL 13, 23, 29, 31)", [name])
}

field_reasons contains msg if {
	some name in masked
	msg := sprintf("%s: masked: sensitive field needs multi-factor authentication", [name])
}

# ---------------------------------------------------------------- obligations

obligations contains "audit"

obligations contains "post_hoc_review" if {
	allow
	basis == "break-glass"
}

obligations contains "step_up_required" if count(masked) > 0

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

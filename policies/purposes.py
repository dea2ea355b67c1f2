"""Declared purposes: the codes a request may carry, and request-shape checks.

Adding a purpose: add it here (description, article); if it is investigative or an emergency
purpose, add it to the matching set in ``policies/rego/access.rego`` too — a conformance test checks
that the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policies.errors import PolicyInputError


@dataclass(frozen=True)
class Purpose:
    code: str
    description: str
    article: str
    investigative: bool = False
    emergency: bool = False


PURPOSES: dict[str, Purpose] = {
    p.code: p
    for p in (
        Purpose("missing_person", "Find a missing person", "PIPL 13(4)", emergency=True),
        Purpose("emergency_rescue", "Protect life or health in an emergency", "PIPL 13(4)", emergency=True),
        Purpose("welfare_check", "Check on a vulnerable resident (e.g. not out for three days)", "PIPL 13(3)"),
        Purpose("fraud_warning", "Warn residents targeted by fraud", "PIPL 13(3)"),
        Purpose(
            "fraud_investigation", "Investigate a fraud case", "PIPL 13(3); Criminal Procedure Law", investigative=True
        ),
        Purpose(
            "criminal_investigation",
            "Investigate a criminal case",
            "PIPL 13(3); Criminal Procedure Law",
            investigative=True,
        ),
        Purpose("campus_safety", "Protect students from bullying and injury", "PIPL 13(3); Minors Protection Law"),
        Purpose("statistics", "Aggregate statistics without identifying anyone", "PIPL 13(3); Data Security Law 21"),
    )
}
CASE_ID = re.compile(r"^CASE-\d{4}-\d{4,8}$")


def purpose(code: str) -> Purpose:
    try:
        return PURPOSES[code]
    except KeyError:
        raise PolicyInputError(
            f"unknown purpose code {code!r}; expected one of {', '.join(sorted(PURPOSES))}"
        ) from None


def check_case_id(case_id: str | None) -> str | None:
    if case_id is not None and not CASE_ID.match(case_id):
        raise PolicyInputError(f"malformed case id {case_id!r}; expected CASE-YYYY-NNNN")
    return case_id

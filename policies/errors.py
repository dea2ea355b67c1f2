"""Typed failures of the policies package; messages name the offending value, never personal data."""


class PolicyError(Exception):
    """Base of every expected failure in the policies package."""


class PolicyInputError(PolicyError):
    """A request names an unknown purpose, a malformed case id, a field not in the catalog, ..."""


class PolicyUnavailable(PolicyError):
    """The policy engine cannot answer; callers deny (fail closed)."""


class AgreementError(PolicyError):
    """An agreement transition is not allowed (wrong state, wrong approver, missing reason)."""


class SeparationOfDuties(PolicyError):
    """A role assignment would give one principal both an admin and an auditor role."""

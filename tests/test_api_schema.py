"""Schemathesis against the OpenAPI document: no 5xx and no response that violates the schema.

Requests carry a valid token with wide roles (so they reach the handlers, not only the 401 path);
partner routes are exercised unsigned (their 401 answers must conform too). Schemathesis' pytest
plugin does not load under pytest 9 here, so each operation's strategy is driven with Hypothesis.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.api_world import World

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def test_api_conforms_to_its_schema(world: World) -> None:
    for role in ("investigator", "dpo", "agency_admin"):
        world.hub.policy.roles.assign("S-1", role, "police")
    world.hub.policy.roles.assign("S-AUD", "auditor", "police")
    tokens = {
        "audit": world.token("S-AUD", "police", ["auditor"], id_number=world.resident),
        "other": world.token("S-1", "police", ["investigator"], mfa=True, id_number=world.resident),
    }
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 25

    for operation in operations:
        exercise(operation, tokens["audit" if operation.path.startswith("/v1/audit") else "other"])


def exercise(operation: Any, token: str) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        case.call_and_validate(checks=CHECKS)

    run()

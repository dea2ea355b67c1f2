"""Every decision case passes on every engine: embedded regorus, the real OPA engine, and OPA over REST."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hub.synthetic.serve import serve_in_thread
from policies.conformance import Case, load_cases, mismatches
from policies.engines import EmbeddedEngine, OpaLibraryEngine, OpaServerEngine, RegoEngine, rego_sources
from policies.opa_rest import create_app
from policies.purposes import PURPOSES

CASES = load_cases()


@pytest.fixture(scope="module")
def opa_server() -> Iterator[str]:
    with serve_in_thread(create_app()) as url:
        yield url


class InterpretedEngine(EmbeddedEngine):
    """regorus' interpreter for the decision too: the RVM's compiled result must match it."""

    def evaluate(self, input_document: Any, rule: str = "hub.access.decision") -> Any:
        engine = self._interpreter()
        engine.set_input(dict(input_document))
        return engine.eval_rule(f"data.{rule}")


@pytest.fixture(scope="module", params=["embedded-rvm", "embedded-interpreter", "opa-library", "opa-server"])
def engine(request: pytest.FixtureRequest) -> RegoEngine:
    if request.param == "embedded-rvm":
        return EmbeddedEngine()
    if request.param == "embedded-interpreter":
        return InterpretedEngine()
    if request.param == "opa-library":
        return OpaLibraryEngine()
    url = request.getfixturevalue("opa_server")
    return OpaServerEngine(url, upload=rego_sources())


def test_there_are_at_least_sixty_named_cases() -> None:
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(engine: RegoEngine, case: Case) -> None:
    decision: dict[str, Any] = engine.evaluate(case.input)
    assert mismatches(case, decision) == [], case.name


def test_purpose_registry_and_rego_agree(engine: RegoEngine) -> None:
    investigative = set(engine.evaluate({}, "hub.access.investigative_purposes"))
    emergency = set(engine.evaluate({}, "hub.access.emergency_purposes"))
    assert investigative == {p.code for p in PURPOSES.values() if p.investigative}
    assert emergency == {p.code for p in PURPOSES.values() if p.emergency}

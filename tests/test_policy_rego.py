"""The Rego unit tests in policies/rego/*_test.rego, run on the embedded engine and the OPA engine."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from policies.engines import EmbeddedEngine, OpaLibraryEngine, rego_sources

TESTS = Path(str(resources.files("policies") / "rego" / "access_test.rego"))
NAMES = re.findall(r"^(test_\w+) if", TESTS.read_text(encoding="utf-8"), re.MULTILINE)
SOURCES = {**rego_sources(), TESTS.name: TESTS.read_text(encoding="utf-8")}


@pytest.mark.parametrize("engine_class", [EmbeddedEngine, OpaLibraryEngine], ids=["embedded", "opa"])
@pytest.mark.parametrize("name", NAMES)
def test_rego_unit_test(engine_class: type[EmbeddedEngine] | type[OpaLibraryEngine], name: str) -> None:
    engine = engine_class(SOURCES)
    assert engine.evaluate({}, f"hub.access_test.{name}") is True


def test_there_are_rego_unit_tests() -> None:
    assert len(NAMES) >= 7

"""Remembered decisions are the engine's own: same answers on every case, fresh ones for any changed input."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from policies.conformance import load_cases, mismatches
from policies.engines import DECISION, EmbeddedEngine, rego_sources
from policies.errors import PolicyUnavailable
from policies.memo import NotDeterministic, RememberingEngine, check_deterministic

CASES = load_cases()


@pytest.fixture(scope="module")
def plain() -> EmbeddedEngine:
    return EmbeddedEngine()


def test_every_case_answered_from_memory_is_the_engines_answer(plain: EmbeddedEngine) -> None:
    remembering = RememberingEngine(EmbeddedEngine(), rego_sources())
    for case in CASES:
        expected = plain.evaluate(case.input)
        first = remembering.evaluate(case.input)
        again = remembering.evaluate(copy.deepcopy(case.input))  # an equal document, not the same object
        assert first == expected == again, case.name
        assert mismatches(case, again) == [], case.name
    assert remembering.misses == len({orjson.dumps(c.input) for c in CASES})
    assert remembering.hits == len(CASES) + len(CASES) - remembering.misses


def test_a_changed_input_is_evaluated_afresh(plain: EmbeddedEngine) -> None:
    remembering = RememberingEngine(EmbeddedEngine(), rego_sources())
    allowed = next(c for c in CASES if c.expect.get("allow") is True and c.input.get("agreements"))
    document: dict[str, Any] = copy.deepcopy(allowed.input)
    assert remembering.evaluate(document)["allow"] is True
    # The same agreement a second later, after it expired: another input, so the engine decides again.
    later = copy.deepcopy(document)
    later["now"] = max(a["valid_until"] for a in document["agreements"])
    answer = remembering.evaluate(later)
    assert answer == plain.evaluate(later) and answer["allow"] is False
    assert remembering.misses == 2 and remembering.hits == 0


def test_what_a_caller_does_to_an_answer_does_not_change_the_next() -> None:
    remembering = RememberingEngine(EmbeddedEngine(), rego_sources())
    document = CASES[0].input
    answer = remembering.evaluate(document)
    expected = copy.deepcopy(answer)
    answer["allow"] = not answer["allow"]
    answer["fields"].clear()
    assert remembering.evaluate(document) == expected


class Flaky:
    """An engine that fails once, then answers: the failure must not be remembered."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, input_document: Mapping[str, Any], rule: str = DECISION) -> Any:
        return orjson.loads(self.evaluate_json(orjson.dumps(input_document), rule))

    def evaluate_json(self, input_json: bytes, rule: str = DECISION) -> str:
        self.calls += 1
        if self.calls == 1:
            raise PolicyUnavailable("down")
        return '{"allow": false}'


def test_a_failure_is_never_remembered() -> None:
    engine = Flaky()
    remembering = RememberingEngine(engine, {"p.rego": "package p"})
    with pytest.raises(PolicyUnavailable):
        remembering.evaluate({"now": 1})
    assert remembering.evaluate({"now": 1}) == {"allow": False}
    assert remembering.evaluate({"now": 1}) == {"allow": False}
    assert engine.calls == 2


def test_the_table_is_bounded_and_forgets_the_oldest_first() -> None:
    engine = Flaky()
    engine.calls = 1  # no failure
    remembering = RememberingEngine(engine, {"p.rego": "package p"}, size=3)
    for now in range(5):
        remembering.evaluate({"now": now})
    assert len(remembering._answers) == 3
    remembering.evaluate({"now": 4})
    assert engine.calls == 6  # the newest is remembered
    remembering.evaluate({"now": 0})
    assert engine.calls == 7  # the oldest was forgotten


def test_modules_that_read_a_clock_randomness_or_the_network_are_refused() -> None:
    check_deterministic(rego_sources())  # the hub's own modules
    check_deterministic({"p.rego": "package p\n# time.now_ns() is not called here\nallow := true"})
    for call in ("time.now_ns()", 'http.send({"url": "x"})', 'rand.intn("a", 3)', 'uuid.rfc4122("a")'):
        with pytest.raises(NotDeterministic):
            RememberingEngine(Flaky(), {"p.rego": f"package p\nx := {call}"})


def test_the_hub_remembers_embedded_decisions_and_never_an_opa_servers() -> None:
    from hub.policy import open_engine
    from hub.settings import load_settings

    embedded = open_engine(load_settings(policy_engine="embedded"))
    assert isinstance(embedded, RememberingEngine) and isinstance(embedded.engine, EmbeddedEngine)
    assert embedded.in_process
    document = CASES[0].input
    embedded.evaluate(document)
    embedded.evaluate(document)
    assert (embedded.misses, embedded.hits) == (1, 1)

    from hub.synthetic.serve import serve_in_thread
    from policies.engines import OpaServerEngine
    from policies.opa_rest import create_app

    with serve_in_thread(create_app()) as url:
        remote = open_engine(load_settings(policy_engine=url))
        assert isinstance(remote, OpaServerEngine) and not remote.in_process

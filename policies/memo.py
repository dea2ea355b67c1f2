"""Remembered decisions: an in-process engine's answer for an input document it has already evaluated.

A decision is a function of two things only, the policy modules and the input document. The modules of
an in-process engine are fixed when it is built, and these modules read the time from the input (epoch
seconds) and call no built-in that reads a clock, randomness or the network (checked when the wrapper is
built). So the same input bytes always get the same answer, and the answer remembered for them is the one
the engine would give again: nothing about the decision is approximated, only the evaluation is skipped.

Everything a decision depends on travels in the input (the agreements in force, the subject's consents,
the case assignment, ``now``), so a changed agreement or a withdrawn consent is a different input, never a
stale answer. ``now`` moves every second, so entries stop matching within a second and age out of the
bounded table. Failures are never remembered: the engine is asked again, and fails closed again.

Not for an OPA server: its policies can change under it (bundles), so its answers are not the modules'.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from typing import Any, Generic, Protocol, TypeVar

import orjson

from policies.engines import DECISION

# Built-ins whose result is not determined by the input and the modules (OPA's non-deterministic set, and
# the ones that read the environment). A module that calls one cannot have its answers remembered.
NON_DETERMINISTIC = (
    "time.now_ns",
    "rand.",
    "http.send",
    "uuid.",
    "opa.runtime",
    "net.lookup",
    "io.jwt.decode_verify",
    "crypto.x509.parse_and_verify",
    "trace(",
)
DEFAULT_SIZE = 8192
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class JsonEngine(Protocol):
    name: str

    def evaluate_json(self, input_json: bytes, rule: str = DECISION) -> str:
        """The answer as JSON text, for an input given as JSON bytes."""
        ...


class NotDeterministic(ValueError):
    """The modules call a built-in whose result the input does not determine."""


def check_deterministic(sources: Mapping[str, str]) -> None:
    for path, text in sources.items():
        code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # comments may name anything
        for builtin in NON_DETERMINISTIC:
            if builtin in code:
                raise NotDeterministic(f"{path} calls {builtin.rstrip('.(')}: its decisions cannot be remembered")


class RememberingEngine:
    """Wraps an in-process engine; answers an input seen before from a bounded table, keyed by its exact JSON."""

    deterministic = True  # the modules were checked: the same input always gets the same answer

    def __init__(self, engine: JsonEngine, sources: Mapping[str, str], size: int = DEFAULT_SIZE) -> None:
        check_deterministic(sources)
        self.engine = engine
        self.name = f"{engine.name}, decisions remembered"
        self.in_process = bool(getattr(engine, "in_process", False))
        self._answers: Remembered[tuple[str, bytes], str] = Remembered(size)
        self.hits = 0
        self.misses = 0

    def evaluate(self, input_document: Mapping[str, Any], rule: str = DECISION) -> Any:
        key = (rule, orjson.dumps(input_document))
        answer = self._answers.get(key)
        if answer is not None:
            self.hits += 1
            return orjson.loads(answer)  # a fresh object each time: a caller cannot alter what is remembered
        self.misses += 1
        answer = self.engine.evaluate_json(key[1], rule)  # raises PolicyUnavailable: nothing is remembered
        decision = orjson.loads(answer)  # an answer that is not JSON raises here, and is not remembered either
        self._answers.put(key, answer)
        return decision


class Remembered(Generic[K, V]):
    """A bounded table of remembered answers, oldest first out: an earlier second's ``now`` never matches
    again, so the oldest entries are the ones that can no longer be asked for. Reads take no lock (a dict
    lookup is atomic); writes do.

    Two tables use it: the engine's answers by the input's exact JSON (:class:`RememberingEngine`), and the
    decision point's decisions by the parts of their input (policies.decide.DecisionService), for an engine
    whose answers the input alone determines (``deterministic``). The engine's table still costs building
    the input, serialising it and turning the answer back into a decision, about 50 µs of a ~0.9 ms person
    view (measured in process), for decisions that mostly repeat (one officer, the same datasets, the same
    second); keyed by the input's parts, a repeat costs a tuple's hash. What a table hands out is shared:
    read it, never change it.
    """

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._entries: dict[K, V] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.size:
                del self._entries[next(iter(self._entries))]

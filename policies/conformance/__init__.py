"""Decision cases every Rego engine must pass (``cases.json``), and the code that applies them.

The same file runs against the embedded engine, the real OPA engine and an OPA-REST endpoint, so the
policies stay portable to an OPA server.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    input: dict[str, Any]
    expect: dict[str, Any]


def _set(document: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    target: Any = document
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


def load_cases(path: Path | None = None) -> list[Case]:
    raw = json.loads((path or Path(str(resources.files("policies") / "conformance" / "cases.json"))).read_text("utf-8"))
    cases = []
    for spec in raw["cases"]:
        document = copy.deepcopy(raw["bases"][spec["base"]])
        for dotted, value in spec["set"].items():
            _set(document, dotted, value)
        cases.append(Case(spec["name"], document, spec["expect"]))
    return cases


def mismatches(case: Case, decision: dict[str, Any]) -> list[str]:
    """What the decision gets wrong against the case's expectations (empty when it passes)."""
    expect, problems = case.expect, []
    if "allow" in expect and decision.get("allow") != expect["allow"]:
        problems.append(f"allow {decision.get('allow')} != {expect['allow']}")
    for name, outcome in expect.get("fields", {}).items():
        if decision.get("fields", {}).get(name) != outcome:
            problems.append(f"field {name}: {decision.get('fields', {}).get(name)} != {outcome}")
    obligations = set(decision.get("obligations", []))
    if "obligations" in expect and sorted(obligations) != sorted(expect["obligations"]):
        problems.append(f"obligations {sorted(obligations)} != {sorted(expect['obligations'])}")
    problems += [f"missing obligation {o}" for o in expect.get("obligations_include", []) if o not in obligations]
    problems += [f"unexpected obligation {o}" for o in expect.get("obligations_exclude", []) if o in obligations]
    reasons = decision.get("reasons", [])
    problems += [f"missing reason {r!r}" for r in expect.get("reasons_include", []) if r not in reasons]
    return problems

"""Generate all four agencies' source systems into one directory, with a manifest.

The manifest names every source, its interface and record count, and every planted dirty record by
position and reason; it contains no personal data, so it can be printed and committed to test logs.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hub.synthetic import civil_affairs, education, health, police
from hub.synthetic.dirt import DirtLedger
from hub.synthetic.population import AgeGroup, generate_population

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
DEFAULT_AS_OF = datetime(2026, 11, 20, 8, 0, tzinfo=CHINA_STANDARD_TIME)
DEFAULT_SEED = 20261120
DEFAULT_DIRT_RATE = 0.004
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SourceSummary:
    agency: str
    interface: str  # "sql", "rest" or "file-drop"
    location: str  # path relative to the output directory
    dataset: str
    records: int
    dirty: int


@dataclass
class SourceManifest:
    seed: int
    residents: int
    as_of: str
    population: dict[str, int]
    sources: list[SourceSummary]
    dirty_records: list[dict[str, str]]
    expected_stay_in_alerts: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1, sort_keys=True) + "\n"

    @classmethod
    def read(cls, directory: Path) -> SourceManifest:
        raw: dict[str, Any] = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        raw["sources"] = [SourceSummary(**s) for s in raw["sources"]]
        return cls(**raw)


def _rng(seed: int, purpose: str) -> random.Random:
    # Independent streams per agency, so adding records to one source does not reshuffle the others.
    return random.Random(f"{seed}:{purpose}")


def generate_sources(
    directory: Path,
    residents: int = 10_000,
    seed: int = DEFAULT_SEED,
    as_of: datetime = DEFAULT_AS_OF,
    dirt_rate: float = DEFAULT_DIRT_RATE,
) -> SourceManifest:
    """Write every agency's source system under ``directory`` and return (and write) the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    population = generate_population(residents, seed, as_of)
    summaries: list[SourceSummary] = []
    dirt_entries: list[dict[str, str]] = []

    def ledger(purpose: str) -> DirtLedger:
        return DirtLedger(_rng(seed, f"dirt:{purpose}"), dirt_rate)

    def note(agency: str, interface: str, path: Path, dataset: str, count: int, dirt: DirtLedger) -> None:
        summaries.append(
            SourceSummary(agency, interface, str(path.relative_to(directory)), dataset, count, len(dirt.entries))
        )
        dirt_entries.extend(dirt.entries)

    dirt = ledger("police")
    rows = police.build_rows(population, _rng(seed, "police"), as_of, dirt)
    note("police", "sql", police.write(rows, directory / "police"), "police.incident", len(rows), dirt)

    dirt = ledger("health")
    rows = health.build_rows(population, _rng(seed, "health"), as_of, dirt)
    note("health", "sql", health.write(rows, directory / "health"), "health.visit", len(rows), dirt)

    dirt = ledger("education")
    items = education.build_rows(population, _rng(seed, "education"), as_of, dirt)
    token = hashlib.sha256(f"education-token:{seed}".encode()).hexdigest()[:32]
    path = education.write(items, directory / "education", token)
    note("education", "rest", path, "education.campus_incident", len(items), dirt)

    civil_rng = _rng(seed, "civil_affairs")
    dirt = ledger("civil_affairs.registry")
    registry = civil_affairs.build_registry(population, civil_rng, as_of, dirt)
    by_id = {r.id_number: r for r in population}
    event_dirt = ledger("civil_affairs.events")
    events, stay_in = civil_affairs.build_events(registry, by_id, civil_rng, as_of, event_dirt)
    paths = civil_affairs.write(registry, events, directory / "civil_affairs", as_of)
    note("civil_affairs", "file-drop", paths[0], "civil_affairs.vulnerable_person", len(registry), dirt)
    event_count = sum(len(v) for v in events.values())
    note("civil_affairs", "file-drop", paths[0].parent, "civil_affairs.access_event", event_count, event_dirt)

    manifest = SourceManifest(
        seed=seed,
        residents=residents,
        as_of=as_of.isoformat(),
        population={g.value: sum(1 for r in population if r.age_group is g) for g in AgeGroup},
        sources=summaries,
        dirty_records=dirt_entries,
        expected_stay_in_alerts=stay_in,
    )
    (directory / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    return manifest

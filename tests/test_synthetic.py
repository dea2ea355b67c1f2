"""The synthetic agency source systems: deterministic, valid, consistent, and dirty on purpose."""

from __future__ import annotations

import csv
import filecmp
import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from hub.identifiers import age_on, is_valid_id_number
from hub.synthetic import SourceManifest, generate_population, generate_sources
from hub.synthetic.generate import DEFAULT_AS_OF
from hub.synthetic.population import AgeGroup
from hub.synthetic.probe import probe_sources

RESIDENTS = 1500
SEED = 4242


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sources")
    generate_sources(directory, residents=RESIDENTS, seed=SEED)
    return directory


def _all_files(directory: Path) -> list[Path]:
    return sorted(p.relative_to(directory) for p in directory.rglob("*") if p.is_file())


def test_same_seed_gives_the_same_bytes(sources: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_sources(again, residents=RESIDENTS, seed=SEED)
    assert _all_files(sources) == _all_files(again)
    match, mismatch, errors = filecmp.cmpfiles(sources, again, [str(p) for p in _all_files(sources)], shallow=False)
    assert not mismatch and not errors and len(match) == len(_all_files(sources))


def test_another_seed_gives_other_people(tmp_path: Path) -> None:
    one = {r.id_number for r in generate_population(200, 1, DEFAULT_AS_OF)}
    two = {r.id_number for r in generate_population(200, 2, DEFAULT_AS_OF)}
    assert len(one & two) < 5


def test_population_ids_are_valid_unique_and_match_age_groups() -> None:
    people = generate_population(2000, SEED, DEFAULT_AS_OF)
    assert len({p.id_number for p in people}) == len(people)
    today: date = DEFAULT_AS_OF.date()
    bounds = {AgeGroup.CHILD: (6, 17), AgeGroup.ADULT: (18, 64), AgeGroup.ELDERLY: (65, 95)}
    for person in people:
        assert is_valid_id_number(person.id_number)
        low, high = bounds[person.age_group]
        assert low <= age_on(person.id_number, today) <= high
        assert int(person.id_number[16]) % 2 == (1 if person.sex == "M" else 0)
        assert person.address.startswith("北京市")
    assert {p.age_group for p in people} == set(AgeGroup)


def test_every_source_reads_back_through_its_interface(sources: Path) -> None:
    manifest = SourceManifest.read(sources)
    counts = probe_sources(sources)  # SQL queries, HTTP pages from a real server, files in the drop folder
    assert counts == {s.dataset: s.records for s in manifest.sources}
    assert all(count > 0 for count in counts.values())


def test_each_source_has_dirty_records_and_the_manifest_locates_them(sources: Path) -> None:
    manifest = SourceManifest.read(sources)
    assert all(s.dirty >= 1 for s in manifest.sources)
    police = sqlite3.connect(sources / "police" / "police.db")
    for entry in (e for e in manifest.dirty_records if e["source"] == "police"):
        key = entry["position"].split("=", 1)[1]
        caller_id, alarm_time = police.execute(
            "SELECT bjr_sfzh, alarm_time FROM bj_alarm WHERE alarm_no=?", (key,)
        ).fetchone()
        if entry["reason"] == "bad_checksum":
            assert caller_id and not is_valid_id_number(caller_id)
        elif entry["reason"] == "missing_subject":
            assert caller_id is None
        else:
            assert entry["reason"] == "bad_time" and alarm_time.startswith("2026-13")
    dirty_police = {e["position"].split("=", 1)[1] for e in manifest.dirty_records if e["source"] == "police"}
    for key, caller_id in police.execute("SELECT alarm_no, bjr_sfzh FROM bj_alarm"):
        if key not in dirty_police:
            assert is_valid_id_number(caller_id)


def test_sources_carry_fields_the_catalog_does_not_list(sources: Path) -> None:
    police_columns = {
        row[1] for row in sqlite3.connect(sources / "police" / "police.db").execute("PRAGMA table_info(bj_alarm)")
    }
    assert {"dispatch_unit", "officer_badge"} <= police_columns
    health_columns = {
        row[1] for row in sqlite3.connect(sources / "health" / "health.db").execute("PRAGMA table_info(his_visit)")
    }
    assert "insurance_card_no" in health_columns
    registry = next((sources / "civil_affairs" / "inbox").glob("registry_*.csv"))
    with registry.open(encoding="utf-8") as handle:
        assert "银行账号" in (csv.DictReader(handle).fieldnames or [])
    items = json.loads((sources / "education" / "incidents.json").read_text(encoding="utf-8"))
    assert all("teacherPhone" in item for item in items)


def test_records_are_consistent_across_agencies(sources: Path) -> None:
    people = {p.id_number: p for p in generate_population(RESIDENTS, SEED, DEFAULT_AS_OF)}
    registry = next((sources / "civil_affairs" / "inbox").glob("registry_*.csv"))
    with registry.open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["身份证号"] in people]
    elderly = [r for r in rows if r["类别"] == "独居老人"]
    assert elderly and all(people[r["身份证号"]].age_group is AgeGroup.ELDERLY for r in elderly)
    assert all(people[r["身份证号"]].name == r["姓名"] for r in rows)
    visited = {
        row[0]
        for row in sqlite3.connect(sources / "health" / "health.db").execute("SELECT patient_idcard FROM his_visit")
    }
    assert sum(1 for r in elderly if r["身份证号"] in visited) > len(elderly) // 2
    students = json.loads((sources / "education" / "incidents.json").read_text(encoding="utf-8"))
    known = [s for s in students if s.get("studentIdCard") in people]
    assert known and all(people[s["studentIdCard"]].age_group is AgeGroup.CHILD for s in known)
    events = [
        json.loads(line)
        for path in (sources / "civil_affairs" / "inbox").glob("access_events_*.jsonl")
        for line in path.open(encoding="utf-8")
    ]
    registered = {r["身份证号"] for r in rows}
    assert all(e["card_holder_id"] in registered for e in events if e.get("card_holder_id") in people)


def test_stay_in_residents_have_no_exit_in_their_last_three_days(sources: Path) -> None:
    manifest = SourceManifest.read(sources)
    registry = next((sources / "civil_affairs" / "inbox").glob("registry_*.csv"))
    with registry.open(encoding="utf-8") as handle:
        ids = {r["登记编号"]: r["身份证号"] for r in csv.DictReader(handle)}
    quiet = {ids[n] for n in manifest.expected_stay_in_alerts}
    assert quiet
    recent_files = sorted((sources / "civil_affairs" / "inbox").glob("access_events_*.jsonl"))[-3:]
    recent_outs = {
        event.get("card_holder_id")
        for path in recent_files
        for event in map(json.loads, path.open(encoding="utf-8"))
        if event["dir"] == "out"
    }
    assert not quiet & recent_outs


def test_file_drops_leave_no_partial_files(sources: Path) -> None:
    assert not list((sources / "civil_affairs" / "inbox").glob("*.part"))

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hub.catalog import PIClass, SharingAttribute, load_catalog
from hub.catalog.loader import default_catalog_dir
from hub.errors import CatalogError

EXPECTED_DATASETS = {
    "police.incident",
    "health.visit",
    "education.campus_incident",
    "civil_affairs.vulnerable_person",
    "civil_affairs.access_event",
}


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(default_catalog_dir(), target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text not found in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_shipped_catalog_covers_the_four_agencies() -> None:
    catalog = load_catalog()
    assert set(catalog.datasets) == EXPECTED_DATASETS
    assert set(catalog.agencies) == {"police", "health", "education", "civil_affairs"}
    for dataset in catalog:
        assert dataset.field(dataset.subject_field).pi is PIClass.SENSITIVE
    assert catalog.dataset("civil_affairs.access_event").sharing.attribute is SharingAttribute.NOT_SHARED
    assert catalog.dataset("health.visit").field("diagnosis").sensitive_category is not None


def test_police_incident_has_the_fields_the_mission_needs() -> None:
    names = {f.name for f in load_catalog().dataset("police.incident").fields}
    assert {
        "reported_at",
        "location",
        "incident_type",
        "caller_name",
        "caller_phone",
        "caller_id_number",
        "involved_id_numbers",
        "narrative",
    } <= names


def _drop_label(path: Path, field: str, label: str) -> None:
    """Remove one ``label = ...`` line from the ``[fields.<field>]`` table of a catalog file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"[fields.{field}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    hits = [i for i in range(start + 1, end) if lines[i].startswith(f"{label} =")]
    assert len(hits) == 1, f"{field} has no single {label} line"
    del lines[hits[0]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("label", ["pi", "grade", "role", "mask", "type", "description"])
def test_a_field_without_a_label_is_refused_by_name(catalog_dir: Path, label: str) -> None:
    _drop_label(catalog_dir / "police.incident.toml", "caller_name", label)
    with pytest.raises(CatalogError) as caught:
        load_catalog(catalog_dir)
    assert "police.incident.caller_name" in str(caught.value)
    assert repr(label) in str(caught.value)


def test_sensitive_field_needs_its_article_28_category(catalog_dir: Path) -> None:
    _drop_label(catalog_dir / "health.visit.toml", "department", "sensitive_category")
    with pytest.raises(CatalogError, match=r"health\.visit\.department: a sensitive field needs 'sensitive_category'"):
        load_catalog(catalog_dir)


def test_unknown_label_value_is_refused(catalog_dir: Path) -> None:
    _edit(catalog_dir / "education.campus_incident.toml", 'grade = "important"', 'grade = "secret"')
    with pytest.raises(CatalogError, match=r"education\.campus_incident\.student_id_number label 'grade'"):
        load_catalog(catalog_dir)


def test_identifying_field_cannot_be_labelled_non_personal(catalog_dir: Path) -> None:
    path = catalog_dir / "police.incident.toml"
    _edit(path, 'pi = "personal"\nrole = "name"', 'pi = "none"\nrole = "name"')
    with pytest.raises(CatalogError, match=r"police\.incident\.caller_name: .*cannot be 'none'"):
        load_catalog(catalog_dir)


def test_not_shared_dataset_needs_its_legal_reason(catalog_dir: Path) -> None:
    path = catalog_dir / "civil_affairs.access_event.toml"
    text = path.read_text(encoding="utf-8")
    start = text.index("legal_reason")
    path.write_text(text[:start] + text[text.index("\n", start) + 1 :], encoding="utf-8")
    with pytest.raises(CatalogError, match="not_shared' needs a 'legal_reason'"):
        load_catalog(catalog_dir)


def test_subject_field_must_exist_and_be_a_subject_id(catalog_dir: Path) -> None:
    _edit(
        catalog_dir / "health.visit.toml",
        'subject_field = "patient_id_number"',
        'subject_field = "patient_name"',
    )
    with pytest.raises(CatalogError, match="must have role 'subject_id'"):
        load_catalog(catalog_dir)


def test_dataset_owned_by_an_unknown_agency_is_refused(catalog_dir: Path) -> None:
    _edit(catalog_dir / "health.visit.toml", 'owner = "health"', 'owner = "tax"')
    with pytest.raises(CatalogError, match="must start with its owner agency"):
        load_catalog(catalog_dir)


def test_digest_changes_with_any_catalog_byte(catalog_dir: Path) -> None:
    before = load_catalog(catalog_dir).digest
    _edit(catalog_dir / "health.visit.toml", "Hospital visits", "Hospital visits ")
    assert load_catalog(catalog_dir).digest != before

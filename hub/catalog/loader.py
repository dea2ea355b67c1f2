"""Load and validate catalog files, refusing the whole catalog on the first incomplete definition.

A partial catalog would let connectors drop or, worse, pass fields nobody labelled; so loading is
all or nothing, and every error names the file and the ``dataset.field`` at fault.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hub.catalog.schema import Agency, DatasetDefinition, FieldDefinition
from hub.errors import CatalogError

REQUIRED_FIELD_LABELS = ("description", "type", "pi", "role", "grade", "mask")
AGENCIES_FILE = "agencies.toml"


def default_catalog_dir() -> Path:
    """The catalog shipped with the hub package."""
    return Path(str(resources.files("hub.catalog") / "datasets"))


@dataclass(frozen=True)
class Catalog:
    """A validated catalog: agencies and datasets, plus a digest of the exact files it came from."""

    agencies: Mapping[str, Agency]
    datasets: Mapping[str, DatasetDefinition]
    digest: str = field(default="")

    def dataset(self, dataset_id: str) -> DatasetDefinition:
        try:
            return self.datasets[dataset_id]
        except KeyError:
            raise CatalogError(f"unknown dataset {dataset_id!r}") from None

    def agency(self, code: str) -> Agency:
        try:
            return self.agencies[code]
        except KeyError:
            raise CatalogError(f"unknown agency {code!r}") from None

    def __iter__(self) -> Iterator[DatasetDefinition]:
        return iter(self.datasets.values())

    def datasets_of(self, agency: str) -> list[DatasetDefinition]:
        return [d for d in self.datasets.values() if d.owner == agency]

    def policy_labels(self) -> dict[str, dict[str, Any]]:
        """What the access policy reads of each dataset: owner, sharing attribute, each field's PI class."""
        return {
            d.id: {
                "owner": d.owner,
                "sharing": d.sharing.attribute.value,
                "fields": {
                    f.name: {"pi": f.pi.value, "category": f.sensitive_category.value if f.sensitive_category else None}
                    for f in d.fields
                },
            }
            for d in self.datasets.values()
        }

    def dataset_fields(self) -> dict[str, tuple[str, set[str]]]:
        """Per dataset: its owner and field names (what an agreement may name)."""
        return {d.id: (d.owner, {f.name for f in d.fields}) for d in self.datasets.values()}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise CatalogError(f"{path.name}: not valid TOML ({error})") from None


def _location(dataset_id: str, fields: list[dict[str, Any]], loc: tuple[int | str, ...]) -> str:
    if len(loc) >= 2 and loc[0] == "fields" and isinstance(loc[1], int) and loc[1] < len(fields):
        name = f"{dataset_id}.{fields[loc[1]].get('name', loc[1])}"
        rest = [str(p) for p in loc[2:]]
        return name + (f" label '{rest[0]}'" if rest else "")
    if loc:
        return f"{dataset_id} '{'.'.join(str(p) for p in loc)}'"
    return dataset_id


def parse_dataset(raw: Mapping[str, Any], origin: str) -> DatasetDefinition:
    """Validate one dataset table; ``origin`` (a file name) prefixes every error message."""
    dataset_id = str(raw.get("id", "<no id>"))
    raw_fields = raw.get("fields")
    if not isinstance(raw_fields, Mapping) or not raw_fields:
        raise CatalogError(f"{origin}: dataset {dataset_id} defines no [fields.*] tables")
    fields: list[dict[str, Any]] = []
    for name, spec in raw_fields.items():
        if not isinstance(spec, Mapping):
            raise CatalogError(f"{origin}: {dataset_id}.{name} must be a table of labels")
        missing = [label for label in REQUIRED_FIELD_LABELS if label not in spec]
        if missing:
            labels = ", ".join(repr(m) for m in missing)
            raise CatalogError(f"{origin}: field {dataset_id}.{name} has no label {labels}")
        fields.append({"name": name, **spec})
    try:
        return DatasetDefinition.model_validate({**raw, "fields": fields})
    except ValidationError as error:
        first = error.errors()[0]
        where = _location(dataset_id, fields, tuple(first["loc"]))
        message = str(first["msg"]).removeprefix("Value error, ")
        raise CatalogError(f"{origin}: {where}: {message}") from None


def load_catalog(directory: Path | None = None) -> Catalog:
    """Load ``agencies.toml`` and every ``*.toml`` dataset file of a directory."""
    directory = directory or default_catalog_dir()
    agencies_path = directory / AGENCIES_FILE
    if not agencies_path.is_file():
        raise CatalogError(f"catalog {directory}: missing {AGENCIES_FILE}")
    digest = hashlib.sha256()
    agencies: dict[str, Agency] = {}
    raw_agencies = _read_toml(agencies_path).get("agencies", {})
    for code, spec in raw_agencies.items():
        try:
            agencies[code] = Agency.model_validate({"code": code, **spec})
        except ValidationError as error:
            first = error.errors()[0]
            raise CatalogError(f"{AGENCIES_FILE}: agency {code}: {first['loc']} {first['msg']}") from None
    digest.update(agencies_path.read_bytes())

    datasets: dict[str, DatasetDefinition] = {}
    for path in sorted(directory.glob("*.toml")):
        if path.name == AGENCIES_FILE:
            continue
        dataset = parse_dataset(_read_toml(path), path.name)
        if dataset.id in datasets:
            raise CatalogError(f"{path.name}: dataset {dataset.id} is defined twice")
        if dataset.owner not in agencies:
            raise CatalogError(f"{path.name}: owner {dataset.owner!r} of {dataset.id} is not in {AGENCIES_FILE}")
        datasets[dataset.id] = dataset
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    if not datasets:
        raise CatalogError(f"catalog {directory}: no dataset files")
    return Catalog(agencies=agencies, datasets=datasets, digest=digest.hexdigest())


__all__ = ["Catalog", "FieldDefinition", "load_catalog", "parse_dataset"]

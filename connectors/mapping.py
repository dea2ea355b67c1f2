"""From a source row to catalog fields: rename, coerce, normalise, and keep nothing else (PIPL Art. 6).

Coercion follows the catalog's field types: ID numbers are checked (GB 11643) and normalised, phones
reduced to digits, times given their zone and written as ISO 8601, enum values checked. A row that fails
is rejected with a reason naming the dataset, field and rule — never the value, which may be personal.
Source columns no mapping uses are dropped and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from connectors.config import ConnectorConfig
from hub.catalog import DatasetDefinition, FieldType
from hub.identifiers import IdentifierError, normalise_id_number, normalise_phone


class RecordRejected(Exception):
    """The row cannot become a catalog record; ``reason`` is safe to store and show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MappedRecord:
    record_key: str
    version: int
    values: dict[str, Any]
    source_updated_at: datetime | None
    deleted: bool
    dropped: tuple[str, ...]


def _zone(offset: str) -> timezone:
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset.lstrip("+-").split(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))


def parse_time(value: Any, zone: timezone) -> datetime:
    text = str(value).strip().replace(" ", "T", 1)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


Coercer = Callable[[Any], Any]


class Mapper:
    """Maps rows of one connector. Each field's coercion is chosen once, here, from its catalog type and
    mapping: ingestion calls it for every field of every row, so nothing is looked up per value."""

    def __init__(self, config: ConnectorConfig, dataset: DatasetDefinition) -> None:
        self.config = config
        self.dataset = dataset
        self.zone = _zone(config.timezone)
        self.used = {m.source for m in config.fields.values()} | {config.key}
        if config.deleted:
            self.used.add(config.deleted)
        self._fields = [(name, mapping.source, self._coercer(name)) for name, mapping in config.fields.items()]
        self._required = [
            (d.name, "no subject" if d.name == dataset.subject_field else "missing required field")
            for d in dataset.fields
            if d.required
        ]

    def _coercer(self, name: str) -> Coercer:
        definition = self.dataset.field(name)
        mapping = self.config.fields[name]
        where = f"{self.dataset.id}.{name}"
        kind = definition.type
        zone = self.zone
        convert: Coercer
        if kind is FieldType.ID_NUMBER:
            convert = lambda raw: normalise_id_number(str(raw))  # noqa: E731
        elif kind is FieldType.ID_NUMBER_LIST:
            separator = mapping.split or ","
            convert = lambda raw: [normalise_id_number(p) for p in str(raw).split(separator) if p.strip()]  # noqa: E731
        elif kind is FieldType.PHONE:
            convert = lambda raw: normalise_phone(str(raw))  # noqa: E731
        elif kind is FieldType.DATETIME:
            convert = lambda raw: parse_time(raw, zone).isoformat()  # noqa: E731
        elif kind is FieldType.DATE:
            convert = lambda raw: date.fromisoformat(str(raw).strip()).isoformat()  # noqa: E731
        elif kind is FieldType.INTEGER:
            convert = int
        elif kind is FieldType.BOOLEAN:
            convert = lambda raw: str(raw).strip().lower() in ("1", "true", "yes", "y")  # noqa: E731
        elif kind is FieldType.ENUM:
            allowed = frozenset(definition.enum_values)

            def convert(raw: Any) -> Any:
                if str(raw) not in allowed:
                    raise RecordRejected(f"{where}: value is not one of the catalog's values")
                return str(raw)

        else:
            convert = lambda raw: str(raw).strip()  # noqa: E731
        table = mapping.map

        def coerce(raw: Any) -> Any:
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                return None
            if table is not None:
                if str(raw) not in table:
                    raise RecordRejected(f"{where}: source value has no mapping to the catalog's values")
                raw = table[str(raw)]
            try:
                return convert(raw)
            except IdentifierError as error:
                raise RecordRejected(f"{where}: {error}") from None
            except (ValueError, TypeError):
                raise RecordRejected(f"{where}: not a valid {kind.value}") from None

        return coerce

    def map(self, row: Mapping[str, Any], version_source: Any = None) -> MappedRecord:
        key = row.get(self.config.key)
        if key is None or not str(key).strip():
            raise RecordRejected(f"{self.dataset.id}: no record key ({self.config.key})")
        get = row.get
        values = {name: coerce(get(source)) for name, source, coerce in self._fields}
        for name, reason in self._required:
            if values.get(name) is None:
                raise RecordRejected(f"{self.dataset.id}.{name}: {reason}")
        updated: datetime | None = None
        if version_source is not None and str(version_source).strip():
            try:
                updated = parse_time(version_source, self.zone)
            except ValueError:
                raise RecordRejected(f"{self.dataset.id}: the version column is not a valid time") from None
        deleted = bool(self.config.deleted and str(row.get(self.config.deleted, "0")) not in ("0", "", "None", "False"))
        return MappedRecord(
            record_key=str(key).strip(),
            version=int(updated.timestamp() * 1_000_000) if updated else 1,
            values={k: v for k, v in values.items() if v is not None},
            source_updated_at=updated,
            deleted=deleted,
            dropped=tuple(sorted(c for c in row if c not in self.used)),
        )

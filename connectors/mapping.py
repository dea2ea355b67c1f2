"""From a source row to catalog fields: rename, coerce, normalise, and keep nothing else (PIPL Art. 6).

Coercion follows the catalog's field types: ID numbers are checked (GB 11643) and normalised, phones
reduced to digits, times given their zone and written as ISO 8601, enum values checked. A row that fails
is rejected with a reason naming the dataset, field and rule — never the value, which may be personal.
Source columns no mapping uses are dropped and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple

from connectors.config import ConnectorConfig
from hub.catalog import DatasetDefinition, FieldType
from hub.identifiers import IdentifierError, normalise_id_number, normalise_phone


class RecordRejected(Exception):
    """The row cannot become a catalog record; ``reason`` is safe to store and show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MappedRecord(NamedTuple):
    """One row in catalog terms. A named tuple, not a dataclass: one is made per ingested row, and a
    frozen dataclass costs several times as much to build."""

    record_key: str
    version: int
    values: dict[str, Any]
    source_updated_at: datetime | None
    deleted: bool


def _zone(offset: str) -> timezone:
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset.lstrip("+-").split(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))


def parse_time(value: Any, zone: timezone) -> datetime:
    text = str(value).strip().replace(" ", "T", 1)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def offset_text(zone: timezone) -> str:
    """How ``isoformat`` writes this zone's offset ("+08:00")."""
    return datetime(2000, 1, 1, tzinfo=zone).isoformat()[19:]


def iso_time(value: Any, zone: timezone, offset: str | None = None) -> str:
    """ISO 8601 with the zone (``offset`` is :func:`offset_text` of it, when the caller has it at hand).

    The two forms sources mostly write are not rebuilt, since rebuilding gives back a text known in
    advance: a time with its zone ("2026-11-13T07:00:00+08:00") is only checked, and a time without one,
    as SQL and CSV exports write it ("2026-11-13 07:00:00"), is checked and given the source's zone.
    Parsing, attaching the zone and formatting cost 4.6 µs a value (an aware ``isoformat`` alone 2.2);
    these paths about 0.3 and 0.75.
    """
    if value.__class__ is str and value[4:5] == "-" and value[7:8] == "-" and value[13:14] == value[16:17] == ":":
        size = len(value)
        if size == 25 and value[10] == "T" and value[19] == "+" and value[22] == ":":
            datetime.fromisoformat(value)  # raises ValueError for anything that is not a valid time
            return value
        if size == 19 and value[10] in " T":
            datetime.fromisoformat(value)  # ASCII digits only, every part in range, or ValueError
            return value[:10] + "T" + value[11:] + (offset if offset is not None else offset_text(zone))
    return parse_time(value, zone).isoformat()


Coercer = Callable[[Any], Any]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _text(raw: Any) -> str | None:
    """Plain text, the commonest field: stripped, and empty means absent."""
    if raw is None:
        return None
    text = raw.strip() if raw.__class__ is str else str(raw).strip()
    return text or None


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
            offset = offset_text(zone)
            convert = lambda raw: iso_time(raw, zone, offset)  # noqa: E731
        elif kind is FieldType.DATE:
            convert = lambda raw: date.fromisoformat(str(raw).strip()).isoformat()  # noqa: E731
        elif kind is FieldType.INTEGER:

            def convert(raw: Any) -> Any:
                value = int(raw)
                if not _INT64_MIN <= value <= _INT64_MAX:  # the bus's encoder and the store hold 64 bits
                    raise RecordRejected(f"{where}: integer outside the 64-bit range")
                return value

        elif kind is FieldType.BOOLEAN:
            convert = lambda raw: str(raw).strip().lower() in ("1", "true", "yes", "y")  # noqa: E731
        elif kind is FieldType.ENUM:
            allowed = frozenset(definition.enum_values)

            def convert(raw: Any) -> Any:
                if str(raw) not in allowed:
                    raise RecordRejected(f"{where}: value is not one of the catalog's values")
                return str(raw)

        elif mapping.map is None:
            return _text  # plain text: the commonest case, without the general wrapper below
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
        values = {}
        for name, source, coerce in self._fields:
            value = coerce(get(source))
            if value is not None:
                values[name] = value
        for name, reason in self._required:
            if name not in values:
                raise RecordRejected(f"{self.dataset.id}.{name}: {reason}")
        updated: datetime | None = None
        if version_source is not None and str(version_source).strip():
            try:
                updated = parse_time(version_source, self.zone)
            except ValueError:
                raise RecordRejected(f"{self.dataset.id}: the version column is not a valid time") from None
        deleted = bool(self.config.deleted and str(row.get(self.config.deleted, "0")) not in ("0", "", "None", "False"))
        return tuple.__new__(  # built directly, as tuples (see hub.store.records.Provenance)
            MappedRecord,
            (str(key).strip(), int(updated.timestamp() * 1_000_000) if updated else 1, values, updated, deleted),
        )

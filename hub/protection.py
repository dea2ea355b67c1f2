"""The encryption boundary: records in clear on one side, :class:`ProtectedRecord` on the other.

Connectors call :meth:`RecordProtector.protect` before anything reaches the bus; releases call
:meth:`RecordProtector.reveal` after policy allows it. Every personal field (catalog class other than
``none``) is sealed under the subject's own data key, bound to (dataset, record key, field); the subject
is findable only through the blind index of their ID number, the same in every agency's dataset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

import orjson

from hub.catalog import Catalog, DatasetDefinition
from hub.errors import HubError
from hub.identifiers import IdentifierError, normalise_id_number
from hub.settings import Settings
from hub.store.records import ProtectedRecord, Provenance
from keys import sealed_record
from keys.deks import create_keys_engine
from keys.errors import KeyShredded
from keys.keystore import Keystore, parse_master_key
from keys.masking import Masker, MaskType
from keys.service import KeyService
from keys.suites import Suite

SUBJECT_INDEX_FAMILY = "id_number"
DEMO_PASSPHRASE = "hub-demo-only-passphrase"  # noqa: S105 - documented dev-profile default, refused in production


class ProtectionError(HubError):
    """A record cannot be protected (for instance its subject ID is missing or invalid)."""


def open_key_service(settings: Settings, *, create: bool = False) -> KeyService:
    """Unlock the configured keystore; fail closed with one clear line when it cannot be opened."""
    passphrase = settings.master_passphrase.get_secret_value() if settings.master_passphrase else None
    master = parse_master_key(settings.master_key.get_secret_value()) if settings.master_key else None
    if passphrase is None and master is None and settings.profile == "dev":
        passphrase = DEMO_PASSPHRASE
    path = settings.effective_keystore_path
    if create and not path.exists():
        keystore = Keystore.create(path, passphrase=passphrase, master_key=master, suite=Suite[settings.key_suite])
    else:
        keystore = Keystore.open(path, passphrase=passphrase, master_key=master)
    return KeyService(keystore, create_keys_engine(settings.effective_keys_database_url))


def _parse(plaintext: bytes) -> Any:
    """A sealed field's JSON value. Strings, nearly every sealed value, go through orjson (a fraction of the
    standard parser's cost, once per field released); anything else through the standard library, which keeps
    integers past 64 bits exact (orjson makes them floats) and reads the ``NaN`` that ``json.dumps`` writes."""
    if plaintext[:1] == b'"':
        try:
            return orjson.loads(plaintext)
        except orjson.JSONDecodeError:
            pass
    return json.loads(plaintext)


@dataclass(frozen=True)
class Erased:
    """A field whose subject was crypto-shredded: the value no longer exists anywhere."""

    reason: str = "erased (crypto-shredded)"


class RecordProtector:
    """Seals and reveals whole records according to the catalog."""

    def __init__(self, keys: KeyService, catalog: Catalog) -> None:
        self.keys = keys
        self.catalog = catalog
        self.masker = Masker(keys.keystore.secret("mask:hash"), keys.suite)
        self._indexes: dict[str, bytes] = {}
        # Per dataset: its definition and, by field name, whether the field is personal.
        self._datasets: dict[str, tuple[DatasetDefinition, dict[str, bool]]] = {}

    def prefetch(self, dataset_id: str, rows: list[Mapping[str, Any]]) -> None:
        """Load the subjects' keys of a batch of rows in one go (invalid subjects are left for protect)."""
        field = self.catalog.dataset(dataset_id).subject_field
        refs = []
        for values in rows:
            raw = values.get(field)
            if raw:
                try:
                    refs.append(self.subject_index(str(raw)))
                except IdentifierError:
                    continue
        self.keys.prefetch(refs)

    def subject_index(self, id_number: str) -> bytes:
        cached = self._indexes.get(id_number)
        if cached is None:
            cached = self.keys.blind_index(SUBJECT_INDEX_FAMILY, normalise_id_number(id_number))
            if len(self._indexes) >= 131072:  # bounded: forget everything rather than grow without limit
                self._indexes.clear()
            self._indexes[id_number] = cached
        return cached

    def _subject(self, dataset: DatasetDefinition, values: Mapping[str, Any]) -> bytes:
        raw = values.get(dataset.subject_field)
        if not raw:
            raise ProtectionError(f"{dataset.id}: subject field {dataset.subject_field} is empty")
        try:
            return self.subject_index(str(raw))
        except IdentifierError as error:
            raise ProtectionError(f"{dataset.id}.{dataset.subject_field}: {error}") from None

    def protect(
        self,
        dataset_id: str,
        record_key: str,
        version: int,
        provenance: Provenance,
        values: Mapping[str, Any],
        *,
        deleted: bool = False,
    ) -> ProtectedRecord:
        # Once per ingested record: the caches are read in place and the record is built positionally.
        known = self._datasets.get(dataset_id)
        if known is None:
            dataset = self.catalog.dataset(dataset_id)
            known = self._datasets[dataset_id] = (dataset, {f.name: f.is_personal for f in dataset.fields})
        dataset, personal = known
        raw = values.get(dataset.subject_field)
        subject = self._indexes.get(raw) if raw.__class__ is str else None
        if subject is None:
            subject = self._subject(dataset, values)
        key = self.keys.key_for_subject(subject)
        clear: dict[str, Any] = {}
        plaintexts: dict[str, bytes] = {}
        for name, value in values.items():
            is_personal = personal.get(name)
            if is_personal is None:
                unknown = sorted(set(values) - set(personal))
                raise ProtectionError(f"{dataset_id}: fields not in the catalog: {', '.join(unknown)}")
            if value is None:
                continue
            if is_personal:
                # Strings are most values; the C string encoder gives the same JSON as json.dumps, faster.
                text = encode_basestring(value) if value.__class__ is str else json.dumps(value, ensure_ascii=False)
                plaintexts[name] = text.encode("utf-8")
            else:
                clear[name] = value
        sealed = self.keys.seal_fields(key, dataset_id, record_key, plaintexts)
        # Built directly, as tuples (see hub.store.records.Provenance).
        return tuple.__new__(
            ProtectedRecord, (dataset_id, record_key, version, provenance, subject, clear, sealed, deleted)
        )

    def reveal(self, record: ProtectedRecord, fields: set[str] | None = None) -> dict[str, Any]:
        """Decrypt the personal fields asked for (all by default); erased subjects give :class:`Erased`."""
        values: dict[str, Any] = dict(record.clear_fields)
        for name, blob in sealed_record.unpack(record.sealed_fields).items():
            if fields is not None and name not in fields:
                continue
            try:
                values[name] = _parse(self.keys.unseal(blob, record.dataset_id, record.record_key, name))
            except KeyShredded:
                values[name] = Erased()
        return values

    def masked(self, record: ProtectedRecord) -> dict[str, Any]:
        """Every field with its catalog default mask applied (non-personal fields as they are)."""
        dataset = self.catalog.dataset(record.dataset_id)
        shown: dict[str, Any] = {}
        for name, value in self.reveal(record).items():
            mask = dataset.field(name).mask
            shown[name] = value if isinstance(value, Erased) or mask is MaskType.NONE else self.masker.mask(mask, value)
        return shown

"""The CloudEvents 1.0 envelope of a protected record on the bus (structured JSON mode).

The event carries the record's provenance as attributes and the protected record as data: clear
(non-personal) fields, the sealed personal fields and the subject's blind index — never a personal
value in clear. The bus key is dataset + record key, so one record's versions stay in one partition,
in order.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from hub.store.records import ProtectedRecord, Provenance

FORMAT = JSONFormat()
RECORD_TYPE = "gov.city.hub.record.v1"
TOMBSTONE_TYPE = "gov.city.hub.record.deleted.v1"


def bus_key(dataset: str, record_key: str) -> bytes:
    return f"{dataset}\x00{record_key}".encode()


def to_event(record: ProtectedRecord) -> tuple[bytes, bytes]:
    """(bus key, CloudEvent JSON bytes)."""
    p = record.provenance
    attributes = {
        "id": f"{record.dataset_id}/{record.record_key}/{record.version}",
        "source": f"/agencies/{p.source_agency}/{p.source_system}",
        "type": TOMBSTONE_TYPE if record.deleted else RECORD_TYPE,
        "subject": f"{record.dataset_id}/{record.record_key}",
        "time": p.pulled_at,
        "datacontenttype": "application/json",
        "dataset": record.dataset_id,
        "recordkey": record.record_key,
        "recordversion": str(record.version),
        "sourceposition": p.source_position,
        "sourceupdatedat": p.source_updated_at.isoformat() if p.source_updated_at else "",
    }
    data = {
        "clear": dict(record.clear_fields),
        "sealed": base64.b64encode(record.sealed_fields).decode("ascii"),
        "subject_index": base64.b64encode(record.subject_index).decode("ascii"),
    }
    return bus_key(record.dataset_id, record.record_key), FORMAT.write(CloudEvent(attributes, data))


def from_event(body: bytes) -> ProtectedRecord:
    event = FORMAT.read(None, body)
    attributes = event.get_attributes()
    raw = event.get_data()
    data: dict[str, Any] = raw if isinstance(raw, dict) else json.loads(raw or b"{}")
    updated = attributes["sourceupdatedat"]
    time = event.get_time()
    if time is None:
        raise ValueError("record event without a time")
    _, _, agency, system = event.get_source().split("/", 3)
    return ProtectedRecord(
        dataset_id=attributes["dataset"],
        record_key=attributes["recordkey"],
        version=int(attributes["recordversion"]),
        provenance=Provenance(
            source_agency=agency,
            source_system=system,
            source_position=attributes["sourceposition"],
            pulled_at=time,
            source_updated_at=datetime.fromisoformat(updated) if updated else None,
        ),
        subject_index=base64.b64decode(data["subject_index"]),
        clear_fields=data["clear"],
        sealed_fields=base64.b64decode(data["sealed"]),
        deleted=event.get_type() == TOMBSTONE_TYPE,
    )
